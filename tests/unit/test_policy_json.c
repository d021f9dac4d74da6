// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * The policy file (user/lib/policy_json.c): the exact text export writes, that export and
 * import round-trip to the byte and to the struct, and what a bad file is told.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy_json.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define ONE	      SW_WEIGHT_ONE

static void check_msg(const struct sw_err *e, const char *want)
{
	if (!strstr(e->msg, want)) {
		print_error("message \"%s\"\n  lacks \"%s\"\n", e->msg, want);
		fail();
	}
	assert_null(strchr(e->msg, '\n'));
}

/* The canary walkthrough as a file, in the order a person might write it. */
static const char canary_doc[] =
	"{\n"
	"  \"version\": 1,\n"
	"  \"backends\": {\n"
	"    \"default_backend\": { \"replicas\": [\"127.0.0.1:9001\", \"127.0.0.1:9002\"] },\n"
	"    \"canary_backend\": { \"replicas\": [\"[::1]:9003\"] },\n"
	"    \"shadow_a\": { \"replicas\": [\"127.0.0.1:9004\"] }\n"
	"  },\n"
	"  \"endpoints\": {\n"
	"    \"fifty\": {\n"
	"      \"route\": \"/fifty/\",\n"
	"      \"traffic\": { \"default_backend\": 0.5, \"canary_backend\": 0.5 }\n"
	"    },\n"
	"    \"canary\": {\n"
	"      \"route\": \"/canary-test\",\n"
	"      \"host\": \"Example.com\",\n"
	"      \"methods\": [\"post\", \"GET\"],\n"
	"      \"shard_header\": \"X-User\",\n"
	"      \"traffic\": { \"default_backend\": 0.99, \"canary_backend\": 1e-2 },\n"
	"      \"shadows\": { \"shadow_a\": 0.5 }\n"
	"    }\n"
	"  }\n"
	"}\n";

/* What export makes of it: sorted keys, two-space indent, shortest numbers, defaults shown. */
static const char canary_export[] = "{\n"
				    "  \"backends\": {\n"
				    "    \"canary_backend\": {\n"
				    "      \"replicas\": [\n"
				    "        \"[::1]:9003\"\n"
				    "      ]\n"
				    "    },\n"
				    "    \"default_backend\": {\n"
				    "      \"replicas\": [\n"
				    "        \"127.0.0.1:9001\",\n"
				    "        \"127.0.0.1:9002\"\n"
				    "      ]\n"
				    "    },\n"
				    "    \"shadow_a\": {\n"
				    "      \"replicas\": [\n"
				    "        \"127.0.0.1:9004\"\n"
				    "      ]\n"
				    "    }\n"
				    "  },\n"
				    "  \"endpoints\": {\n"
				    "    \"canary\": {\n"
				    "      \"host\": \"example.com\",\n"
				    "      \"methods\": [\n"
				    "        \"GET\",\n"
				    "        \"POST\"\n"
				    "      ],\n"
				    "      \"route\": \"/canary-test\",\n"
				    "      \"shadows\": {\n"
				    "        \"shadow_a\": 0.5\n"
				    "      },\n"
				    "      \"shard_header\": \"X-User\",\n"
				    "      \"traffic\": {\n"
				    "        \"canary_backend\": 0.01,\n"
				    "        \"default_backend\": 0.99\n"
				    "      }\n"
				    "    },\n"
				    "    \"fifty\": {\n"
				    "      \"route\": \"/fifty\",\n"
				    "      \"shard_header\": \"X-SERVE-SHARD-KEY\",\n"
				    "      \"traffic\": {\n"
				    "        \"canary_backend\": 0.5,\n"
				    "        \"default_backend\": 0.5\n"
				    "      }\n"
				    "    }\n"
				    "  },\n"
				    "  \"version\": 1\n"
				    "}\n";

static struct sw_policy *load(const char *doc)
{
	struct sw_policy *p = policy_alloc();
	struct sw_err e = {0};
	int err;

