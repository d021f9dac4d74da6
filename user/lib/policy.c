// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * The policy model (policy.h): lookups, and edits that keep every list sorted and leave the
 * policy untouched when they refuse.
 *
 * Every check runs before the first byte of the policy changes, so a refusal never needs an
 * undo. The lists are small (256 entries at most), so lookups are linear scans: they also
 * work on a policy that is not sorted yet.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "validate.h"

struct sw_policy *policy_alloc(void)
{
	return calloc(1, sizeof(struct sw_policy));
}

void policy_free(struct sw_policy *p)
{
	free(p);
}

/*
 * Every list holds entries whose name is their first member, so one comparison, one lookup
 * and one insertion serve them all.
 */
_Static_assert(offsetof(struct sw_policy_backend, name) == 0, "backend: name first");
_Static_assert(offsetof(struct sw_policy_endpoint, name) == 0, "endpoint: name first");
_Static_assert(offsetof(struct sw_policy_weight, backend) == 0, "weight: name first");
_Static_assert(offsetof(struct sw_policy_shadow, backend) == 0, "shadow: name first");

static int cmp_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* The index of the entry called name among nr of size bytes, or -1. */
static int name_index(const void *base, __u32 nr, size_t size, const char *name)
{
	const char *arr = base;
	__u32 i;

	for (i = 0; i < nr; i++) {
		if (!strcmp(arr + i * size, name))
			return i;
	}
	return -1;
}

static int backend_index(const struct sw_policy *p, const char *name)
{
	return name_index(p->backends, p->nr_backends, sizeof(p->backends[0]), name);
}

static int endpoint_index(const struct sw_policy *p, const char *name)
{
	return name_index(p->endpoints, p->nr_endpoints, sizeof(p->endpoints[0]), name);
}

const struct sw_policy_backend *policy_find_backend(const struct sw_policy *p, const char *name)
{
	int i = backend_index(p, name);

	return i < 0 ? NULL : &p->backends[i];
}

const struct sw_policy_endpoint *policy_find_endpoint(const struct sw_policy *p, const char *name)
{
	int i = endpoint_index(p, name);

	return i < 0 ? NULL : &p->endpoints[i];
}

int policy_weight_index(const struct sw_policy_endpoint *ep, const char *backend)
{
	return name_index(ep->weights, ep->nr_weights, sizeof(ep->weights[0]), backend);
}

int policy_shadow_index(const struct sw_policy_endpoint *ep, const char *backend)
{
	return name_index(ep->shadows, ep->nr_shadows, sizeof(ep->shadows[0]), backend);
}

void policy_sort(struct sw_policy *p)
{
	__u32 i;

	qsort(p->backends, p->nr_backends, sizeof(p->backends[0]), cmp_name);
	qsort(p->endpoints, p->nr_endpoints, sizeof(p->endpoints[0]), cmp_name);
	for (i = 0; i < p->nr_endpoints; i++) {
		struct sw_policy_endpoint *ep = &p->endpoints[i];

		qsort(ep->weights, ep->nr_weights, sizeof(ep->weights[0]), cmp_name);
		qsort(ep->shadows, ep->nr_shadows, sizeof(ep->shadows[0]), cmp_name);
	}
}

/* Makes room at the sorted position of an entry called name among nr of size bytes; returns
 * that position. */
static __u32 insert_slot(void *base, __u32 nr, size_t size, const char *name)
{
	char *arr = base;
	__u32 pos = 0;

	while (pos < nr && strcmp(arr + pos * size, name) < 0)
		pos++;
	memmove(arr + (pos + 1) * size, arr + pos * size, (nr - pos) * size);
	memset(arr + pos * size, 0, size);
	return pos;
}

/* Removes element pos and zeroes the freed last slot, so no stale entry lingers. */
static void remove_slot(void *base, __u32 nr, size_t size, __u32 pos)
{
	char *arr = base;

	memmove(arr + pos * size, arr + (pos + 1) * size, (nr - pos - 1) * size);
	memset(arr + (nr - 1) * size, 0, size);
}

/* Whether a new kind ("backend", "endpoint") called name fits: not there yet, and room. */
static int check_room(const char *kind, const char *name, bool exists, __u32 nr, __u32 max,
		      struct sw_err *e)
{
	if (exists)
		return sw_errorf(e, -EEXIST,
				 "%s \"%s\" already exists; pick another name, or delete it first "
				 "with \"sockway %s delete %s\"",
				 kind, name, kind, name);
	if (nr >= max)
		return sw_errorf(e, -ENOSPC,
				 "too many %ss (limit %u); delete one you no longer need with "
				 "\"sockway %s delete NAME\"",
				 kind, max, kind);
	return 0;
}

