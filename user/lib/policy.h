/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The policy model: backends and endpoints by name, as the operator writes them. The agent
 * reads the model from the pinned maps (read.c), changes it (policy.c), validates it whole
 * (validate.c), and only then writes the maps (commit.c), so that a refused change leaves
 * nothing behind. JSON (policy_json.c) is the same model on the wire; the values in it are
 * in the form the parsers of parse.h give.
 *
 * Lists are kept sorted by name, which makes export canonical and compilation independent
 * of the order in which commands ran.
 */
#ifndef SOCKWAY_POLICY_H
#define SOCKWAY_POLICY_H

#include <stdbool.h>

#include "sockway/abi.h"
#include "err.h"
#include "parse.h"

/*
 * A backend's and an endpoint's id is its index in the maps: policy_read() fills it in, the
 * edits keep it, and an entry that no commit has written yet (an edit added it, or a policy
 * file holds it) has SW_ID_NONE. The commit takes ids from the policy it replaces, so that it
 * never looks a name up in the maps.
 */
struct sw_policy_backend {
	char name[SW_NAME_MAX];
	__u32 id; /* index in the backends map, or SW_ID_NONE */
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
	__u32 id;		   /* index of its two copies in the endpoints map, or SW_ID_NONE */
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

/* Lookups by name: the entry, or NULL. The edits below are the way to change one. */
const struct sw_policy_backend *policy_find_backend(const struct sw_policy *p, const char *name);
const struct sw_policy_endpoint *policy_find_endpoint(const struct sw_policy *p, const char *name);
/* The index of backend in an endpoint's weights or shadows, or -1. */
int policy_weight_index(const struct sw_policy_endpoint *ep, const char *backend);
int policy_shadow_index(const struct sw_policy_endpoint *ep, const char *backend);

/*
 * Edits. Each keeps the lists sorted and the ids of the entries it keeps (an added one has
 * SW_ID_NONE), and returns 0 or -errno with e filled: -EEXIST for a name in use, -ENOENT
 * for an unknown name, -ENOSPC past a limit, -EBUSY when deleting a backend that endpoints
 * still use (the message lists them).
 */
int policy_add_backend(struct sw_policy *p, const struct sw_policy_backend *b, struct sw_err *e);
int policy_del_backend(struct sw_policy *p, const char *name, struct sw_err *e);
int policy_add_endpoint(struct sw_policy *p, const struct sw_policy_endpoint *ep, struct sw_err *e);
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

#endif /* SOCKWAY_POLICY_H */
