// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * sockwayd's command line, from one table: each option's name, argument, bounds, default
 * and help. The table sets the defaults, parses, and prints --help, so the three cannot
 * disagree (tests/integration/test_docs.sh compares --help with the manual page).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "options.h"
#include "policy.h"
#include "sockwayd.h"

enum opt_type {
	OPT_UINT,   /* an unsigned */
	OPT_SIZE,   /* a size_t */
	OPT_U64,    /* a __u64 */
	OPT_ADDR,   /* ADDR:PORT into swd_cfg.admin */
	OPT_LISTEN, /* ADDR:PORT added to swd_cfg.listen[] */
	OPT_FLAG,   /* a bool set to true */
	OPT_COUNT,  /* an int counted up (-v -v) */
	OPT_STRIP,  /* a field name added to swd_cfg.strip[] */
	OPT_KEEP,   /* a credential field added to swd_cfg.shadow_keep[] */
	OPT_HELP,
};

struct swd_option {
	const char *name;
	char short_name;
	enum opt_type type;
	void *target;
	unsigned long long def, min, max;
	const char *arg;     /* the argument's name in --help, NULL for none */
	const char *section; /* a heading printed before this option, or NULL */
	/* One line or more ('\n'); " (default D)" follows unless def_text says it, or the
	 * option has no default to tell ("" def_text). */
	const char *help;
	const char *def_text;
};

_Static_assert(SWD_MAX_WORKERS == 64, "--workers' help says at most 64");

#define KIB 1024ULL
#define MIB (1024ULL * 1024)

static const struct swd_option options[] = {
	{"listen", 0, OPT_LISTEN, NULL, 0, 0, 0, "ADDR:PORT", NULL,
	 "where clients connect (repeat)", "127.0.0.1:8000"},
	{"admin", 0, OPT_ADDR, NULL, 0, 0, 0, "ADDR:PORT", NULL, "/healthz, /metrics, /policy",
	 "127.0.0.1:8001"},
	{"workers", 0, OPT_UINT, &swd_cfg.workers, 0, 1, SWD_MAX_WORKERS, "N", NULL,
	 "worker threads", "one per CPU, at most 64"},
	{"verbose", 'v', OPT_COUNT, &swd_cfg.verbose, 0, 0, 0, NULL, NULL,
	 "more logging (twice: debug)", ""},
	{"help", 'h', OPT_HELP, NULL, 0, 0, 0, NULL, NULL, "this help", ""},
	{"max-request-line", 0, OPT_SIZE, &swd_cfg.limits.max_request_line, 8192, 0, MIB, "BYTES",
	 "Limits", "longer request lines get 414", NULL},
	{"max-header-bytes", 0, OPT_SIZE, &swd_cfg.limits.max_header_bytes, 32 * KIB, 0, MIB,
	 "BYTES", NULL, "larger heads get 431", NULL},
	{"max-headers", 0, OPT_UINT, &swd_cfg.limits.max_headers, 100, 0, HTTP_MAX_HEADERS, "N",
	 NULL, "more header fields get 431", NULL},
	{"max-body", 0, OPT_U64, &swd_cfg.limits.max_body, 1ULL << 30, 0, ULLONG_MAX >> 1, "BYTES",
	 NULL, "larger bodies get 413", NULL},
	{"header-timeout", 0, OPT_UINT, &swd_cfg.header_timeout_ms, 10000, 0, UINT_MAX, "MS",
	 "Timeouts (milliseconds)", "a request head must arrive in this", NULL},
	{"keepalive-timeout", 0, OPT_UINT, &swd_cfg.keepalive_timeout_ms, 60000, 0, UINT_MAX, "MS",
	 NULL, "idle client connections close after this", NULL},
	{"body-timeout", 0, OPT_UINT, &swd_cfg.body_timeout_ms, 30000, 0, UINT_MAX, "MS", NULL,
	 "a request body must progress within this", NULL},
	{"connect-timeout", 0, OPT_UINT, &swd_cfg.connect_timeout_ms, 2000, 0, UINT_MAX, "MS", NULL,
	 "upstream connect", NULL},
	{"response-timeout", 0, OPT_UINT, &swd_cfg.response_timeout_ms, 30000, 0, UINT_MAX, "MS",
	 NULL, "upstream response after the request", NULL},
	{"drain", 0, OPT_UINT, &swd_cfg.drain_ms, 10000, 0, UINT_MAX, "MS", NULL,
	 "in-flight requests get this long on SIGTERM", NULL},
	{"pool-size", 0, OPT_UINT, &swd_cfg.pool_size, 64, 0, 65536, "N", "Upstreams",
	 "idle connections kept per replica and worker", NULL},
	{"replica-down", 0, OPT_UINT, &swd_cfg.down_ms, 1000, 0, UINT_MAX, "MS", NULL,
	 "a replica that refused is skipped this long", NULL},
	{"retry-on-timeout", 0, OPT_FLAG, &swd_cfg.retry_on_timeout, 0, 0, 0, NULL, NULL,
	 "also retry an idempotent request (GET, HEAD, OPTIONS,\n"
	 "TRACE, PUT, DELETE) whose response timed out; by\n"
	 "default only requests the backend cannot have seen,\n"
	 "or idempotent ones whose connection broke, go again",
	 ""},
	{"shadow-body-max", 0, OPT_SIZE, &swd_cfg.body_copy_max, 64 * KIB, 0, 64 * MIB, "BYTES",
	 "Shadows", "request bodies kept for shadows and retries", NULL},
	{"shadow-queue", 0, OPT_UINT, &swd_cfg.shadow_queue, 1024, 0, MIB, "N", NULL,
	 "shadow requests in flight per worker", NULL},
	{"shadow-strip-header", 0, OPT_STRIP, NULL, 0, 0, 0, "H", NULL,
	 "remove header H from shadow copies (repeat)", ""},
	{"shadow-keep-header", 0, OPT_KEEP, NULL, 0, 0, 0, "H", NULL,
	 "keep credential H on shadow copies (Authorization,\n"
	 "Proxy-Authorization or Cookie: removed by default)",
	 ""},
	{"no-accel", 0, OPT_FLAG, &swd_cfg.no_accel, 0, 0, 0, NULL, "Kernel fast path",
	 "do not join the accelerated cgroup CGROUP2/sockway\n(named after the pin directory)", ""},
	{"no-splice", 0, OPT_FLAG, &swd_cfg.no_splice, 0, 0, 0, NULL, NULL,
	 "keep responses in userspace: by default the kernel\n"
	 "moves a response whose head sockwayd would pass on\n"
	 "unchanged, or the rest of a Content-Length body of\n"
	 "64 KiB or more, from a local backend straight to a\n"
	 "local client",
	 ""},
	{"no-egress", 0, OPT_FLAG, &swd_cfg.no_egress, 0, 0, 0, NULL, NULL,
	 "keep responses to remote clients in userspace: by\n"
	 "default the kernel sends the response of a local\n"
	 "accelerated backend out of sockwayd's socket to the\n"
	 "client itself (--no-splice turns this off too)",
	 ""},
	{"no-pipe", 0, OPT_FLAG, &swd_cfg.no_pipe, 0, 0, 0, NULL, NULL,
	 "copy response bodies through sockwayd: by default\n"
	 "a Content-Length body with 32 KiB or more still to\n"
	 "come, between sockets off the fast path, moves\n"
	 "through a pipe with splice(2), never copied",
	 ""},
	{"no-uring", 0, OPT_FLAG, &swd_cfg.no_uring, 0, 0, 0, NULL, NULL,
	 "read and write one socket at a time: by default the\n"
	 "writes of one event-loop round, to clients off the\n"
	 "fast path and to backends (but those lent to the\n"
	 "kernel), go out together in one io_uring_enter,\n"
	 "the wait for events is io_uring's (Linux 6.15), and\n"
	 "the sockets it reports readable are read together",
	 ""},
	{"lend", 0, OPT_UINT, &swd_cfg.lend, 16, 0, SW_LEND_SLOTS, "N", NULL,
	 "idle connections per replica and worker lent to\n"
	 "the kernel, which routes plain requests of local\n"
	 "clients over them to local backends (at most 32;\n"
	 "0: the kernel routes nothing)",
	 NULL},
};

