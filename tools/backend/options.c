// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* swbackend's command line, into cfg. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/args.h"
#include "backend.h"

#define MAX_THREADS 256

struct config cfg = {
	.status = 200,
	.body_size = -1,
	.threads = 1,
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: swbackend --name NAME --listen ADDR:PORT [--listen ADDR:PORT ...]\n"
		"                 [--latency-ms N] [--status CODE] [--body-size BYTES]\n"
		"                 [--threads N] [--chunked] [--close]\n"
		"  ADDR:PORT is 127.0.0.1:9001 or [::1]:9001; port 0 picks a free port, and the\n"
		"  \"listening on\" line printed on stderr tells which.\n");
}

/* Parses "1.2.3.4:80" or "[::1]:80" into addr; 0 or -EINVAL. */
static int parse_listen_addr(const char *text, struct listen_addr *la)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&la->addr;
	struct sockaddr_in *sin = (struct sockaddr_in *)&la->addr;
	char host[INET6_ADDRSTRLEN];
	const char *port_text;
	long long port;
	size_t host_len;

	memset(la, 0, sizeof(*la));
	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		host_len = close - text - 1;
		port_text = close + 2;
		text++;
	} else {
		const char *colon = strrchr(text, ':');

		if (!colon)
			return -EINVAL;
		host_len = colon - text;
		port_text = colon + 1;
	}
	if (host_len == 0 || host_len >= sizeof(host))
		return -EINVAL;
	memcpy(host, text, host_len);
	host[host_len] = '\0';
	if (parse_number(port_text, 0, 65535, &port))
		return -EINVAL;

	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		la->addr_len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		la->addr_len = sizeof(*sin6);
		return 0;
	}
	return -EINVAL;
}

/* Formats addr as "1.2.3.4:80" or "[::1]:80". */
void format_addr(const struct sockaddr_storage *addr, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN];

	if (addr->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)addr;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(buf, size, "[%s]:%u", host, ntohs(sin6->sin6_port));
	} else {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(buf, size, "%s:%u", host, ntohs(sin->sin_port));
	}
}

/* Fills cfg from argv; 0 or -EINVAL after printing what was wrong. */
int parse_args(int argc, char **argv)
{
	static const struct option options[] = {
		{"name", required_argument, NULL, 'n'},
		{"listen", required_argument, NULL, 'l'},
		{"latency-ms", required_argument, NULL, 'L'},
		{"status", required_argument, NULL, 's'},
		{"body-size", required_argument, NULL, 'b'},
		{"threads", required_argument, NULL, 't'},
		{"chunked", no_argument, NULL, 'c'},
		{"close", no_argument, NULL, 'C'},
		{"help", no_argument, NULL, 'h'},
		{},
	};
	long long value;
	int opt;

	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'n':
			cfg.name = optarg;
			break;
		case 'l':
			if (cfg.nr_listen == MAX_LISTEN) {
				fprintf(stderr, "swbackend: at most %d --listen\n", MAX_LISTEN);
				return -EINVAL;
			}
			if (parse_listen_addr(optarg, &cfg.listen[cfg.nr_listen])) {
				fprintf(stderr,
					"swbackend: bad --listen '%s': use 127.0.0.1:PORT or "
					"[::1]:PORT\n",
					optarg);
				return -EINVAL;
			}
			cfg.nr_listen++;
			break;
		case 'L':
			if (parse_number(optarg, 0, 3600 * 1000, &value)) {
				fprintf(stderr, "swbackend: bad --latency-ms '%s'\n", optarg);
				return -EINVAL;
			}
			cfg.latency_ms = value;
			break;
		case 's':
			if (parse_number(optarg, 200, 599, &value)) {
				fprintf(stderr, "swbackend: bad --status '%s': use 200..599\n",
					optarg);
				return -EINVAL;
			}
			cfg.status = value;
			break;
		case 'b':
			if (parse_number(optarg, 0, 1LL << 30, &value)) {
				fprintf(stderr,
					"swbackend: bad --body-size '%s': use 0..1073741824\n",
					optarg);
				return -EINVAL;
			}
			cfg.body_size = value;
			break;
		case 't':
			if (parse_number(optarg, 1, MAX_THREADS, &value)) {
				fprintf(stderr, "swbackend: bad --threads '%s': use 1..%d\n",
					optarg, MAX_THREADS);
				return -EINVAL;
			}
			cfg.threads = value;
			break;
		case 'c':
			cfg.chunked = true;
			break;
		case 'C':
			cfg.close_each = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "swbackend: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (!cfg.name || !cfg.name[0] || !cfg.nr_listen) {
		fprintf(stderr, "swbackend: --name and at least one --listen are required\n");
		usage(stderr);
		return -EINVAL;
	}
	/* The name goes into a header and into JSON: keep it to plain visible characters. */
	for (const char *p = cfg.name; *p; p++) {
		if (*p <= ' ' || *p >= 0x7f || *p == '"' || *p == '\\') {
			fprintf(stderr, "swbackend: --name must be visible ASCII without quotes\n");
			return -EINVAL;
		}
	}
	return 0;
}
