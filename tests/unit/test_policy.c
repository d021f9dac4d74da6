// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * The policy model (user/lib/parse.c, policy.c, validate.c): what the operator types, what
 * the CLI refuses and says, and that a refused edit leaves the policy exactly as it was.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "policy.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define ONE	      SW_WEIGHT_ONE

/* Every message is one line that main() prefixes with "sockway: ". */
static void check_msg(const struct sw_err *e, const char *want)
{
	if (!strstr(e->msg, want)) {
		print_error("message \"%s\"\n  lacks \"%s\"\n", e->msg, want);
		fail();
	}
	assert_null(strchr(e->msg, '\n'));
	assert_true(strncmp(e->msg, "error", 5));
}

static struct sw_policy *snapshot(const struct sw_policy *p)
{
	struct sw_policy *copy = policy_alloc();

	assert_non_null(copy);
	memcpy(copy, p, sizeof(*copy));
	return copy;
}

/* An edit that must fail: its code, part of its message, and p unchanged to the byte. */
#define assert_refused(p, e, expr, code, text)                                                     \
	do {                                                                                       \
		struct sw_policy *before_ = snapshot(p);                                           \
		memset(&(e), 0, sizeof(e));                                                        \
		assert_int_equal((expr), (code));                                                  \
		check_msg(&(e), (text));                                                           \
		assert_true(memcmp(before_, (p), sizeof(*(p))) == 0);                              \
		free(before_);                                                                     \
	} while (0)

/* ---- parsers ---- */

static void test_parse_name(void **state)
{
	static const char *const good[] = {
		"a", "b1", "default_backend", "A.b-c_9", "1234567890123456789012345678901",
	};
	static const struct {
		const char *in, *msg;
	} bad[] = {
		{"", "backend name is empty"},
		{"a b", "contains a space"},
		{"a/b", "contains '/'"},
		{"caf\xc3\xa9", "contains byte 0xc3"},
		{"a\tb", "\"a\\x09b\" contains byte 0x09"},
		{"12345678901234567890123456789012", "32 characters long; shorten it to 31"},
	};
	struct sw_err e;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(good); i++)
		assert_int_equal(sw_parse_name(good[i], "backend name", &e), 0);
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(sw_parse_name(bad[i].in, "backend name", &e), -EINVAL);
		check_msg(&e, bad[i].msg);
		check_msg(&e, "backend name");
	}
	/* Without an sw_err, a refusal still returns its code. */
	assert_int_equal(sw_parse_name("a b", "name", NULL), -EINVAL);
}

static void test_parse_addr(void **state)
{
	static const struct {
		const char *in;
		int family;
		__u16 port;
		__u8 addr[16];
		const char *canonical;
	} good[] = {
		{"127.0.0.1:9001", AF_INET, 9001, {127, 0, 0, 1}, "127.0.0.1:9001"},
		{"0.0.0.0:1", AF_INET, 1, {0}, "0.0.0.0:1"},
		{"255.255.255.255:65535",
		 AF_INET,
		 65535,
		 {255, 255, 255, 255},
		 "255.255.255.255:65535"},
		{"[::1]:80", AF_INET6, 80, {[15] = 1}, "[::1]:80"},
		{"[2001:DB8:0:0::1]:8080",
		 AF_INET6,
		 8080,
		 {0x20, 0x01, 0x0d, 0xb8, [15] = 1},
		 "[2001:db8::1]:8080"},
		{"[::ffff:1.2.3.4]:443",
		 AF_INET6,
		 443,
		 {[10] = 0xff, 0xff, 1, 2, 3, 4},
		 "[::ffff:1.2.3.4]:443"},
	};
	static const struct {
		const char *in, *msg;
	} bad[] = {
		{"127.0.0.1", "has no port"},
		{"127.0.0.1:", "bad port"},
		{"127.0.0.1:0", "bad port"},
		{"127.0.0.1:65536", "bad port"},
		{"127.0.0.1:123456", "bad port"},
		{"127.0.0.1:80x", "bad port"},
		{"127.0.0.1: 80", "bad port"},
		{"127.0.0.1:+80", "bad port"},
		{"127.0.0.1:0x50", "bad port"},
		{"::1:80", "IPv6 without brackets"},
		{"[::1]", "no port after ']'"},
		{"[::1]80", "no port after ']'"},
		{"[::1:80", "no closing ']'"},
		{"localhost:80", "not a numeric IPv4 address"},
		{"1.2.3:80", "not a numeric IPv4 address"},
		{"256.1.1.1:80", "not a numeric IPv4 address"},
		{"01.2.3.4:80", "not a numeric IPv4 address"},
		{"[1.2.3.4]:80", "not a numeric IPv6 address"},
		{"[]:80", "not a numeric IPv6 address"},
		{":80", "not a numeric IPv4 address"},
		{"", "has no port"},
	};
	struct sw_addr a, untouched;
	struct sw_err e;
	char buf[64];
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(good); i++) {
		memset(&a, 0xaa, sizeof(a));
		assert_int_equal(sw_parse_addr(good[i].in, &a, &e), 0);
		assert_int_equal(a.family, good[i].family);
		assert_int_equal(a.port, good[i].port);
		/* IPv4 sits in the first four bytes; the rest is zero, not left over. */
		assert_memory_equal(a.addr, good[i].addr, sizeof(a.addr));
		assert_string_equal(sw_format_addr(&a, buf, sizeof(buf)), good[i].canonical);
	}
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		memset(&a, 0x55, sizeof(a));
		untouched = a;
		assert_int_equal(sw_parse_addr(bad[i].in, &a, &e), -EINVAL);
		check_msg(&e, bad[i].msg);
		assert_memory_equal(&a, &untouched, sizeof(a));
	}
}

