// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* The requests swclient sends: what they all share, built once, and each one's head. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

#define BODY_CHUNK_BYTES 8192
#define FILLER		 "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ\n"

/*
 * Builds what every request shares: the head up to where the shard key goes, and the
 * body with its framing. 0 or -ENOMEM.
 */
int request_templates_build(void)
{
	size_t payload = cfg.body_size > 0 ? cfg.body_size : 0, filler_len = strlen(FILLER);
	char *head = NULL, *p;
	size_t head_len = 0;
	FILE *out;

	out = open_memstream(&head, &head_len);
	if (!out)
		return -ENOMEM;
	fprintf(out, "%s %s HTTP/1.1\r\n", cfg.method, cfg.path);
	if (!cfg.user_host_header)
		fprintf(out, "Host: %s\r\n", cfg.host ? cfg.host : cfg.authority);
	fprintf(out, "User-Agent: swclient\r\n");
	for (int i = 0; i < cfg.nr_headers; i++)
		fprintf(out, "%s\r\n", cfg.headers[i]);
	if (cfg.no_keepalive)
		fprintf(out, "Connection: close\r\n");
	if (cfg.chunked)
		fprintf(out, "Transfer-Encoding: chunked\r\n");
	else if (cfg.body_size >= 0)
		fprintf(out, "Content-Length: %zu\r\n", payload);
	if (fclose(out))
		return -ENOMEM;
	cfg.head_prefix = head;
	cfg.head_prefix_len = head_len;
	cfg.head_method = !strcmp(cfg.method, "HEAD");

	/* Chunks of BODY_CHUNK_BYTES, so a chunked body exercises more than one chunk. */
	cfg.body = malloc(payload + (payload / BODY_CHUNK_BYTES + 1) * 24 + 8);
	if (!cfg.body)
		return -ENOMEM;
	p = cfg.body;
	for (size_t done = 0; done < payload;) {
		size_t len = payload - done < BODY_CHUNK_BYTES ? payload - done : BODY_CHUNK_BYTES;

		if (cfg.chunked)
			p += sprintf(p, "%zx\r\n", len);
		for (size_t i = 0; i < len; i++)
			*p++ = FILLER[(done + i) % filler_len];
		if (cfg.chunked)
			p += sprintf(p, "\r\n");
		done += len;
	}
	if (cfg.chunked)
		p += sprintf(p, "0\r\n\r\n");
	cfg.body_len = p - cfg.body;
	return 0;
}

/* Writes the head of request c->request_index into c->out; 0 or -ENOMEM. */
int request_head_build(struct conn *c)
{
	size_t room = cfg.head_prefix_len + strlen(cfg.key_prefix) + 64;
	char *p;

	c->out.len = 0;
	if (bytes_reserve(&c->out, room))
		return -ENOMEM;
	p = c->out.data;
	memcpy(p, cfg.head_prefix, cfg.head_prefix_len);
	p += cfg.head_prefix_len;
	if (cfg.keys)
		p += sprintf(p, "X-SERVE-SHARD-KEY: %s%" PRIu64 "\r\n", cfg.key_prefix,
			     (uint64_t)(c->request_index % cfg.keys));
	p += sprintf(p, "\r\n");
	c->out.len = p - c->out.data;
	return 0;
}