int policy_add_backend(struct sw_policy *p, const struct sw_policy_backend *b, struct sw_err *e)
{
	struct sw_policy_backend *dst;
	int err;

	err = policy_check_name(b->name, "backend name", e);
	if (!err)
		err = check_room("backend", b->name, backend_index(p, b->name) >= 0, p->nr_backends,
				 SW_MAX_BACKENDS, e);
	if (!err)
		err = policy_check_backend(b, e);
	if (err)
		return err;

	/* Copy field by field so that bytes past the name and the replicas stay zero. */
	dst = &p->backends[insert_slot(p->backends, p->nr_backends, sizeof(*dst), b->name)];
	strcpy(dst->name, b->name);
	dst->id = SW_ID_NONE;
	dst->nr_replicas = b->nr_replicas;
	memcpy(dst->replicas, b->replicas, b->nr_replicas * sizeof(b->replicas[0]));
	p->nr_backends++;
	return 0;
}

/* Appends name to a comma-separated list in buf; counts what no longer fits in *more. */
static void list_append(char *buf, size_t len, const char *name, __u32 *more)
{
	size_t n = strlen(buf);

	/* Leave room for " and 256 more" so the message keeps its ending. */
	if (*more || n + strlen(name) + 2 + 16 > len) {
		(*more)++;
		return;
	}
	snprintf(buf + n, len - n, "%s%s", n ? ", " : "", name);
}

int policy_del_backend(struct sw_policy *p, const char *name, struct sw_err *e)
{
	char users[256] = "", shown[SW_SHOWN_MAX];
	__u32 i, nr_users = 0, more = 0;
	size_t n;
	int pos;

	pos = backend_index(p, name);
	if (pos < 0)
		return sw_errorf(
			e, -ENOENT,
			"backend \"%s\" does not exist; \"sockway backend list\" shows the "
			"backends there are",
			sw_format_quoted(name, shown, sizeof(shown)));
	/* A weight of 0 still counts: it keeps the backend's counter cell for a rollback. */
	for (i = 0; i < p->nr_endpoints; i++) {
		const struct sw_policy_endpoint *ep = &p->endpoints[i];

		if (policy_weight_index(ep, name) < 0 && policy_shadow_index(ep, name) < 0)
			continue;
		list_append(users, sizeof(users), ep->name, &more);
		nr_users++;
	}
	if (nr_users) {
		n = strlen(users);
		if (more)
			snprintf(users + n, sizeof(users) - n, " and %u more", more);
		return sw_errorf(e, -EBUSY,
				 "cannot delete backend \"%s\": %s %s %s it; move %s traffic and "
				 "shadows off it first",
				 name, nr_users == 1 ? "endpoint" : "endpoints", users,
				 nr_users == 1 ? "uses" : "use", nr_users == 1 ? "its" : "their");
	}
	remove_slot(p->backends, p->nr_backends, sizeof(p->backends[0]), pos);
	p->nr_backends--;
	return 0;
}

static void copy_weights(struct sw_policy_weight *dst, const struct sw_policy_weight *src, __u32 nr)
{
	__u32 i;

	for (i = 0; i < nr; i++) {
		strcpy(dst[i].backend, src[i].backend);
		dst[i].weight = src[i].weight;
	}
	qsort(dst, nr, sizeof(dst[0]), cmp_name);
}

int policy_add_endpoint(struct sw_policy *p, const struct sw_policy_endpoint *ep, struct sw_err *e)
{
	struct sw_policy_endpoint *dst;
	__u32 i;
	int err;

	err = policy_check_name(ep->name, "endpoint name", e);
	if (!err)
		err = check_room("endpoint", ep->name, endpoint_index(p, ep->name) >= 0,
				 p->nr_endpoints, SW_MAX_ENDPOINTS, e);
	if (!err)
		err = policy_check_endpoint(p, ep, -1, false, e);
	if (err)
		return err;

	/* Field by field, as in policy_add_backend(): unused bytes stay zero. */
	dst = &p->endpoints[insert_slot(p->endpoints, p->nr_endpoints, sizeof(*dst), ep->name)];
	strcpy(dst->name, ep->name);
	dst->id = SW_ID_NONE;
	strcpy(dst->route, ep->route);
	strcpy(dst->host, ep->host);
	dst->methods = ep->methods;
	strcpy(dst->shard_header, ep->shard_header);
	dst->nr_weights = ep->nr_weights;
	copy_weights(dst->weights, ep->weights, ep->nr_weights);
	dst->nr_shadows = ep->nr_shadows;
	for (i = 0; i < ep->nr_shadows; i++) {
		strcpy(dst->shadows[i].backend, ep->shadows[i].backend);
		dst->shadows[i].fraction = ep->shadows[i].fraction;
	}
	qsort(dst->shadows, dst->nr_shadows, sizeof(dst->shadows[0]), cmp_name);
	p->nr_endpoints++;
	return 0;
}