static void test_parse_fraction(void **state)
{
	static const struct {
		const char *in;
		__u32 units;
	} good[] = {
		{"0", 0},
		{"-0", 0},
		{"1", ONE},
		{"1.0", ONE},
		{"0.99", 990000000},
		{"0.01", 10000000},
		{"1e-2", 10000000},
		{".5", 500000000},
		{"+0.25", 250000000},
		{"0.000000001", 1},
		{"0.123456789", 123456789},
		{"0.1234567891", 123456789},
		{"1.0000000009", ONE},
	};
	static const struct {
		const char *in, *msg;
	} bad[] = {
		{"", "is not a decimal number"},
		{"abc", "is not a decimal number"},
		{"nan", "is not a decimal number"},
		{"inf", "is not a decimal number"},
		{"0x1p-1", "is not a decimal number"},
		{" 0.5", "is not a decimal number"},
		{"0.5 ", "is not a decimal number"},
		{"0.5.5", "is not a decimal number"},
		{"1e", "is not a decimal number"},
		{"1.5", "weight 1.5 is out of range; use a number from 0 to 1"},
		{"1.000000002", "out of range"},
		{"-0.1", "out of range"},
		{"1e999", "out of range"},
		{"1e-10", "below the resolution"},
	};
	struct sw_err e;
	__u32 v;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(good); i++) {
		v = 12345;
		assert_int_equal(sw_parse_fraction(good[i].in, "weight", &v, &e), 0);
		assert_int_equal(v, good[i].units);
	}
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		v = 12345;
		assert_int_equal(sw_parse_fraction(bad[i].in, "weight", &v, &e), -EINVAL);
		check_msg(&e, bad[i].msg);
		assert_int_equal(v, 12345);
	}

	assert_int_equal(sw_fraction_from_double(0.99, "weight", &v, &e), 0);
	assert_int_equal(v, 990000000);
	/* 0.1 + 0.2 + 0.7 lands a hair above 1 in binary: that is noise, not intent. */
	assert_int_equal(sw_fraction_from_double(0.1 + 0.2 + 0.7, "weight", &v, &e), 0);
	assert_int_equal(v, ONE);
	assert_int_equal(sw_fraction_from_double(NAN, "weight", &v, &e), -EINVAL);
	assert_int_equal(sw_fraction_from_double(INFINITY, "weight", &v, &e), -EINVAL);
	assert_int_equal(sw_fraction_from_double(-1e-3, "shadow fraction", &v, &e), -EINVAL);
	check_msg(&e, "shadow fraction -0.001 is out of range");
	assert_int_equal(sw_fraction_from_double(1.5, "weight", &v, &e), -EINVAL);
}

static void test_format_fraction(void **state)
{
	static const struct {
		__u32 v;
		const char *text;
	} table[] = {
		{990000000, "0.99"},
		{ONE, "1"},
		{0, "0"},
		{10000000, "0.01"},
		{1, "0.000000001"},
		{500000000, "0.5"},
		{123456789, "0.123456789"},
		{999999999, "0.999999999"},
	};
	struct sw_err e;
	char buf[32];
	__u32 k, v;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(table); i++)
		assert_string_equal(sw_format_fraction(table[i].v, buf, sizeof(buf)),
				    table[i].text);

	/* Round trip: every small value, every value near 1, and a fixed sample between. */
	srandom(1);
	for (i = 0; i < 300000; i++) {
		if (i < 100000)
			k = i;
		else if (i < 200000)
			k = ONE - (i - 100000);
		else
			k = (__u32)(((__u64)random() << 31 | random()) % (ONE + 1));
		sw_format_fraction(k, buf, sizeof(buf));
		assert_int_equal(sw_parse_fraction(buf, "weight", &v, &e), 0);
		if (v != k) {
			print_error("%u printed as %s reads back as %u\n", k, buf, v);
			fail();
		}
		/* Shortest: the printed form never ends in a zero decimal. */
		if (strchr(buf, '.'))
			assert_true(buf[strlen(buf) - 1] != '0');
	}
}

static void test_parse_methods(void **state)
{
	static const struct {
		const char *in;
		__u32 mask;
	} good[] = {
		{"GET", SW_METHOD_GET},
		{"get,Post", SW_METHOD_GET | SW_METHOD_POST},
		{"GET, POST", SW_METHOD_GET | SW_METHOD_POST},
		{"GET,GET", SW_METHOD_GET},
		{"GET,HEAD,POST,PUT,DELETE,PATCH,OPTIONS,CONNECT,TRACE", 0x1ff},
	};
	static const struct {
		const char *in, *msg;
	} bad[] = {
		{"", "has an empty entry"},
		{"FOO", "unknown method \"FOO\"; use GET, HEAD"},
		{"GET,FETCH", "unknown method \"FETCH\""},
		{"OTHER", "unknown method \"OTHER\""},
		{"GET,", "has an empty entry"},
		{",GET", "has an empty entry"},
		{"GET,,POST", "has an empty entry"},
		{"GETPOST", "unknown method"},
	};
	struct sw_err e;
	char buf[128];
	__u32 mask, back;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(good); i++) {
		assert_int_equal(sw_parse_methods(good[i].in, &mask, &e), 0);
		assert_int_equal(mask, good[i].mask);
	}
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		mask = 77;
		assert_int_equal(sw_parse_methods(bad[i].in, &mask, &e), -EINVAL);
		check_msg(&e, bad[i].msg);
		assert_int_equal(mask, 77);
	}
	assert_string_equal(sw_format_methods(0, buf, sizeof(buf)), "");
	assert_string_equal(sw_format_methods(SW_METHOD_POST | SW_METHOD_GET, buf, sizeof(buf)),
			    "GET,POST");
	assert_string_equal(sw_format_methods(SW_METHOD_TRACE, buf, sizeof(buf)), "TRACE");
	/* Every filter prints to text that reads back as itself. */
	for (mask = 1; mask < 0x200; mask++) {
		sw_format_methods(mask, buf, sizeof(buf));
		assert_int_equal(sw_parse_methods(buf, &back, &e), 0);
		assert_int_equal(back, mask);
	}
}