	assert_non_null(p);
	err = policy_from_json(doc, strlen(doc), p, &e);
	if (err) {
		print_error("policy_from_json: %d %s\n", err, e.msg);
		fail();
	}
	return p;
}

/*
 * export(import(export(p))) is export(p) to the byte, and import(export(p)) is p to the byte:
 * nothing is lost or added on the way through the file.
 */
static void assert_round_trip(const struct sw_policy *p)
{
	char *text, *again;
	struct sw_policy *back;

	text = policy_to_json(p);
	assert_non_null(text);
	back = load(text);
	assert_true(memcmp(back, p, sizeof(*p)) == 0);
	again = policy_to_json(back);
	assert_non_null(again);
	assert_string_equal(again, text);
	free(again);
	free(text);
	policy_free(back);
}

static void test_canary_file(void **state)
{
	struct sw_policy *p = load(canary_doc);
	const struct sw_policy_endpoint *ep;
	struct sw_err e;
	char *text;

	(void)state;
	assert_int_equal(policy_validate(p, &e), 0);
	assert_int_equal(p->nr_backends, 3);
	assert_string_equal(p->backends[0].name, "canary_backend");
	/* A file says nothing of where an entry lives: the commit finds out. */
	assert_int_equal(p->backends[0].id, SW_ID_NONE);
	ep = policy_find_endpoint(p, "canary");
	assert_int_equal(ep->id, SW_ID_NONE);
	assert_ptr_equal(ep, &p->endpoints[0]);
	assert_string_equal(ep->host, "example.com");
	assert_int_equal(ep->methods, SW_METHOD_GET | SW_METHOD_POST);
	assert_string_equal(ep->weights[0].backend, "canary_backend");
	assert_int_equal(ep->weights[0].weight, 10000000);
	assert_int_equal(ep->weights[1].weight, 990000000);
	assert_int_equal(ep->shadows[0].fraction, ONE / 2);
	ep = policy_find_endpoint(p, "fifty");
	assert_string_equal(ep->route, "/fifty");
	assert_string_equal(ep->shard_header, SW_DEFAULT_SHARD_HEADER);
	assert_string_equal(ep->host, "");
	assert_int_equal(ep->methods, 0);
	assert_int_equal(ep->nr_shadows, 0);

	text = policy_to_json(p);
	assert_non_null(text);
	assert_string_equal(text, canary_export);
	free(text);
	assert_round_trip(p);
	policy_free(p);
}

static void test_empty_policy(void **state)
{
	struct sw_policy *p = load("{\"version\": 1, \"backends\": {}, \"endpoints\": {}}");
	struct sw_err e;
	char *text;

	(void)state;
	assert_int_equal(p->nr_backends, 0);
	assert_int_equal(p->nr_endpoints, 0);
	assert_int_equal(policy_validate(p, &e), 0);
	text = policy_to_json(p);
	assert_string_equal(text,
			    "{\n  \"backends\": {},\n  \"endpoints\": {},\n  \"version\": 1\n}\n");
	free(text);
	policy_free(p);
}

/* Integers and reals are both numbers: 0 and 1 may be written either way, and "" is any host. */
static void test_number_forms(void **state)
{
	struct sw_policy *p;
	char *text;

	(void)state;
	p = load("{\"version\":1,\"backends\":{\"a\":{\"replicas\":[\"10.0.0.1:80\"]},"
		 "\"b\":{\"replicas\":[\"10.0.0.2:80\"]},\"s\":{\"replicas\":[\"10.0.0.3:80\"]}},"
		 "\"endpoints\":{\"e\":{\"route\":\"/\",\"host\":\"\","
		 "\"traffic\":{\"a\":0,\"b\":1.0},\"shadows\":{\"s\":1}}}}");
	assert_int_equal(p->endpoints[0].weights[0].weight, 0);
	assert_int_equal(p->endpoints[0].weights[1].weight, ONE);
	assert_int_equal(p->endpoints[0].shadows[0].fraction, ONE);
	assert_string_equal(p->endpoints[0].host, "");
	text = policy_to_json(p);
	assert_non_null(strstr(text, "\"a\": 0,\n"));
	assert_non_null(strstr(text, "\"b\": 1\n"));
	assert_non_null(strstr(text, "\"s\": 1\n"));
	assert_null(strstr(text, "host"));
	free(text);
	policy_free(p);
}