#define NR_OPTIONS  (sizeof(options) / sizeof(options[0]))
#define HELP_COLUMN 28

static void usage(FILE *f)
{
	const struct swd_option *o;
	const char *line, *nl;
	char left[64];
	size_t i;

	fprintf(f,
		"Usage: sockwayd [--listen ADDR:PORT ...] [--admin ADDR:PORT] [--workers N] [-v]\n"
		"                [limits] [timeouts] [shadow options]\n\n");
	for (i = 0; i < NR_OPTIONS; i++) {
		o = &options[i];
		if (o->section)
			fprintf(f, "%s:\n", o->section);
		if (o->short_name)
			snprintf(left, sizeof(left), "-%c, --%s", o->short_name, o->name);
		else
			snprintf(left, sizeof(left), "--%s%s%s", o->name, o->arg ? " " : "",
				 o->arg ? o->arg : "");
		for (line = o->help; line; line = nl ? nl + 1 : NULL) {
			nl = strchr(line, '\n');
			fprintf(f, "  %-*s%.*s", HELP_COLUMN - 2, line == o->help ? left : "",
				(int)(nl ? nl - line : (long)strlen(line)), line);
			if (nl)
				fputc('\n', f);
		}
		if (o->def_text && o->def_text[0])
			fprintf(f, " (default %s)", o->def_text);
		else if (!o->def_text)
			fprintf(f, " (default %llu)", o->def);
		fputc('\n', f);
	}
}

static int parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sw_err e = {};
	struct sw_addr a;

	if (sw_parse_addr(s, &a, &e)) {
		fprintf(stderr, "sockwayd: %s\n", e.msg);
		return -EINVAL;
	}
	*len = sw_addr_to_sockaddr(&a, ss);
	return 0;
}