static void test_parse_route(void **state)
{
	static const struct {
		const char *in, *out;
	} good[] = {
		{"/", "/"},
		{"/api", "/api"},
		{"/api/", "/api"},
		{"/canary-test", "/canary-test"},
		{"/a/b/c/", "/a/b/c"},
		{"/%20x~!$&'()*+,=:@", "/%20x~!$&'()*+,=:@"},
		{"/caf%C3%A9", "/caf%C3%A9"},
		{"/a/.b/..c/...", "/a/.b/..c/..."},
	};
	static const struct {
		const char *in, *msg;
	} bad[] = {
		{"", "does not start with '/'"},
		{"api", "route \"api\" does not start with '/'; give a path prefix like \"/api\""},
		{"/a b", "contains a space"},
		{"/a?b", "contains '?'"},
		{"/a#b", "contains '#'"},
		{"//", "empty segment"},
		{"/a//b", "empty segment"},
		{"/a\x7f", "byte 0x7f"},
		{"/caf\xc3\xa9", "byte 0xc3"},
		/* Requests are matched in normal form (norm.h): a route must be in it. */
		{"/a/../b",
		 "not in the normal form requests are matched in (no dot segments, "
		 "unreserved characters unescaped, escapes in upper case); write \"/b\""},
		{"/a/./b", "write \"/a/b\""},
		{"/a/..", "write \"/\""},
		{"/.", "write \"/\""},
		{"/%61dmin", "write \"/admin\""},
		{"/caf%c3%a9", "write \"/caf%C3%A9\""},
		{"/a%2Fb", "holds what requests may not carry"},
		{"/a%2eb", "holds what requests may not carry"},
		{"/a%00", "holds what requests may not carry"},
		{"/a%5c", "holds what requests may not carry"},
		{"/a\\b", "holds what requests may not carry"},
		{"/a%zz", "holds what requests may not carry"},
		{"/a%4", "holds what requests may not carry"},
		{"/..;x/a", "contains ';'; routes are matched without path parameters"},
		{"/a;b", "contains ';'"},
		{"/a%e0%80%ae", "holds what requests may not carry"},
	};
	char out[SW_PREFIX_MAX], long_route[SW_PREFIX_MAX + 2];
	struct sw_err e;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(good); i++) {
		assert_int_equal(sw_parse_route(good[i].in, out, &e), 0);
		assert_string_equal(out, good[i].out);
	}
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(sw_parse_route(bad[i].in, out, &e), -EINVAL);
		check_msg(&e, bad[i].msg);
	}

	/* 127 characters fit; so do 128 whose last is the '/' that gets dropped; 128 do not. */
	memset(long_route, 'a', sizeof(long_route));
	long_route[0] = '/';
	long_route[SW_PREFIX_MAX - 1] = '\0';
	assert_int_equal(sw_parse_route(long_route, out, &e), 0);
	assert_string_equal(out, long_route);
	long_route[SW_PREFIX_MAX - 1] = '/';
	long_route[SW_PREFIX_MAX] = '\0';
	assert_int_equal(sw_parse_route(long_route, out, &e), 0);
	assert_int_equal(strlen(out), SW_PREFIX_MAX - 1);
	long_route[SW_PREFIX_MAX - 1] = 'a';
	assert_int_equal(sw_parse_route(long_route, out, &e), -EINVAL);
	check_msg(&e, "128 characters long; shorten it to 127");
}

static void test_parse_host(void **state)
{
	static const struct {
		const char *in, *out;
	} good[] = {
		{"example.com", "example.com"},
		{"Example.COM", "example.com"},
		{"a-b.c", "a-b.c"},
		{"10.0.0.1", "10.0.0.1"},
		{"[::1]", "[::1]"},
		{"[2001:DB8::1]", "[2001:db8::1]"},
		{"Example.COM.", "example.com"},
		{"a.", "a"},
	};
	static const struct {
		const char *in, *msg;
	} bad[] = {
		{"", "host is empty"},
		{"example.com:8080", "has a port; drop it, routes match the Host without its port"},
		{"[::1]:80", "has a port"},
		{"::1", "put it in brackets"},
		{"exa mple.com", "contains a space"},
		{"ex_ample.com", "contains '_'"},
		{"[::1", "not a bracketed IPv6 address"},
		{"[zz]", "not a bracketed IPv6 address"},
		{"[]", "not a bracketed IPv6 address"},
		{"[::1]x", "not a bracketed IPv6 address"},
		{"a..b", "has an empty label"},
		{".a", "has an empty label"},
		{"a..", "has an empty label"},
		{".", "has an empty label"},
	};
	char out[SW_HOST_MAX], long_host[SW_HOST_MAX + 1];
	struct sw_err e;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(good); i++) {
		assert_int_equal(sw_parse_host(good[i].in, out, &e), 0);
		assert_string_equal(out, good[i].out);
	}
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(sw_parse_host(bad[i].in, out, &e), -EINVAL);
		check_msg(&e, bad[i].msg);
	}
	memset(long_host, 'h', sizeof(long_host));
	long_host[SW_HOST_MAX - 1] = '\0';
	assert_int_equal(sw_parse_host(long_host, out, &e), 0);
	long_host[SW_HOST_MAX - 1] = 'h';
	long_host[SW_HOST_MAX] = '\0';
	assert_int_equal(sw_parse_host(long_host, out, &e), -EINVAL);
	check_msg(&e, "64 characters long; shorten it to 63");
}

static void test_parse_header_name(void **state)
{
	static const char *const good[] = {
		"X-SERVE-SHARD-KEY",
		"x-user",
		"a!#$%&'*+-.^`|~9",
	};
	static const struct {
		const char *in, *msg;
	} bad[] = {
		{"", "header name is empty"},
		{"X Key", "contains a space"},
		{"X:Key", "contains ':'"},
		{"X(", "contains '('"},
		{"X\"", "contains '\"'"},
		{"X_KEY", "contains '_'; sockwayd drops such fields from requests, so use '-'"},
	};
	char out[SW_HEADER_NAME_MAX], long_name[SW_HEADER_NAME_MAX + 1];
	struct sw_err e;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(good); i++) {
		assert_int_equal(sw_parse_header_name(good[i], out, &e), 0);
		assert_string_equal(out, good[i]);
	}
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(sw_parse_header_name(bad[i].in, out, &e), -EINVAL);
		check_msg(&e, bad[i].msg);
	}
	memset(long_name, 'k', sizeof(long_name));
	long_name[SW_HEADER_NAME_MAX - 1] = '\0';
	assert_int_equal(sw_parse_header_name(long_name, out, &e), 0);
	long_name[SW_HEADER_NAME_MAX - 1] = 'k';
	long_name[SW_HEADER_NAME_MAX] = '\0';
	assert_int_equal(sw_parse_header_name(long_name, out, &e), -EINVAL);
	check_msg(&e, "shorten it to 63");
}

static void test_format_quoted(void **state)
{
	char buf[16], tiny[8];

	(void)state;
	assert_string_equal(sw_format_quoted("a\"b\\c\n", buf, sizeof(buf)), "a\\\"b\\\\c\\x0a");
	assert_string_equal(sw_format_quoted("0123456789abcdef", buf, sizeof(buf)),
			    "0123456789ab...");
	/* An escape is never cut in half. */
	assert_string_equal(sw_format_quoted("abc\x01\x02", tiny, sizeof(tiny)), "abc...");
	assert_string_equal(sw_format_quoted("abc", tiny, sizeof(tiny)), "abc");
}

