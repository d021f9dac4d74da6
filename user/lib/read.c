// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Maps to model (maps.h): the live policy, every endpoint's active copy, read back by id.
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

int policy_read(struct sw_maps *m, struct sw_policy *p, struct sw_err *e)
{
	static const char unknown[] = "?";
	char names[SW_MAX_BACKENDS][SW_NAME_MAX];
	struct sw_endpoint ep;
	struct sw_backend b;
	__u32 id, i;
	int err;

	memset(p, 0, sizeof(*p));
	memset(names, 0, sizeof(names));
	for (id = 0; id < SW_MAX_BACKENDS; id++) {
		struct sw_policy_backend *pb = &p->backends[p->nr_backends];

		err = sw_backend_read(m, id, &b);
		if (err)
			return sw_errorf(e, err, "cannot read backend %u: %s", id, strerror(-err));
		if (!(b.flags & SW_F_IN_USE))
			continue;
		COPY_STR(pb->name, b.name);
		memcpy(names[id], pb->name, SW_NAME_MAX);
		pb->nr_replicas = b.nr_replicas < SW_MAX_REPLICAS ? b.nr_replicas : SW_MAX_REPLICAS;
		memcpy(pb->replicas, b.replicas, sizeof(pb->replicas));
		p->nr_backends++;
	}
	for (id = 0; id < SW_MAX_ENDPOINTS; id++) {
		struct sw_policy_endpoint *pe = &p->endpoints[p->nr_endpoints];

		err = sw_endpoint_read(m, id, &ep, NULL);
		if (err)
			return sw_errorf(e, err, "cannot read endpoint %u: %s", id, strerror(-err));
		if (!(ep.flags & SW_F_IN_USE))
			continue;
		COPY_STR(pe->name, ep.name);
		COPY_STR(pe->route, ep.route.prefix);
		COPY_STR(pe->host, ep.route.host);
		COPY_STR(pe->shard_header, ep.shard_header);
		pe->methods = ep.route.methods;
		pe->nr_weights = ep.nr_splits < SW_MAX_SPLIT ? ep.nr_splits : SW_MAX_SPLIT;
		for (i = 0; i < pe->nr_weights; i++) {
			__u16 bid = ep.splits[i].backend_id;

			strcpy(pe->weights[i].backend,
			       bid < SW_MAX_BACKENDS && names[bid][0] ? names[bid] : unknown);
			pe->weights[i].weight = ep.splits[i].weight;
		}
		pe->nr_shadows = ep.nr_shadows < SW_MAX_SHADOWS ? ep.nr_shadows : SW_MAX_SHADOWS;
		for (i = 0; i < pe->nr_shadows; i++) {
			__u16 bid = ep.shadows[i].backend_id;

			strcpy(pe->shadows[i].backend,
			       bid < SW_MAX_BACKENDS && names[bid][0] ? names[bid] : unknown);
			pe->shadows[i].fraction = ep.shadows[i].fraction;
		}
		p->nr_endpoints++;
	}
	/* Ids follow creation order; the model is sorted by name. */
	policy_sort(p);
	return 0;
}