static int parse_number(const struct swd_option *o, const char *s)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < o->min || v > o->max) {
		fprintf(stderr, "sockwayd: --%s takes a number from %llu to %llu, not \"%s\"\n",
			o->name, o->min, o->max, s);
		return -EINVAL;
	}
	if (o->type == OPT_UINT)
		*(unsigned *)o->target = (unsigned)v;
	else if (o->type == OPT_SIZE)
		*(size_t *)o->target = (size_t)v;
	else
		*(__u64 *)o->target = v;
	return 0;
}

/* A name for a list of at most SWD_MAX_STRIP. */
static int add_name(const struct swd_option *o, const char **list, unsigned *nr, const char *s)
{
	if (*nr == SWD_MAX_STRIP) {
		fprintf(stderr, "sockwayd: at most %d --%s\n", SWD_MAX_STRIP, o->name);
		return -EINVAL;
	}
	list[(*nr)++] = s;
	return 0;
}

static int apply(const struct swd_option *o, const char *arg)
{
	switch (o->type) {
	case OPT_UINT:
	case OPT_SIZE:
	case OPT_U64:
		return parse_number(o, arg);
	case OPT_ADDR:
		return parse_addr(arg, &swd_cfg.admin, &swd_cfg.admin_len);
	case OPT_LISTEN:
		if (swd_cfg.nr_listen == SWD_MAX_LISTEN) {
			fprintf(stderr, "sockwayd: at most %d --listen\n", SWD_MAX_LISTEN);
			return -EINVAL;
		}
		if (parse_addr(arg, &swd_cfg.listen[swd_cfg.nr_listen],
			       &swd_cfg.listen_len[swd_cfg.nr_listen]))
			return -EINVAL;
		swd_cfg.nr_listen++;
		return 0;
	case OPT_FLAG:
		*(bool *)o->target = true;
		return 0;
	case OPT_COUNT:
		(*(int *)o->target)++;
		return 0;
	case OPT_STRIP:
		return add_name(o, swd_cfg.strip, &swd_cfg.nr_strip, arg);
	case OPT_KEEP:
		if (strcasecmp(arg, "authorization") && strcasecmp(arg, "cookie") &&
		    strcasecmp(arg, "proxy-authorization")) {
			fprintf(stderr,
				"sockwayd: --shadow-keep-header takes Authorization, "
				"Proxy-Authorization or Cookie, not \"%s\" (other fields are kept "
				"unless --shadow-strip-header names them)\n",
				arg);
			return -EINVAL;
		}
		return add_name(o, swd_cfg.shadow_keep, &swd_cfg.nr_shadow_keep, arg);
	case OPT_HELP:
		break;
	}
	return 0;
}

/* Every number takes its default; the addresses and the worker count theirs. */
static void set_defaults(void)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	size_t i;

	http_limits_default(&swd_cfg.limits);
	for (i = 0; i < NR_OPTIONS; i++) {
		const struct swd_option *o = &options[i];

		if (o->type == OPT_UINT && !o->def_text)
			*(unsigned *)o->target = (unsigned)o->def;
		else if (o->type == OPT_SIZE)
			*(size_t *)o->target = (size_t)o->def;
		else if (o->type == OPT_U64)
			*(__u64 *)o->target = o->def;
	}
	swd_cfg.workers = ncpu > 0 ? (ncpu < SWD_MAX_WORKERS ? ncpu : SWD_MAX_WORKERS) : 1;
	parse_addr("127.0.0.1:8001", &swd_cfg.admin, &swd_cfg.admin_len);
}

int swd_options_parse(int argc, char **argv)
{
	struct option longs[NR_OPTIONS + 1] = {};
	char shorts[2 * NR_OPTIONS + 1] = "";
	size_t i, n = 0;
	int opt, idx;

	set_defaults();
	for (i = 0; i < NR_OPTIONS; i++) {
		longs[i].name = options[i].name;
		longs[i].has_arg = options[i].arg ? required_argument : no_argument;
		longs[i].val = 256 + (int)i;
		if (options[i].short_name)
			shorts[n++] = options[i].short_name;
	}
	while ((opt = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
		if (opt == '?') {
			usage(stderr);
			return 2;
		}
		for (idx = 0; idx < (int)NR_OPTIONS; idx++)
			if (opt == 256 + idx ||
			    (options[idx].short_name && opt == options[idx].short_name))
				break;
		if (options[idx].type == OPT_HELP) {
			usage(stdout);
			return 1;
		}
		if (apply(&options[idx], optarg))
			return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "sockwayd: unexpected argument \"%s\"; see sockwayd --help\n",
			argv[optind]);
		return 2;
	}
	if (!swd_cfg.nr_listen) {
		parse_addr("127.0.0.1:8000", &swd_cfg.listen[0], &swd_cfg.listen_len[0]);
		swd_cfg.nr_listen = 1;
	}
	return 0;
}