/* ---- the model ---- */

static struct sw_policy_backend backend(const char *name, const char *addr1, const char *addr2)
{
	struct sw_policy_backend b = {0};

	snprintf(b.name, sizeof(b.name), "%s", name);
	assert_int_equal(sw_parse_addr(addr1, &b.replicas[b.nr_replicas++], NULL), 0);
	if (addr2)
		assert_int_equal(sw_parse_addr(addr2, &b.replicas[b.nr_replicas++], NULL), 0);
	return b;
}

static struct sw_policy_endpoint endpoint(const char *name, const char *route, const char *backend1,
					  __u32 w1, const char *backend2, __u32 w2)
{
	struct sw_policy_endpoint ep = {0};

	snprintf(ep.name, sizeof(ep.name), "%s", name);
	snprintf(ep.route, sizeof(ep.route), "%s", route);
	snprintf(ep.shard_header, sizeof(ep.shard_header), "%s", SW_DEFAULT_SHARD_HEADER);
	snprintf(ep.weights[0].backend, SW_NAME_MAX, "%s", backend1);
	ep.weights[0].weight = w1;
	ep.nr_weights = 1;
	if (backend2) {
		snprintf(ep.weights[1].backend, SW_NAME_MAX, "%s", backend2);
		ep.weights[1].weight = w2;
		ep.nr_weights = 2;
	}
	return ep;
}

static struct sw_policy_weight weight(const char *name, __u32 w)
{
	struct sw_policy_weight pw = {.weight = w};

	snprintf(pw.backend, sizeof(pw.backend), "%s", name);
	return pw;
}

/*
 * The canary walkthrough: two versions of a service, a canary endpoint sending 1% to the
 * new one, a 50/50 endpoint, and a shadow backend getting half of the canary's requests.
 */
static struct sw_policy *canary_policy(void)
{
	struct sw_policy *p = policy_alloc();
	struct sw_policy_backend b;
	struct sw_policy_endpoint ep;
	struct sw_err e;

	assert_non_null(p);
	b = backend("default_backend", "127.0.0.1:9001", "127.0.0.1:9002");
	assert_int_equal(policy_add_backend(p, &b, &e), 0);
	b = backend("canary_backend", "[::1]:9003", NULL);
	assert_int_equal(policy_add_backend(p, &b, &e), 0);
	b = backend("shadow_a", "127.0.0.1:9004", NULL);
	assert_int_equal(policy_add_backend(p, &b, &e), 0);
	ep = endpoint("canary", "/canary-test", "default_backend", 990000000, "canary_backend",
		      10000000);
	assert_int_equal(policy_add_endpoint(p, &ep, &e), 0);
	ep = endpoint("fifty", "/fifty", "default_backend", ONE / 2, "canary_backend", ONE / 2);
	assert_int_equal(policy_add_endpoint(p, &ep, &e), 0);
	assert_int_equal(policy_set_shadow(p, "canary", "shadow_a", ONE / 2, &e), 0);
	assert_int_equal(policy_validate(p, &e), 0);
	return p;
}

static int setup_canary(void **state)
{
	*state = canary_policy();
	return 0;
}

static int teardown_policy(void **state)
{
	policy_free(*state);
	return 0;
}

static void test_lists_stay_sorted(void **state)
{
	struct sw_policy *p = *state;
	const struct sw_policy_endpoint *ep;

	assert_int_equal(p->nr_backends, 3);
	assert_string_equal(p->backends[0].name, "canary_backend");
	assert_string_equal(p->backends[1].name, "default_backend");
	assert_string_equal(p->backends[2].name, "shadow_a");
	/* Replicas keep the order they were given in. */
	assert_int_equal(p->backends[1].replicas[0].port, 9001);
	assert_int_equal(p->backends[1].replicas[1].port, 9002);
	assert_int_equal(p->nr_endpoints, 2);
	assert_string_equal(p->endpoints[0].name, "canary");
	assert_string_equal(p->endpoints[1].name, "fifty");
	ep = policy_find_endpoint(p, "canary");
	assert_ptr_equal(ep, &p->endpoints[0]);
	assert_string_equal(ep->weights[0].backend, "canary_backend");
	assert_int_equal(ep->weights[0].weight, 10000000);
	assert_string_equal(ep->weights[1].backend, "default_backend");
	assert_int_equal(ep->weights[1].weight, 990000000);
	assert_ptr_equal(policy_find_backend(p, "shadow_a"), &p->backends[2]);
	assert_null(policy_find_backend(p, "nope"));
	assert_null(policy_find_endpoint(p, "nope"));
}

/*
 * Ids say where an entry lives in the maps; the commit takes them from the policy it
 * replaces. An added entry has none yet, and every edit keeps the ids of the others.
 */
static void test_edits_keep_ids(void **state)
{
	struct sw_policy *p = *state;
	struct sw_policy_weight w[2] = {weight("default_backend", ONE / 4),
					weight("canary_backend", 3 * (ONE / 4))};
	struct sw_policy_backend b = backend("a_new", "127.0.0.1:9005", NULL);
	struct sw_policy_endpoint ep = endpoint("new", "/new", "default_backend", ONE, NULL, 0);
	struct sw_err e;
	__u32 i;

	/* As policy_read() would: ids in creation order, not name order. */
	for (i = 0; i < p->nr_backends; i++) {
		assert_int_equal(p->backends[i].id, SW_ID_NONE);
		p->backends[i].id = 10 + i;
	}
	for (i = 0; i < p->nr_endpoints; i++)
		p->endpoints[i].id = 20 + i;
	b.id = 7;
	assert_int_equal(policy_add_backend(p, &b, &e), 0);
	ep.id = 8;
	assert_int_equal(policy_add_endpoint(p, &ep, &e), 0);
	assert_int_equal(policy_set_traffic(p, "fifty", w, 2, &e), 0);
	assert_int_equal(policy_set_shadow(p, "fifty", "shadow_a", ONE / 10, &e), 0);
	assert_int_equal(policy_del_endpoint(p, "canary", &e), 0);

	assert_int_equal(policy_find_backend(p, "a_new")->id, SW_ID_NONE);
	assert_int_equal(policy_find_backend(p, "canary_backend")->id, 10);
	assert_int_equal(policy_find_backend(p, "default_backend")->id, 11);
	assert_int_equal(policy_find_backend(p, "shadow_a")->id, 12);
	assert_int_equal(policy_find_endpoint(p, "fifty")->id, 21);
	assert_int_equal(policy_find_endpoint(p, "new")->id, SW_ID_NONE);
	policy_sort(p);
	assert_int_equal(policy_find_backend(p, "shadow_a")->id, 12);
}