/* Every class of fixed-point value survives the file: 1e-9 steps, small, large, near 1. */
static void test_fraction_round_trip(void **state)
{
	static const __u32 special[] = {
		1,	   9,	      10,	 99,	    100,       12345,
		100000,	   999999,    1000000,	 10000000,  100000001, 123456789,
		500000000, 900000001, 990000000, 999999990, 999999999, ONE - 1000,
	};
	struct sw_policy *p = load("{\"version\":1,\"backends\":{"
				   "\"a\":{\"replicas\":[\"10.0.0.1:80\"]},"
				   "\"b\":{\"replicas\":[\"10.0.0.2:80\"]},"
				   "\"s\":{\"replicas\":[\"10.0.0.3:80\"]}},"
				   "\"endpoints\":{\"e\":{\"route\":\"/\",\"traffic\":{\"a\":0.5,"
				   "\"b\":0.5},\"shadows\":{\"s\":0.5}}}}");
	struct sw_policy_endpoint *ep = &p->endpoints[0];
	struct sw_policy *back = policy_alloc();
	struct sw_err e;
	char *text;
	__u32 k;
	size_t i;

	(void)state;
	srandom(7);
	for (i = 0; i < ARRAY_SIZE(special) + 3000; i++) {
		if (i < ARRAY_SIZE(special))
			k = special[i];
		else
			k = 1 + (__u32)(((__u64)random() << 31 | random()) % (ONE - 1));
		ep->weights[0].weight = k;
		ep->weights[1].weight = ONE - k;
		ep->shadows[0].fraction = k;
		text = policy_to_json(p);
		assert_non_null(text);
		assert_int_equal(policy_from_json(text, strlen(text), back, &e), 0);
		if (memcmp(back, p, sizeof(*p))) {
			print_error("%u does not survive the file:\n%s", k, text);
			fail();
		}
		free(text);
	}
	policy_free(back);
	policy_free(p);
}

/* A fixed-seed xorshift: the same "random" policy on every run and every libc. */
static __u64 rng_state = 0x9e3779b97f4a7c15ULL;

static __u32 rnd(__u32 n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state % n;
}

static int cmp_u32(const void *a, const void *b)
{
	__u32 x = *(const __u32 *)a, y = *(const __u32 *)b;

	return x < y ? -1 : x > y;
}

/* Every limit at once, or close: 256 backends, 256 endpoints, splits up to 64, 4 shadows. */
static struct sw_policy *big_policy(void)
{
	static const char *const headers[] = {SW_DEFAULT_SHARD_HEADER, "x-user", "Tenant"};
	struct sw_policy *p = policy_alloc();
	struct sw_policy_backend b;
	struct sw_policy_endpoint ep;
	__u32 i, j, nr, cut[SW_MAX_SPLIT + 1], used[SW_MAX_BACKENDS];
	char addr[64];
	struct sw_err e;

