// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * The responses swclient reads: parsed strictly enough to stay in step with the server
 * (Content-Length, chunked, or delimited by close), and noted for the report.
 */
#include <errno.h>
#include <string.h>

#include "client.h"

/* A response head larger than this is taken as garbage rather than buffered forever. */
#define MAX_HEAD_BYTES 65536

/* "HTTP/1.x SSS[ reason]"; 0 or -EBADMSG. */
static int status_line_parse(struct conn *c, const char *line, size_t len, struct http_framing *fr)
{
	if (len < 12 || http_version_parse(line, &fr->http10) || line[8] != ' ')
		return -EBADMSG;
	c->status = 0;
	for (int i = 9; i < 12; i++) {
		if (line[i] < '0' || line[i] > '9')
			return -EBADMSG;
		c->status = c->status * 10 + (line[i] - '0');
	}
	if (c->status < 100 || (len > 12 && line[12] != ' '))
		return -EBADMSG;
	return http_field_value_valid(line + 12, len - 12) ? 0 : -EBADMSG;
}

/* Notes who answered from one field line of a response head; always 0. */
static int header_field_note(void *arg, const struct http_field *f, enum http_field_kind kind)
{
	struct conn *c = arg;
	size_t len = f->value_len;

	if (kind != HTTP_FIELD_OTHER)
		return 0;
	if (http_field_is(f, "x-backend")) {
		if (len > MAX_BACKEND_NAME)
			len = MAX_BACKEND_NAME;
		memcpy(c->backend, f->value, len);
		c->backend[len] = '\0';
		c->has_backend = true;
	} else if (http_field_is(f, "x-seen-shadow")) {
		c->shadow = true;
	}
	return 0;
}

/*
 * Acts on a complete response head p[0..len): decides how its body ends.
 * HTTP_STEP_ADVANCED, HTTP_STEP_DONE when there is no body, or -EBADMSG.
 */
static int response_head_parse(struct conn *c, const char *p, size_t len)
{
	const char *end = p + len, *line;
	struct http_framing fr = {};
	size_t line_len, used;
	int err;

	c->has_backend = false;
	c->shadow = false;
	used = http_line_take(p, end, &line, &line_len);
	if (!used)
		return -EBADMSG;
	err = status_line_parse(c, line, line_len, &fr);
	if (!err)
		err = http_fields_parse(p + used, end, &fr, header_field_note, c);
	if (err)
		return err;

	if (c->status < 200) {
		/* 100 Continue and friends precede the real response; 101 would end HTTP. */
		return c->status == 101 ? -EBADMSG : HTTP_STEP_ADVANCED;
	}
	c->close_after = !http_framing_keep_alive(&fr) || cfg.no_keepalive;
	/* RFC 9112 6.3: no body after HEAD, 204 and 304; then chunked; then Content-Length. */
	if (cfg.head_method || c->status == 204 || c->status == 304)
		return HTTP_STEP_DONE;
	if (fr.te_seen && fr.te_chunked_last) {
		c->state = RESP_CHUNKED;
		http_chunked_start(&c->chunked);
	} else if (fr.te_seen || !fr.cl_seen) {
		c->state = RESP_BODY_TO_CLOSE;
		c->close_after = true;
	} else if (fr.content_length) {
		c->state = RESP_BODY_LENGTH;
		c->remaining = fr.content_length;
	} else {
		return HTTP_STEP_DONE;
	}
	return HTTP_STEP_ADVANCED;
}

/*
 * Takes one step of the response at c->in.data + *pos. HTTP_STEP_ADVANCED, HTTP_STEP_DONE
 * when a response is complete, HTTP_STEP_MORE when more bytes are needed, or -EBADMSG.
 */
int conn_parse_step(struct conn *c, size_t *pos)
{
	const char *p = c->in.data + *pos;
	size_t avail = c->in.len - *pos, used;
	int ret;

	switch (c->state) {
	case RESP_HEAD:
		used = http_head_end_find(p, avail, &c->head_scan);
		if (!used)
			return avail > MAX_HEAD_BYTES ? -EBADMSG : HTTP_STEP_MORE;
		c->head_scan = 0;
		ret = response_head_parse(c, p, used);
		if (ret > 0)
			*pos += used;
		return ret;

	case RESP_BODY_LENGTH:
		*pos += http_body_take(&c->remaining, avail);
		return c->remaining ? HTTP_STEP_MORE : HTTP_STEP_DONE;

	case RESP_BODY_TO_CLOSE:
		/* Only the server's FIN ends this body: see conn_eof(). */
		*pos += avail;
		return HTTP_STEP_MORE;

	case RESP_CHUNKED:
		return http_chunked_step(&c->chunked, p, avail, pos);
	}
	return -EBADMSG;
}