static void test_add_backend_refusals(void **state)
{
	struct sw_policy *p = *state;
	struct sw_policy_backend b;
	struct sw_err e;
	__u32 i;

	b = backend("default_backend", "127.0.0.1:1", NULL);
	assert_refused(p, e, policy_add_backend(p, &b, &e), -EEXIST,
		       "backend \"default_backend\" already exists; pick another name, or delete "
		       "it first with \"sockway backend delete default_backend\"");
	b = backend("b 1", "127.0.0.1:1", NULL);
	assert_refused(p, e, policy_add_backend(p, &b, &e), -EINVAL, "contains a space");
	b = backend("b1", "127.0.0.1:1", NULL);
	b.nr_replicas = 0;
	assert_refused(p, e, policy_add_backend(p, &b, &e), -EINVAL,
		       "backend \"b1\" has no replicas; give it at least one ADDR:PORT");
	b = backend("b1", "127.0.0.1:1", "127.0.0.1:1");
	assert_refused(p, e, policy_add_backend(p, &b, &e), -EINVAL,
		       "backend \"b1\" lists replica 127.0.0.1:1 twice");
	b = backend("b1", "[::1]:1", "[0::1]:1");
	assert_refused(p, e, policy_add_backend(p, &b, &e), -EINVAL, "[::1]:1 twice");
	b = backend("b1", "127.0.0.1:1", NULL);
	for (i = 1; i < SW_MAX_REPLICAS; i++) {
		b.replicas[i] = b.replicas[0];
		b.replicas[i].port = 1 + i;
	}
	/* The count is checked before any replica past the array is read. */
	b.nr_replicas = SW_MAX_REPLICAS + 1;
	assert_refused(p, e, policy_add_backend(p, &b, &e), -ENOSPC, "17 replicas (limit 16)");
	b.nr_replicas = SW_MAX_REPLICAS;
	assert_int_equal(policy_add_backend(p, &b, &e), 0);
	b = backend("b2", "127.0.0.1:1", NULL);
	b.replicas[0].port = 0;
	assert_refused(p, e, policy_add_backend(p, &b, &e), -EINVAL, "is not a valid address");
	/* A name that fills its array without a NUL must not be read past. */
	b = backend("b2", "127.0.0.1:1", NULL);
	memset(b.name, 'n', sizeof(b.name));
	assert_refused(p, e, policy_add_backend(p, &b, &e), -EINVAL, "not terminated");
}

static void test_backend_limit(void **state)
{
	struct sw_policy *p = policy_alloc();
	struct sw_policy_backend b;
	struct sw_err e;
	__u32 i;

	(void)state;
	assert_non_null(p);
	/* Added in reverse to exercise the sorted insert at the front. */
	for (i = SW_MAX_BACKENDS; i-- > 0;) {
		b = backend("x", "127.0.0.1:1", NULL);
		snprintf(b.name, sizeof(b.name), "b%03u", i);
		assert_int_equal(policy_add_backend(p, &b, &e), 0);
	}
	assert_int_equal(p->nr_backends, SW_MAX_BACKENDS);
	for (i = 0; i < SW_MAX_BACKENDS; i++) {
		snprintf(b.name, sizeof(b.name), "b%03u", i);
		assert_string_equal(p->backends[i].name, b.name);
	}
	b = backend("one_more", "127.0.0.1:1", NULL);
	assert_refused(p, e, policy_add_backend(p, &b, &e), -ENOSPC,
		       "too many backends (limit 256)");
	assert_int_equal(policy_validate(p, &e), 0);
	policy_free(p);
}

static void test_del_backend(void **state)
{
	struct sw_policy *p = *state;
	struct sw_policy_weight w[2];
	struct sw_policy_backend b;
	struct sw_err e;

	assert_refused(p, e, policy_del_backend(p, "b9", &e), -ENOENT,
		       "backend \"b9\" does not exist");
	assert_refused(p, e, policy_del_backend(p, "default_backend", &e), -EBUSY,
		       "cannot delete backend \"default_backend\": endpoints canary, fifty use it; "
		       "move their traffic and shadows off it first");
	/* A shadow is a use too. */
	assert_refused(p, e, policy_del_backend(p, "shadow_a", &e), -EBUSY,
		       "endpoint canary uses it; move its traffic");
	/* So is a weight of 0: it keeps the backend's counters for a rollback. */
	w[0] = weight("canary_backend", 0);
	w[1] = weight("default_backend", ONE);
	assert_int_equal(policy_set_traffic(p, "fifty", w, 2, &e), 0);
	assert_refused(p, e, policy_del_backend(p, "canary_backend", &e), -EBUSY,
		       "endpoints canary, fifty use it");

	b = backend("unused", "127.0.0.1:7", NULL);
	assert_int_equal(policy_add_backend(p, &b, &e), 0);
	assert_int_equal(p->nr_backends, 4);
	assert_int_equal(policy_del_backend(p, "canary", &e), -ENOENT);
	assert_int_equal(policy_del_backend(p, "shadow_a", &e), -EBUSY);
	assert_int_equal(policy_set_shadow(p, "canary", "shadow_a", 0, &e), 0);
	assert_int_equal(policy_del_backend(p, "shadow_a", &e), 0);
	assert_int_equal(p->nr_backends, 3);
	assert_string_equal(p->backends[2].name, "unused");
	/* The freed slot is cleared, so the policy compares equal to one never holding it. */
	assert_int_equal(p->backends[3].name[0], 0);
	assert_int_equal(p->backends[3].nr_replicas, 0);
	assert_int_equal(policy_validate(p, &e), 0);
}