	assert_non_null(p);
	for (i = 0; i < SW_MAX_BACKENDS; i++) {
		memset(&b, 0, sizeof(b));
		snprintf(b.name, sizeof(b.name), "backend-%u.v%u", rnd(100000), i);
		b.nr_replicas = 1 + rnd(SW_MAX_REPLICAS);
		for (j = 0; j < b.nr_replicas; j++) {
			if (rnd(2))
				snprintf(addr, sizeof(addr), "10.%u.%u.%u:%u", i, j, rnd(256),
					 1 + rnd(65535));
			else
				snprintf(addr, sizeof(addr), "[fd00:%x::%x:%x]:%u", i, j,
					 rnd(65536), 1 + rnd(65535));
			assert_int_equal(sw_parse_addr(addr, &b.replicas[j], &e), 0);
		}
		assert_int_equal(policy_add_backend(p, &b, &e), 0);
	}
	for (i = 0; i < SW_MAX_ENDPOINTS; i++) {
		memset(&ep, 0, sizeof(ep));
		memset(used, 0, sizeof(used));
		snprintf(ep.name, sizeof(ep.name), "ep_%u", rnd(1000000) * 1000 + i);
		snprintf(ep.route, sizeof(ep.route), "/svc/%u/v%u", i, rnd(9));
		if (rnd(2))
			snprintf(ep.host, sizeof(ep.host), "h%u.example.com", rnd(50));
		ep.methods = rnd(4) ? 0 : 1 + rnd(0x1ff);
		strcpy(ep.shard_header, headers[rnd(ARRAY_SIZE(headers))]);
		/* Weights from sorted cut points in [0, ONE]: they sum to exactly 1. */
		nr = 1 + rnd(SW_MAX_SPLIT);
		for (j = 0; j < nr - 1; j++)
			cut[j] = rnd(ONE + 1);
		cut[nr - 1] = ONE;
		qsort(cut, nr, sizeof(cut[0]), cmp_u32);
		for (j = 0; j < nr; j++) {
			__u32 bi;

			do
				bi = rnd(SW_MAX_BACKENDS);
			while (used[bi]);
			used[bi] = 1;
			strcpy(ep.weights[j].backend, p->backends[bi].name);
			ep.weights[j].weight = cut[j] - (j ? cut[j - 1] : 0);
		}
		ep.nr_weights = nr;
		ep.nr_shadows = rnd(SW_MAX_SHADOWS + 1);
		for (j = 0; j < ep.nr_shadows; j++) {
			__u32 bi;

			do
				bi = rnd(SW_MAX_BACKENDS);
			while (used[bi]);
			used[bi] = 1;
			strcpy(ep.shadows[j].backend, p->backends[bi].name);
			ep.shadows[j].fraction = 1 + rnd(ONE);
		}
		assert_int_equal(policy_add_endpoint(p, &ep, &e), 0);
	}
	return p;
}

static void test_big_policy_round_trip(void **state)
{
	struct sw_policy *p = big_policy();
	struct sw_err e = {0};

	(void)state;
	assert_int_equal(p->nr_backends, SW_MAX_BACKENDS);
	assert_int_equal(p->nr_endpoints, SW_MAX_ENDPOINTS);
	if (policy_validate(p, &e)) {
		print_error("%s\n", e.msg);
		fail();
	}
	assert_round_trip(p);
	policy_free(p);
}

/* A document the file reader must refuse, the code it returns and part of its message. */
struct bad_doc {
	const char *doc, *msg;
	int code;
};

#define BACKENDS	   "\"backends\":{\"b1\":{\"replicas\":[\"127.0.0.1:80\"]}}"
#define DOC(endpoint_body) "{\"version\":1," BACKENDS ",\"endpoints\":{\"e\":{" endpoint_body "}}}"

