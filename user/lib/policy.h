/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The policy model: backends and endpoints by name, as the operator writes them. The agent
 * reads the model from the pinned maps, changes it, validates it whole, and only then writes
 * the maps (maps.c), so that a refused change leaves nothing behind. JSON (policy_json.c)
 * is the same model on the wire.
 *
 * Lists are kept sorted by name, which makes export canonical and compilation independent
 * of the order in which commands ran.
 */
#ifndef SOCKWAY_POLICY_H
#define SOCKWAY_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "sockway/abi.h"
#include "err.h"

#define SW_DEFAULT_SHARD_HEADER "X-SERVE-SHARD-KEY"

struct sw_policy_backend {
	char name[SW_NAME_MAX];
	__u32 nr_replicas;
	struct sw_addr replicas[SW_MAX_REPLICAS]; /* in the order given */
};

struct sw_policy_weight {
	char backend[SW_NAME_MAX];
	__u32 weight; /* in 1/SW_WEIGHT_ONE */
};

struct sw_policy_shadow {
	char backend[SW_NAME_MAX];
	__u32 fraction; /* in 1/SW_WEIGHT_ONE; 0 < fraction <= SW_WEIGHT_ONE */
};

struct sw_policy_endpoint {
	char name[SW_NAME_MAX];
	char route[SW_PREFIX_MAX]; /* normalised by sw_parse_route() */
	char host[SW_HOST_MAX];	   /* lower case; "" = any host */
	__u32 methods;		   /* SW_METHOD_* bits; 0 = any */
	char shard_header[SW_HEADER_NAME_MAX];
	__u32 nr_weights;
	struct sw_policy_weight weights[SW_MAX_SPLIT]; /* sorted by backend name */
	__u32 nr_shadows;
	struct sw_policy_shadow shadows[SW_MAX_SHADOWS]; /* sorted by backend name */
};

struct sw_policy {
	__u32 nr_backends;
	struct sw_policy_backend backends[SW_MAX_BACKENDS]; /* sorted by name */
	__u32 nr_endpoints;
	struct sw_policy_endpoint endpoints[SW_MAX_ENDPOINTS]; /* sorted by name */
};

/* Allocates an empty policy (it is large: keep it off the stack). NULL, errno set, on failure. */
struct sw_policy *policy_alloc(void);
void policy_free(struct sw_policy *p);

/* Lookups by name: the entry, or NULL. */
struct sw_policy_backend *policy_find_backend(struct sw_policy *p, const char *name);
struct sw_policy_endpoint *policy_find_endpoint(struct sw_policy *p, const char *name);

/*
 * Edits. Each keeps the lists sorted and returns 0 or -errno with e filled: -EEXIST for a
 * name in use, -ENOENT for an unknown name, -ENOSPC past a limit, -EBUSY when deleting a
 * backend that endpoints still use (the message lists them).
 */
int policy_add_backend(struct sw_policy *p, const struct sw_policy_backend *b, struct sw_err *e);
int policy_del_backend(struct sw_policy *p, const char *name, struct sw_err *e);
int policy_add_endpoint(struct sw_policy *p, const struct sw_policy_endpoint *ep,
			struct sw_err *e);
int policy_del_endpoint(struct sw_policy *p, const char *name, struct sw_err *e);
/* Replaces an endpoint's weights; sorts them by backend name. */
int policy_set_traffic(struct sw_policy *p, const char *endpoint,
		       const struct sw_policy_weight *weights, __u32 nr, struct sw_err *e);
/* Sets one shadow's fraction; fraction 0 removes the shadow. */
int policy_set_shadow(struct sw_policy *p, const char *endpoint, const char *backend,
		      __u32 fraction, struct sw_err *e);

/*
 * Checks the whole policy: names, limits, that every weight and shadow names an existing
 * backend, no backend twice in a split, weights that sum to 1.0 within SW_WEIGHT_TOLERANCE
 * (the message prints the actual sum), fractions in (0, 1], unique (host, route) pairs.
 */
int policy_validate(const struct sw_policy *p, struct sw_err *e);

/* Sorts every list by name: for a policy built in file or map order rather than by edits. */
void policy_sort(struct sw_policy *p);

/* Parsers of operator input. Each returns 0 or -EINVAL with e filled. */
int sw_parse_name(const char *s, const char *what, struct sw_err *e);
/* "a.b.c.d:port" or "[ipv6]:port", port 1..65535. */
int sw_parse_addr(const char *s, struct sw_addr *a, struct sw_err *e);
/* A decimal number in [0, 1] (e.g. "0.99", "1", "1e-2") to 1/SW_WEIGHT_ONE units. */
int sw_parse_fraction(const char *s, const char *what, __u32 *out, struct sw_err *e);
/* Converts a number already parsed (e.g. from JSON) the same way. */
int sw_fraction_from_double(double v, const char *what, __u32 *out, struct sw_err *e);
/* "GET,POST" (case-insensitive) to SW_METHOD_* bits. */
int sw_parse_methods(const char *csv, __u32 *mask, struct sw_err *e);
/* A path prefix: starts with '/', printable, no '?', '#', spaces or empty segments; a trailing
 * '/' is dropped ("/api/" becomes "/api"), except for the root "/". */
int sw_parse_route(const char *s, char out[SW_PREFIX_MAX], struct sw_err *e);
/* A host name or IP literal without port, stored in lower case. */
int sw_parse_host(const char *s, char out[SW_HOST_MAX], struct sw_err *e);
/* An HTTP header field name (RFC 9110 token). */
int sw_parse_header_name(const char *s, char out[SW_HEADER_NAME_MAX], struct sw_err *e);

/* The socket address of a replica; returns its length. */
socklen_t sw_addr_to_sockaddr(const struct sw_addr *a, struct sockaddr_storage *ss);

/* Printers: "a.b.c.d:port" or "[ipv6]:port"; "GET,POST" ("" for 0). Return buf. */
char *sw_format_addr(const struct sw_addr *a, char *buf, size_t len);
char *sw_format_methods(__u32 mask, char *buf, size_t len);
/* The shortest decimal that reads back as the same fixed-point value ("0.99", "1", "0"). */
char *sw_format_fraction(__u32 v, char *buf, size_t len);
/*
 * Operator input made safe to echo inside "..." in a message: '"' and '\\' escaped, other
 * bytes outside printable ASCII as \xNN, cut with "..." to fit len.
 */
char *sw_format_quoted(const char *s, char *buf, size_t len);

#endif /* SOCKWAY_POLICY_H */