static int no_such_endpoint(const char *name, struct sw_err *e)
{
	char shown[SW_SHOWN_MAX];

	return sw_errorf(e, -ENOENT,
			 "endpoint \"%s\" does not exist; \"sockway endpoint list\" shows the "
			 "endpoints there are",
			 sw_format_quoted(name, shown, sizeof(shown)));
}

/* The endpoint an edit changes: policy_find_endpoint() for a policy that may change. */
static struct sw_policy_endpoint *endpoint_get(struct sw_policy *p, const char *name)
{
	int i = endpoint_index(p, name);

	return i < 0 ? NULL : &p->endpoints[i];
}

int policy_del_endpoint(struct sw_policy *p, const char *name, struct sw_err *e)
{
	int pos = endpoint_index(p, name);

	if (pos < 0)
		return no_such_endpoint(name, e);
	remove_slot(p->endpoints, p->nr_endpoints, sizeof(p->endpoints[0]), pos);
	p->nr_endpoints--;
	return 0;
}

int policy_set_traffic(struct sw_policy *p, const char *endpoint,
		       const struct sw_policy_weight *weights, __u32 nr, struct sw_err *e)
{
	struct sw_policy_endpoint *ep;
	__u32 i;
	int err;

	ep = endpoint_get(p, endpoint);
	if (!ep)
		return no_such_endpoint(endpoint, e);
	err = policy_check_weights(p, ep->name, weights, nr, false, e);
	if (err)
		return err;
	/* The new split must not take in a backend that shadows this endpoint. */
	for (i = 0; i < nr; i++) {
		if (policy_shadow_index(ep, weights[i].backend) >= 0)
			return policy_serves_and_shadows(ep->name, weights[i].backend, e);
	}
	memset(ep->weights, 0, sizeof(ep->weights));
	copy_weights(ep->weights, weights, nr);
	ep->nr_weights = nr;
	return 0;
}

int policy_set_shadow(struct sw_policy *p, const char *endpoint, const char *backend,
		      __u32 fraction, struct sw_err *e)
{
	struct sw_policy_endpoint *ep;
	struct sw_policy_shadow *sh;
	char f_s[32];
	int pos, err;

	ep = endpoint_get(p, endpoint);
	if (!ep)
		return no_such_endpoint(endpoint, e);
	err = policy_check_backend_exists(p, ep->name, backend, false, e);
	if (err)
		return err;
	if (fraction > SW_WEIGHT_ONE)
		return sw_errorf(
			e, -EINVAL,
			"shadow fraction %s of backend \"%s\" is above 1; use 0 (stop) to 1 "
			"(copy every request)",
			sw_format_fraction(fraction, f_s, sizeof(f_s)), backend);
	pos = policy_shadow_index(ep, backend);
	/* Stopping a shadow that is not there is already done: scripts can repeat it. */
	if (!fraction) {
		if (pos >= 0) {
			remove_slot(ep->shadows, ep->nr_shadows, sizeof(ep->shadows[0]), pos);
			ep->nr_shadows--;
		}
		return 0;
	}
	if (policy_weight_index(ep, backend) >= 0)
		return policy_serves_and_shadows(ep->name, backend, e);
	if (pos >= 0) {
		ep->shadows[pos].fraction = fraction;
		return 0;
	}
	if (ep->nr_shadows >= SW_MAX_SHADOWS)
		return sw_errorf(e, -ENOSPC,
				 "endpoint \"%s\" already has %d shadows (limit %d); stop one with "
				 "\"sockway shadow set %s BACKEND 0\"",
				 ep->name, SW_MAX_SHADOWS, SW_MAX_SHADOWS, ep->name);
	sh = &ep->shadows[insert_slot(ep->shadows, ep->nr_shadows, sizeof(*sh), backend)];
	strcpy(sh->backend, backend);
	sh->fraction = fraction;
	ep->nr_shadows++;
	return 0;
}