static const struct bad_doc bad_docs[] = {
	/* Unknown fields, at every level, named by their path. */
	{"{\"version\":1,\"backends\":{},\"endpoints\":{},\"extra\":1}",
	 "unknown field \"extra\"; known fields: version, backends, endpoints", -EINVAL},
	{"{\"version\":1,\"backends\":{\"b1\":{\"replica\":[]}},\"endpoints\":{}}",
	 "unknown field \"backends.b1.replica\"; known fields: replicas", -EINVAL},
	{"{\"version\":1," BACKENDS ",\"endpoints\":{\"fifty\":{\"route\":\"/\","
	 "\"trafic\":{}}}}",
	 "unknown field \"endpoints.fifty.trafic\"; known fields: route, host, methods, "
	 "shard_header, traffic, shadows",
	 -EINVAL},
	/* Wrong types. */
	{"[]", "the policy must be an object", -EINVAL},
	{"{\"version\":1,\"backends\":[],\"endpoints\":{}}",
	 "\"backends\" must be an object, not an array", -EINVAL},
	{"{\"version\":1,\"backends\":{},\"endpoints\":{\"e\":null}}",
	 "\"endpoints.e\" must be an object, not null", -EINVAL},
	{"{\"version\":1,\"backends\":{\"b1\":{\"replicas\":\"127.0.0.1:80\"}},\"endpoints\":{}}",
	 "\"backends.b1.replicas\" must be an array, not a string", -EINVAL},
	{"{\"version\":1,\"backends\":{\"b1\":{\"replicas\":[80]}},\"endpoints\":{}}",
	 "\"backends.b1.replicas[0]\" must be a string, not a number", -EINVAL},
	{DOC("\"route\":5,\"traffic\":{\"b1\":1}"), "\"endpoints.e.route\" must be a string",
	 -EINVAL},
	{DOC("\"route\":\"/\",\"host\":true,\"traffic\":{\"b1\":1}"),
	 "\"endpoints.e.host\" must be a string, not a boolean", -EINVAL},
	{DOC("\"route\":\"/\",\"methods\":\"GET\",\"traffic\":{\"b1\":1}"),
	 "\"endpoints.e.methods\" must be an array", -EINVAL},
	{DOC("\"route\":\"/\",\"methods\":[1],\"traffic\":{\"b1\":1}"),
	 "\"endpoints.e.methods[0]\" must be a string", -EINVAL},
	{DOC("\"route\":\"/\",\"traffic\":{\"b1\":\"1\"}"),
	 "\"endpoints.e.traffic.b1\" must be a number, not a string", -EINVAL},
	{DOC("\"route\":\"/\",\"traffic\":[]"), "\"endpoints.e.traffic\" must be an object",
	 -EINVAL},
	{DOC("\"route\":\"/\",\"traffic\":{\"b1\":1},\"shadows\":{\"b1\":null}"),
	 "\"endpoints.e.shadows.b1\" must be a number, not null", -EINVAL},
	/* The version. */
	{"{\"backends\":{},\"endpoints\":{}}", "missing field \"version\"; add \"version\": 1",
	 -EINVAL},
	{"{\"version\":2,\"backends\":{},\"endpoints\":{}}",
	 "unsupported policy version 2; this sockway reads version 1", -EINVAL},
	{"{\"version\":0,\"backends\":{},\"endpoints\":{}}", "unsupported policy version 0",
	 -EINVAL},
	{"{\"version\":\"1\",\"backends\":{},\"endpoints\":{}}",
	 "\"version\" must be an integer, not a string", -EINVAL},
	{"{\"version\":1.0,\"backends\":{},\"endpoints\":{}}",
	 "\"version\" must be an integer, not a number", -EINVAL},
	/* Malformed JSON: jansson's position and words. */
	{"{\"version\": 1,\n \"backends\": {},\n", "policy is not valid JSON: line 3, column 0",
	 -EINVAL},
	{"{\"version\":1,\"backends\":{},\"endpoints\":{}} x", "end of file expected", -EINVAL},
	{"", "policy is not valid JSON: line 1, column 0", -EINVAL},
	{"{\"version\":1,\"backends\":{},\"backends\":{},\"endpoints\":{}}", "duplicate object key",
	 -EINVAL},
	/* Missing required fields. */
	{"{\"version\":1,\"endpoints\":{}}", "missing field \"backends\"; add it, like", -EINVAL},
	{"{\"version\":1,\"backends\":{}}", "missing field \"endpoints\"", -EINVAL},
	{"{\"version\":1,\"backends\":{\"b1\":{}},\"endpoints\":{}}",
	 "missing field \"backends.b1.replicas\"", -EINVAL},
	{DOC("\"traffic\":{\"b1\":1}"), "missing field \"endpoints.e.route\"", -EINVAL},
	{DOC("\"route\":\"/\""), "missing field \"endpoints.e.traffic\"", -EINVAL},
	/* Bad values, in the CLI parsers' words, after their path. */
	{"{\"version\":1,\"backends\":{\"b 1\":{\"replicas\":[]}},\"endpoints\":{}}",
	 "backends.b 1: backend name \"b 1\" contains a space", -EINVAL},
	{"{\"version\":1,\"backends\":{\"b1\":{\"replicas\":[\"1.2.3.4\"]}},\"endpoints\":{}}",
	 "backends.b1.replicas[0]: address \"1.2.3.4\" has no port", -EINVAL},
	{"{\"version\":1,\"backends\":{},\"endpoints\":{\"e/1\":{}}}",
	 "endpoints.e/1: endpoint name \"e/1\" contains '/'", -EINVAL},
	{DOC("\"route\":\"api\",\"traffic\":{\"b1\":1}"),
	 "endpoints.e.route: route \"api\" does not start with '/'", -EINVAL},
	{DOC("\"route\":\"/\",\"host\":\"a.com:80\",\"traffic\":{\"b1\":1}"),
	 "endpoints.e.host: host \"a.com:80\" has a port", -EINVAL},
	{DOC("\"route\":\"/\",\"methods\":[\"GET\",\"FOO\"],\"traffic\":{\"b1\":1}"),
	 "endpoints.e.methods[1]: unknown method \"FOO\"", -EINVAL},
	{DOC("\"route\":\"/\",\"methods\":[],\"traffic\":{\"b1\":1}"),
	 "\"endpoints.e.methods\" is empty; list methods, or leave the field out", -EINVAL},
	{DOC("\"route\":\"/\",\"shard_header\":\"X Key\",\"traffic\":{\"b1\":1}"),
	 "endpoints.e.shard_header: header name \"X Key\" contains a space", -EINVAL},
	{DOC("\"route\":\"/\",\"traffic\":{\"b1\":1.5}"),
	 "endpoints.e.traffic.b1: weight 1.5 is out of range", -EINVAL},
	{DOC("\"route\":\"/\",\"traffic\":{\"b1\":-0.5}"),
	 "endpoints.e.traffic.b1: weight -0.5 is out of range", -EINVAL},
	{DOC("\"route\":\"/\",\"traffic\":{\"b1\":1},\"shadows\":{\"b1\":2}"),
	 "endpoints.e.shadows.b1: shadow fraction 2 is out of range", -EINVAL},
	{DOC("\"route\":\"/\",\"traffic\":{\"b\\u00e9\":1}"),
	 "endpoints.e.traffic.b\\xc3\\xa9: backend name \"b\\xc3\\xa9\" contains byte 0xc3",
	 -EINVAL},
	/* Past what the model can hold. */
	{DOC("\"route\":\"/\",\"traffic\":{\"b1\":1},\"shadows\":{\"a\":1,\"b\":1,\"c\":1,"
	     "\"d\":1,\"e\":1}"),
	 "\"endpoints.e.shadows\" has 5 backends (limit 4)", -ENOSPC},
};

