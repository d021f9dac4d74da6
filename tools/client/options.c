// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* swclient's command line, into cfg. */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../lib/args.h"
#include "client.h"

#define MAX_CONNECTIONS	   10000
#define DEFAULT_TIMEOUT_MS 5000
#define RAW_TIMEOUT_MS	   2000

struct config cfg = {
	.requests = 100,
	.connections = 1,
	.key_prefix = "key-",
	.method = "GET",
	.body_size = -1,
	.timeout_ms = -1,
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: swclient --url http://ADDR:PORT/PATH [--requests N] [--connections C]\n"
		"                [--keys K] [--key-prefix P] [--header 'Name: value' ...]\n"
		"                [--method M] [--body-size B] [--chunked] [--duration-ms D]\n"
		"                [--host HOST] [--no-keepalive] [--timeout-ms T] [--raw FILE]\n");
}

/*
 * Splits "http://host:port/path" into cfg.addr, cfg.authority and cfg.path. The host is
 * an IPv4 address, [IPv6] or a name; the port defaults to 80. 0 or -EINVAL.
 */
static int url_parse(const char *url)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
	const char *authority, *slash, *host_start, *host_end, *port = "80";
	char host[256];
	size_t host_len;

	if (strncasecmp(url, "http://", 7))
		return -EINVAL;
	authority = url + 7;
	slash = strchr(authority, '/');
	cfg.path = slash ? slash : "/";
	cfg.authority = strndup(authority, slash ? (size_t)(slash - authority) : strlen(authority));
	if (!cfg.authority || !cfg.authority[0])
		return -EINVAL;

	if (cfg.authority[0] == '[') {
		host_start = cfg.authority + 1;
		host_end = strchr(host_start, ']');
		if (!host_end || (host_end[1] && host_end[1] != ':'))
			return -EINVAL;
		host_len = host_end - host_start;
		if (host_end[1] == ':')
			port = host_end + 2;
	} else {
		host_start = cfg.authority;
		host_end = strchr(host_start, ':');
		host_len = host_end ? (size_t)(host_end - host_start) : strlen(host_start);
		if (host_end)
			port = host_end + 1;
	}
	if (!host_len || host_len >= sizeof(host) || strlen(port) > 5)
		return -EINVAL;
	memcpy(host, host_start, host_len);
	host[host_len] = '\0';
	for (const char *p = port; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
	}
	if (!*port || atoi(port) > 65535)
		return -EINVAL;
	if (getaddrinfo(host, port, &hints, &res))
		return -EINVAL;
	memcpy(&cfg.addr, res->ai_addr, res->ai_addrlen);
	cfg.addr_len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* "Name: value" with a valid name and no CR or LF; 0 or -EINVAL. */
static int header_arg_check(const char *header)
{
	const char *colon = strchr(header, ':');

	if (!colon || colon == header)
		return -EINVAL;
	for (const char *p = header; p < colon; p++) {
		if (!http_is_tchar(*p))
			return -EINVAL;
	}
	return http_field_value_valid(colon + 1, strlen(colon + 1)) ? 0 : -EINVAL;
}

/* Applies one option to cfg: NULL, or what is wrong with its value. */
static const char *option_apply(int opt, const char *arg)
{
	switch (opt) {
	case 'u':
		cfg.url = arg;
		break;
	case 'n':
		if (parse_number(arg, 1, 1LL << 40, &cfg.requests))
			return "--requests wants a number >= 1";
		break;
	case 'c':
		if (parse_number(arg, 1, MAX_CONNECTIONS, &cfg.connections))
			return "--connections wants 1..10000";
		break;
	case 'k':
		if (parse_number(arg, 1, 1 << 24, &cfg.keys))
			return "--keys wants 1..16777216";
		break;
	case 'p':
		cfg.key_prefix = arg;
		if (!http_field_value_valid(arg, strlen(arg)) || strchr(arg, '"') ||
		    strchr(arg, '\\'))
			return "--key-prefix must be printable, without quotes or backslashes";
		break;
	case 'H':
		if (cfg.nr_headers == MAX_HEADERS)
			return "too many --header";
		if (header_arg_check(arg))
			return "--header wants 'Name: value'";
		cfg.user_host_header |= !strncasecmp(arg, "host:", 5);
		cfg.headers[cfg.nr_headers++] = arg;
		break;
	case 'm':
		cfg.method = arg;
		if (!*arg)
			return "--method must not be empty";
		for (const char *p = arg; *p; p++) {
			if (!http_is_tchar(*p))
				return "--method must be a token such as GET or POST";
		}
		break;
	case 'b':
		if (parse_number(arg, 0, 1LL << 30, &cfg.body_size))
			return "--body-size wants 0..1073741824";
		break;
	case 'C':
		cfg.chunked = true;
		break;
	case 'd':
		if (parse_number(arg, 1, 1LL << 40, &cfg.duration_ms))
			return "--duration-ms wants a number >= 1";
		break;
	case 'o':
		cfg.host = arg;
		if (!*arg || !http_field_value_valid(arg, strlen(arg)))
			return "--host wants a printable host name";
		break;
	case 'K':
		cfg.no_keepalive = true;
		break;
	case 't':
		if (parse_number(arg, 1, 1LL << 40, &cfg.timeout_ms))
			return "--timeout-ms wants a number >= 1";
		break;
	case 'r':
		cfg.raw_file = arg;
		break;
	}
	return NULL;
}

/* Fills cfg from argv; 0 or -EINVAL after printing what was wrong. */
int parse_args(int argc, char **argv)
{
	static const struct option options[] = {
		{"url", required_argument, NULL, 'u'},
		{"requests", required_argument, NULL, 'n'},
		{"connections", required_argument, NULL, 'c'},
		{"keys", required_argument, NULL, 'k'},
		{"key-prefix", required_argument, NULL, 'p'},
		{"header", required_argument, NULL, 'H'},
		{"method", required_argument, NULL, 'm'},
		{"body-size", required_argument, NULL, 'b'},
		{"chunked", no_argument, NULL, 'C'},
		{"duration-ms", required_argument, NULL, 'd'},
		{"host", required_argument, NULL, 'o'},
		{"no-keepalive", no_argument, NULL, 'K'},
		{"timeout-ms", required_argument, NULL, 't'},
		{"raw", required_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},
		{},
	};
	bool requests_given = false;
	const char *bad;
	int opt;

	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		if (opt == 'h') {
			usage(stdout);
			exit(0);
		}
		/* getopt_long() has printed what it did not know or what lacked its value. */
		if (opt == '?') {
			usage(stderr);
			return -EINVAL;
		}
		requests_given |= opt == 'n';
		bad = option_apply(opt, optarg);
		if (bad) {
			fprintf(stderr, "swclient: %s, not '%s'\n", bad, optarg);
			return -EINVAL;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "swclient: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (!cfg.url) {
		fprintf(stderr, "swclient: --url is required\n");
		usage(stderr);
		return -EINVAL;
	}
	if (url_parse(cfg.url)) {
		fprintf(stderr, "swclient: bad --url '%s': use http://127.0.0.1:PORT/PATH\n",
			cfg.url);
		return -EINVAL;
	}
	/* A duration alone means: as many requests as fit in it. */
	if (cfg.duration_ms && !requests_given)
		cfg.requests = -1;
	if (cfg.timeout_ms < 0)
		cfg.timeout_ms = cfg.raw_file ? RAW_TIMEOUT_MS : DEFAULT_TIMEOUT_MS;
	return 0;
}