static void test_del_backend_many_users(void **state)
{
	struct sw_policy *p = policy_alloc();
	struct sw_policy_backend b = backend("b1", "127.0.0.1:1", NULL);
	struct sw_policy_endpoint ep;
	struct sw_err e;
	__u32 i;

	(void)state;
	assert_int_equal(policy_add_backend(p, &b, &e), 0);
	for (i = 0; i < 40; i++) {
		ep = endpoint("x", "/", "b1", ONE, NULL, 0);
		snprintf(ep.name, sizeof(ep.name), "endpoint_with_a_long_name_%02u", i);
		snprintf(ep.route, sizeof(ep.route), "/r%u", i);
		assert_int_equal(policy_add_endpoint(p, &ep, &e), 0);
	}
	/* The list is cut, but the message keeps its count and its advice. */
	assert_refused(p, e, policy_del_backend(p, "b1", &e), -EBUSY, "more use it; move their");
	check_msg(&e, "endpoints endpoint_with_a_long_name_00, endpoint_with_a_long_name_01");
	policy_free(p);
}

static void test_add_endpoint(void **state)
{
	struct sw_policy *p = *state;
	struct sw_policy_endpoint ep;
	struct sw_err e;

	ep = endpoint("canary", "/other", "default_backend", ONE, NULL, 0);
	assert_refused(p, e, policy_add_endpoint(p, &ep, &e), -EEXIST,
		       "endpoint \"canary\" already exists");
	ep = endpoint("copy", "/canary-test", "default_backend", ONE, NULL, 0);
	assert_refused(p, e, policy_add_endpoint(p, &ep, &e), -EEXIST,
		       "endpoint \"canary\" already has route /canary-test on any host; give "
		       "endpoint \"copy\" another route or host");
	ep = endpoint("new", "/new", "b9", ONE, NULL, 0);
	assert_refused(p, e, policy_add_endpoint(p, &ep, &e), -ENOENT,
		       "backend \"b9\" does not exist; create it with \"sockway backend create b9 "
		       "ADDR:PORT\"");
	ep = endpoint("new", "/new", "default_backend", 980000000, NULL, 0);
	assert_refused(p, e, policy_add_endpoint(p, &ep, &e), -EINVAL,
		       "weights of endpoint \"new\" sum to 0.98, not 1.0 (within 1e-06); adjust "
		       "them so they add up to 1");
	ep = endpoint("new", "/new", "default_backend", ONE / 2, "default_backend", ONE / 2);
	assert_refused(p, e, policy_add_endpoint(p, &ep, &e), -EINVAL,
		       "backend \"default_backend\" appears twice");
	ep = endpoint("new", "/new", "default_backend", ONE, NULL, 0);
	ep.nr_weights = 0;
	assert_refused(p, e, policy_add_endpoint(p, &ep, &e), -EINVAL, "has no traffic weights");
	ep = endpoint("new", "/new/", "default_backend", ONE, NULL, 0);
	assert_refused(p, e, policy_add_endpoint(p, &ep, &e), -EINVAL, "write it as \"/new\"");
	ep = endpoint("new", "new", "default_backend", ONE, NULL, 0);
	assert_refused(p, e, policy_add_endpoint(p, &ep, &e), -EINVAL, "does not start with '/'");
	ep = endpoint("new", "/new", "default_backend", ONE, NULL, 0);
	strcpy(ep.host, "Example.com");
	assert_refused(p, e, policy_add_endpoint(p, &ep, &e), -EINVAL, "not in lower case");
	ep = endpoint("new", "/new", "default_backend", ONE, NULL, 0);
	ep.methods = SW_METHOD_OTHER;
	assert_refused(p, e, policy_add_endpoint(p, &ep, &e), -EINVAL, "unknown method bits 0x200");
	ep = endpoint("new", "/new", "default_backend", ONE, NULL, 0);
	ep.shard_header[0] = '\0';
	assert_refused(p, e, policy_add_endpoint(p, &ep, &e), -EINVAL, "header name is empty");
	ep = endpoint("new", "/new", "default_backend", ONE, NULL, 0);
	ep.nr_shadows = 1;
	strcpy(ep.shadows[0].backend, "default_backend");
	ep.shadows[0].fraction = ONE / 10;
	assert_refused(p, e, policy_add_endpoint(p, &ep, &e), -EINVAL,
		       "backend \"default_backend\" both serves and shadows endpoint \"new\"");
	ep.shadows[0] = (struct sw_policy_shadow){.backend = "shadow_a", .fraction = 0};
	assert_refused(p, e, policy_add_endpoint(p, &ep, &e), -EINVAL,
		       "shadow fraction 0 of backend \"shadow_a\" on endpoint \"new\" is out of "
		       "range");

	/* The same route on a named host is another route. */
	ep = endpoint("on_host", "/canary-test", "default_backend", ONE, NULL, 0);
	strcpy(ep.host, "example.com");
	ep.methods = SW_METHOD_GET | SW_METHOD_HEAD;
	ep.shadows[0] = (struct sw_policy_shadow){.backend = "shadow_a", .fraction = 1};
	ep.nr_shadows = 1;
	assert_int_equal(policy_add_endpoint(p, &ep, &e), 0);
	ep = endpoint("again", "/canary-test", "default_backend", ONE, NULL, 0);
	strcpy(ep.host, "example.com");
	assert_refused(p, e, policy_add_endpoint(p, &ep, &e), -EEXIST,
		       "endpoint \"on_host\" already has route /canary-test on host example.com");
	assert_int_equal(p->nr_endpoints, 3);
	assert_string_equal(p->endpoints[2].name, "on_host");
	assert_int_equal(policy_validate(p, &e), 0);

	assert_refused(p, e, policy_del_endpoint(p, "nope", &e), -ENOENT,
		       "endpoint \"nope\" does not exist");
	assert_int_equal(policy_del_endpoint(p, "canary", &e), 0);
	assert_int_equal(p->nr_endpoints, 2);
	assert_string_equal(p->endpoints[0].name, "fifty");
	assert_int_equal(p->endpoints[2].name[0], 0);
}

static void test_endpoint_limit(void **state)
{
	struct sw_policy *p = policy_alloc();
	struct sw_policy_backend b = backend("b1", "127.0.0.1:1", NULL);
	struct sw_policy_endpoint ep;
	struct sw_err e;
	__u32 i;

	(void)state;
	assert_int_equal(policy_add_backend(p, &b, &e), 0);
	for (i = 0; i <= SW_MAX_ENDPOINTS; i++) {
		ep = endpoint("x", "/", "b1", ONE, NULL, 0);
		snprintf(ep.name, sizeof(ep.name), "e%03u", i);
		snprintf(ep.route, sizeof(ep.route), "/r%u", i);
		if (i < SW_MAX_ENDPOINTS)
			assert_int_equal(policy_add_endpoint(p, &ep, &e), 0);
		else
			assert_refused(p, e, policy_add_endpoint(p, &ep, &e), -ENOSPC,
				       "too many endpoints (limit 256)");
	}
	assert_int_equal(policy_validate(p, &e), 0);
	policy_free(p);
}