static void test_bad_documents(void **state)
{
	struct sw_policy *p = policy_alloc();
	struct sw_err e;
	size_t i;
	int err;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(bad_docs); i++) {
		memset(&e, 0, sizeof(e));
		err = policy_from_json(bad_docs[i].doc, strlen(bad_docs[i].doc), p, &e);
		if (err != bad_docs[i].code) {
			print_error("document %zu: %d (%s), expected %d\n", i, err, e.msg,
				    bad_docs[i].code);
			fail();
		}
		check_msg(&e, bad_docs[i].msg);
	}
	policy_free(p);
}

/* Writes {"b0": {...}, ..., "b<n-1>": {...}} style members of n names into buf. */
static void members(char *buf, size_t len, unsigned int n, const char *fmt)
{
	size_t used = 0;
	unsigned int i;

	for (i = 0; i < n; i++) {
		used += snprintf(buf + used, len - used, i ? "," : "");
		used += snprintf(buf + used, len - used, fmt, i, i % 250 + 1);
		assert_true(used < len);
	}
}

static void test_limits(void **state)
{
	static char list[64 * 1024], doc[80 * 1024];
	struct sw_policy *p = policy_alloc();
	struct sw_err e;

	(void)state;
	members(list, sizeof(list), SW_MAX_BACKENDS + 1,
		"\"b%u\":{\"replicas\":[\"10.0.0.%u:80\"]}");
	snprintf(doc, sizeof(doc), "{\"version\":1,\"backends\":{%s},\"endpoints\":{}}", list);
	assert_int_equal(policy_from_json(doc, strlen(doc), p, &e), -ENOSPC);
	check_msg(&e, "too many backends (257, limit 256)");

	members(list, sizeof(list), SW_MAX_REPLICAS + 1, "\"10.0.%u.%u:80\"");
	snprintf(doc, sizeof(doc),
		 "{\"version\":1,\"backends\":{\"b1\":{\"replicas\":[%s]}},\"endpoints\":{}}",
		 list);
	assert_int_equal(policy_from_json(doc, strlen(doc), p, &e), -ENOSPC);
	check_msg(&e, "backend \"b1\" has 17 replicas (limit 16)");

	members(list, sizeof(list), SW_MAX_SPLIT + 1, "\"b%u\":0.0%u");
	snprintf(doc, sizeof(doc),
		 "{\"version\":1,\"backends\":{},\"endpoints\":{\"e\":{\"route\":\"/\","
		 "\"traffic\":{%s}}}}",
		 list);
	assert_int_equal(policy_from_json(doc, strlen(doc), p, &e), -ENOSPC);
	check_msg(&e, "\"endpoints.e.traffic\" has 65 backends (limit 64)");

	members(list, sizeof(list), SW_MAX_ENDPOINTS + 1,
		"\"e%u\":{\"route\":\"/%u\",\"traffic\":{\"b\":1}}");
	snprintf(doc, sizeof(doc), "{\"version\":1,\"backends\":{},\"endpoints\":{%s}}", list);
	assert_int_equal(policy_from_json(doc, strlen(doc), p, &e), -ENOSPC);
	check_msg(&e, "too many endpoints (257, limit 256)");
	policy_free(p);
}

