// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Maps to model (maps.h): the live policy, every endpoint's active copy, read back by id. The
 * ids come along, so that a commit of an edited copy knows where each entry lives.
 */
#include <string.h>

#include "maps.h"

/* Copies a NUL-terminated map string into a model field of the same size, always terminated. */
#define COPY_STR(dst, src)                                                                         \
	do {                                                                                       \
		_Static_assert(sizeof(dst) == sizeof(src), "string fields differ");                \
		memcpy(dst, src, sizeof(dst));                                                     \
		(dst)[sizeof(dst) - 1] = '\0';                                                     \
	} while (0)

/* Reads every backend in use into p, and its name by id into names (for the splits). */
static int read_backends(struct sw_maps *m, struct sw_policy *p,
			 char names[SW_MAX_BACKENDS][SW_NAME_MAX], struct sw_err *e)
{
	struct sw_backend b;
	__u32 id;
	int err;

	for (id = 0; id < SW_MAX_BACKENDS; id++) {
		struct sw_policy_backend *pb = &p->backends[p->nr_backends];

		err = sw_backend_read(m, id, &b);
		if (err)
			return sw_errorf(e, err, "cannot read backend %u: %s", id, strerror(-err));
		if (!(b.flags & SW_F_IN_USE))
			continue;
		COPY_STR(pb->name, b.name);
		pb->id = id;
		memcpy(names[id], pb->name, SW_NAME_MAX);
		pb->nr_replicas = b.nr_replicas < SW_MAX_REPLICAS ? b.nr_replicas : SW_MAX_REPLICAS;
		memcpy(pb->replicas, b.replicas, sizeof(pb->replicas));
		p->nr_backends++;
	}
	return 0;
}

/* The name of backend id, or "?" for an id no backend has (a map written by hand). */
static const char *backend_name(char names[SW_MAX_BACKENDS][SW_NAME_MAX], __u16 id)
{
	return id < SW_MAX_BACKENDS && names[id][0] ? names[id] : "?";
}

static void endpoint_from_copy(struct sw_policy_endpoint *pe, const struct sw_endpoint *ep,
			       char names[SW_MAX_BACKENDS][SW_NAME_MAX])
{
	__u32 i;

	COPY_STR(pe->name, ep->name);
	COPY_STR(pe->route, ep->route.prefix);
	COPY_STR(pe->host, ep->route.host);
	COPY_STR(pe->shard_header, ep->shard_header);
	pe->methods = ep->route.methods;
	pe->nr_weights = ep->nr_splits < SW_MAX_SPLIT ? ep->nr_splits : SW_MAX_SPLIT;
	for (i = 0; i < pe->nr_weights; i++) {
		strcpy(pe->weights[i].backend, backend_name(names, ep->splits[i].backend_id));
		pe->weights[i].weight = ep->splits[i].weight;
	}
	pe->nr_shadows = ep->nr_shadows < SW_MAX_SHADOWS ? ep->nr_shadows : SW_MAX_SHADOWS;
	for (i = 0; i < pe->nr_shadows; i++) {
		strcpy(pe->shadows[i].backend, backend_name(names, ep->shadows[i].backend_id));
		pe->shadows[i].fraction = ep->shadows[i].fraction;
	}
}

int policy_read(struct sw_maps *m, struct sw_policy *p, struct sw_err *e)
{
	char names[SW_MAX_BACKENDS][SW_NAME_MAX];
	struct sw_endpoint ep;
	__u32 id;
	int err;

	memset(p, 0, sizeof(*p));
	memset(names, 0, sizeof(names));
	err = read_backends(m, p, names, e);
	if (err)
		return err;
	for (id = 0; id < SW_MAX_ENDPOINTS; id++) {
		err = sw_endpoint_read(m, id, &ep, NULL);
		if (err)
			return sw_errorf(e, err, "cannot read endpoint %u: %s", id, strerror(-err));
		if (!(ep.flags & SW_F_IN_USE))
			continue;
		endpoint_from_copy(&p->endpoints[p->nr_endpoints], &ep, names);
		p->endpoints[p->nr_endpoints++].id = id;
	}
	/* Ids follow creation order; the model is sorted by name. */
	policy_sort(p);
	return 0;
}