static void test_set_traffic(void **state)
{
	struct sw_policy *p = *state;
	struct sw_policy_weight w[SW_MAX_SPLIT + 1];
	const struct sw_policy_endpoint *ep;
	struct sw_err e;
	__u32 i;

	w[0] = weight("default_backend", 980000000);
	assert_refused(p, e, policy_set_traffic(p, "canary", w, 1, &e), -EINVAL,
		       "weights of endpoint \"canary\" sum to 0.98, not 1.0 (within 1e-06); adjust "
		       "them so they add up to 1");
	w[0] = weight("default_backend", 600000000);
	w[1] = weight("canary_backend", 500000000);
	assert_refused(p, e, policy_set_traffic(p, "canary", w, 2, &e), -EINVAL, "sum to 1.1,");
	/* The tolerance is 1e-6 either way, and no more. */
	w[0] = weight("default_backend", ONE - SW_WEIGHT_TOLERANCE - 1);
	assert_refused(p, e, policy_set_traffic(p, "canary", w, 1, &e), -EINVAL,
		       "sum to 0.999998999,");
	w[0] = weight("default_backend", ONE + SW_WEIGHT_TOLERANCE + 1);
	assert_refused(p, e, policy_set_traffic(p, "canary", w, 1, &e), -EINVAL, "is above 1");
	w[0] = weight("default_backend", ONE / 2);
	w[1] = weight("canary_backend", ONE / 2 + SW_WEIGHT_TOLERANCE + 1);
	assert_refused(p, e, policy_set_traffic(p, "canary", w, 2, &e), -EINVAL,
		       "sum to 1.000001001,");
	w[0] = weight("b9", ONE);
	assert_refused(p, e, policy_set_traffic(p, "canary", w, 1, &e), -ENOENT,
		       "backend \"b9\" does not exist");
	w[0] = weight("default_backend", ONE);
	assert_refused(p, e, policy_set_traffic(p, "nope", w, 1, &e), -ENOENT,
		       "endpoint \"nope\" does not exist");
	assert_refused(p, e, policy_set_traffic(p, "canary", w, 0, &e), -EINVAL,
		       "has no traffic weights");
	w[0] = weight("default_backend", ONE / 2);
	w[1] = weight("default_backend", ONE / 2);
	assert_refused(p, e, policy_set_traffic(p, "canary", w, 2, &e), -EINVAL, "appears twice");
	w[0] = weight("shadow_a", ONE);
	assert_refused(p, e, policy_set_traffic(p, "canary", w, 1, &e), -EINVAL,
		       "both serves and shadows endpoint \"canary\"");
	for (i = 0; i <= SW_MAX_SPLIT; i++)
		w[i] = weight("default_backend", 0);
	assert_refused(p, e, policy_set_traffic(p, "canary", w, SW_MAX_SPLIT + 1, &e), -ENOSPC,
		       "between 65 backends (limit 64)");

	/* Within the tolerance is accepted; the split is stored sorted by name. */
	w[0] = weight("default_backend", 333333333);
	w[1] = weight("canary_backend", 666666666);
	assert_int_equal(policy_set_traffic(p, "fifty", w, 2, &e), 0);
	ep = policy_find_endpoint(p, "fifty");
	assert_int_equal(ep->nr_weights, 2);
	assert_string_equal(ep->weights[0].backend, "canary_backend");
	assert_int_equal(ep->weights[0].weight, 666666666);
	assert_string_equal(ep->weights[1].backend, "default_backend");
	w[0] = weight("default_backend", ONE);
	assert_int_equal(policy_set_traffic(p, "fifty", w, 1, &e), 0);
	assert_int_equal(ep->nr_weights, 1);
	assert_int_equal(ep->weights[1].weight, 0);
	assert_int_equal(ep->weights[1].backend[0], 0);
	assert_int_equal(policy_validate(p, &e), 0);
}

static void test_set_shadow(void **state)
{
	struct sw_policy *p = *state;
	struct sw_policy_backend b;
	const struct sw_policy_endpoint *ep = policy_find_endpoint(p, "fifty");
	struct sw_policy *before;
	char name[SW_NAME_MAX];
	struct sw_err e;
	int i;

	assert_refused(p, e, policy_set_shadow(p, "fifty", "b9", ONE, &e), -ENOENT,
		       "backend \"b9\" does not exist");
	assert_refused(p, e, policy_set_shadow(p, "nope", "shadow_a", ONE, &e), -ENOENT,
		       "endpoint \"nope\" does not exist");
	assert_refused(p, e, policy_set_shadow(p, "fifty", "shadow_a", ONE + 1, &e), -EINVAL,
		       "shadow fraction 1.000000001 of backend \"shadow_a\" is above 1");
	assert_refused(p, e, policy_set_shadow(p, "fifty", "default_backend", ONE / 10, &e),
		       -EINVAL,
		       "backend \"default_backend\" both serves and shadows endpoint \"fifty\"");
	/* Stopping a shadow that is not there changes nothing and is not an error. */
	before = snapshot(p);
	assert_int_equal(policy_set_shadow(p, "fifty", "shadow_a", 0, &e), 0);
	assert_true(memcmp(before, p, sizeof(*p)) == 0);
	free(before);

	for (i = 0; i < SW_MAX_SHADOWS + 1; i++) {
		snprintf(name, sizeof(name), "s%d", SW_MAX_SHADOWS - i);
		b = backend(name, "127.0.0.1:5", NULL);
		assert_int_equal(policy_add_backend(p, &b, &e), 0);
		if (i < SW_MAX_SHADOWS)
			assert_int_equal(policy_set_shadow(p, "fifty", name, 1 + i, &e), 0);
		else
			assert_refused(p, e, policy_set_shadow(p, "fifty", name, 1, &e), -ENOSPC,
				       "endpoint \"fifty\" already has 4 shadows (limit 4); stop "
				       "one with \"sockway shadow set fifty BACKEND 0\"");
	}
	assert_int_equal(ep->nr_shadows, SW_MAX_SHADOWS);
	assert_string_equal(ep->shadows[0].backend, "s1");
	assert_int_equal(ep->shadows[0].fraction, 4);
	assert_string_equal(ep->shadows[3].backend, "s4");
	/* Updating an existing shadow needs no free place. */
	assert_int_equal(policy_set_shadow(p, "fifty", "s4", ONE, &e), 0);
	assert_int_equal(ep->shadows[3].fraction, ONE);
	assert_int_equal(policy_set_shadow(p, "fifty", "s2", 0, &e), 0);
	assert_int_equal(ep->nr_shadows, 3);
	assert_string_equal(ep->shadows[1].backend, "s3");
	assert_int_equal(ep->shadows[3].backend[0], 0);
	assert_int_equal(policy_validate(p, &e), 0);
}