/* The reader takes any structurally sound file; references and sums are for validate. */
static void test_reader_leaves_references_to_validate(void **state)
{
	struct sw_policy *p;
	struct sw_err e;

	(void)state;
	p = load(DOC("\"route\":\"/\",\"traffic\":{\"b9\":1}"));
	assert_int_equal(policy_validate(p, &e), -ENOENT);
	check_msg(&e, "endpoint \"e\" uses backend \"b9\", which is not defined");
	policy_free(p);

	p = load(DOC("\"route\":\"/\",\"traffic\":{\"b1\":0.98}"));
	assert_int_equal(policy_validate(p, &e), -EINVAL);
	check_msg(&e, "weights of endpoint \"e\" sum to 0.98, not 1.0 (within 1e-06)");
	policy_free(p);

	p = load(DOC("\"route\":\"/\",\"traffic\":{}"));
	assert_int_equal(policy_validate(p, &e), -EINVAL);
	check_msg(&e, "endpoint \"e\" has no traffic weights");
	policy_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_canary_file),
		cmocka_unit_test(test_empty_policy),
		cmocka_unit_test(test_number_forms),
		cmocka_unit_test(test_fraction_round_trip),
		cmocka_unit_test(test_big_policy_round_trip),
		cmocka_unit_test(test_bad_documents),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_reader_leaves_references_to_validate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