/* Breaks one thing in a copy of the canary policy and expects policy_validate() to say so. */
static void expect_invalid(const struct sw_policy *good, void (*breaker)(struct sw_policy *),
			   int code, const char *msg)
{
	struct sw_policy *p = snapshot(good);
	struct sw_err e = {0};

	breaker(p);
	assert_int_equal(policy_validate(p, &e), code);
	check_msg(&e, msg);
	policy_free(p);
}

static void dup_backend(struct sw_policy *p)
{
	p->backends[2] = p->backends[1];
}

static void missing_backend(struct sw_policy *p)
{
	strcpy(p->endpoints[1].weights[0].backend, "gone");
}

static void bad_sum(struct sw_policy *p)
{
	p->endpoints[0].weights[0].weight = 20000000;
}

static void dup_route(struct sw_policy *p)
{
	strcpy(p->endpoints[1].route, "/canary-test");
}

static void dup_endpoint(struct sw_policy *p)
{
	p->endpoints[1] = p->endpoints[0];
	strcpy(p->endpoints[1].route, "/other");
}

static void bad_header(struct sw_policy *p)
{
	strcpy(p->endpoints[1].shard_header, "X Key");
}

static void no_weights(struct sw_policy *p)
{
	p->endpoints[1].nr_weights = 0;
}

static void zero_shadow(struct sw_policy *p)
{
	p->endpoints[0].shadows[0].fraction = 0;
}

static void shadow_serves(struct sw_policy *p)
{
	strcpy(p->endpoints[0].shadows[0].backend, "canary_backend");
}

static void too_many_backends(struct sw_policy *p)
{
	p->nr_backends = SW_MAX_BACKENDS + 1;
}

static void no_replicas(struct sw_policy *p)
{
	p->backends[0].nr_replicas = 0;
}

static void port_zero(struct sw_policy *p)
{
	p->backends[1].replicas[1].port = 0;
}

static void bad_endpoint_name(struct sw_policy *p)
{
	strcpy(p->endpoints[0].name, "a/b");
}

static void unterminated_route(struct sw_policy *p)
{
	memset(p->endpoints[0].route, 'a', sizeof(p->endpoints[0].route));
}

static void test_validate(void **state)
{
	struct sw_policy *p = *state;
	struct sw_policy *shuffled = snapshot(p);
	struct sw_policy_backend tmp;
	struct sw_err e;

	assert_int_equal(policy_validate(p, &e), 0);
	/* Order is not validity: a policy read in map order validates the same. */
	tmp = shuffled->backends[0];
	shuffled->backends[0] = shuffled->backends[2];
	shuffled->backends[2] = tmp;
	assert_int_equal(policy_validate(shuffled, &e), 0);
	policy_free(shuffled);

	expect_invalid(p, dup_backend, -EEXIST, "backend \"default_backend\" is defined twice");
	expect_invalid(p, missing_backend, -ENOENT,
		       "endpoint \"fifty\" uses backend \"gone\", which is not defined; add it "
		       "under \"backends\"");
	expect_invalid(p, bad_sum, -EINVAL, "weights of endpoint \"canary\" sum to 1.01, not 1.0");
	expect_invalid(p, dup_route, -EEXIST, "already has route /canary-test on any host");
	expect_invalid(p, dup_endpoint, -EEXIST, "endpoint \"canary\" is defined twice");
	expect_invalid(p, bad_header, -EINVAL, "header name \"X Key\" contains a space");
	expect_invalid(p, no_weights, -EINVAL, "endpoint \"fifty\" has no traffic weights");
	expect_invalid(p, zero_shadow, -EINVAL, "shadow fraction 0 of backend \"shadow_a\"");
	expect_invalid(p, shadow_serves, -EINVAL, "both serves and shadows");
	expect_invalid(p, too_many_backends, -ENOSPC, "too many backends (257, limit 256)");
	expect_invalid(p, no_replicas, -EINVAL, "backend \"canary_backend\" has no replicas");
	expect_invalid(p, port_zero, -EINVAL, "replica 2 of backend \"default_backend\"");
	expect_invalid(p, bad_endpoint_name, -EINVAL, "endpoint name \"a/b\" contains '/'");
	expect_invalid(p, unterminated_route, -EINVAL, "route is not terminated within 128 bytes");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_name),
		cmocka_unit_test(test_parse_addr),
		cmocka_unit_test(test_parse_fraction),
		cmocka_unit_test(test_format_fraction),
		cmocka_unit_test(test_parse_methods),
		cmocka_unit_test(test_parse_route),
		cmocka_unit_test(test_parse_host),
		cmocka_unit_test(test_parse_header_name),
		cmocka_unit_test(test_format_quoted),
		cmocka_unit_test_setup_teardown(test_lists_stay_sorted, setup_canary,
						teardown_policy),
		cmocka_unit_test_setup_teardown(test_edits_keep_ids, setup_canary, teardown_policy),
		cmocka_unit_test_setup_teardown(test_add_backend_refusals, setup_canary,
						teardown_policy),
		cmocka_unit_test(test_backend_limit),
		cmocka_unit_test_setup_teardown(test_del_backend, setup_canary, teardown_policy),
		cmocka_unit_test(test_del_backend_many_users),
		cmocka_unit_test_setup_teardown(test_add_endpoint, setup_canary, teardown_policy),
		cmocka_unit_test(test_endpoint_limit),
		cmocka_unit_test_setup_teardown(test_set_traffic, setup_canary, teardown_policy),
		cmocka_unit_test_setup_teardown(test_set_shadow, setup_canary, teardown_policy),
		cmocka_unit_test_setup_teardown(test_validate, setup_canary, teardown_policy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
