// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * The whole-policy check that apply runs (policy_validate), and the checks of one entry
 * that the edits (policy.c) run before they change anything (validate.h).
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "policy.h"
#include "validate.h"

/* Names in the model are char arrays that may come from maps: never read past them. */
static int check_terminated(const char *s, size_t size, const char *what, struct sw_err *e)
{
	if (memchr(s, '\0', size))
		return 0;
	return sw_errorf(e, -EINVAL, "%s is not terminated within %zu bytes; shorten it", what,
			 size);
}

int policy_check_name(const char *name, const char *what, struct sw_err *e)
{
	int err = check_terminated(name, SW_NAME_MAX, what, e);

	return err ? err : sw_parse_name(name, what, e);
}

/* IPv4 compares its four bytes only: the tail of addr[] carries no meaning for it. */
static bool same_addr(const struct sw_addr *a, const struct sw_addr *b)
{
	size_t n = a->family == AF_INET ? 4 : sizeof(a->addr);

	return a->family == b->family && a->port == b->port && !memcmp(a->addr, b->addr, n);
}

int policy_check_backend(const struct sw_policy_backend *b, struct sw_err *e)
{
	char addr[SW_SHOWN_MAX];
	__u32 i, j;
	int err;

	err = policy_check_name(b->name, "backend name", e);
	if (err)
		return err;
	if (!b->nr_replicas)
		return sw_errorf(e, -EINVAL,
				 "backend \"%s\" has no replicas; give it at least one ADDR:PORT",
				 b->name);
	if (b->nr_replicas > SW_MAX_REPLICAS)
		return sw_errorf(
			e, -ENOSPC,
			"backend \"%s\" has %u replicas (limit %d); give it fewer, or split "
			"it into several backends",
			b->name, b->nr_replicas, SW_MAX_REPLICAS);
	for (i = 0; i < b->nr_replicas; i++) {
		const struct sw_addr *a = &b->replicas[i];

		if ((a->family != AF_INET && a->family != AF_INET6) || !a->port)
			return sw_errorf(
				e, -EINVAL,
				"replica %u of backend \"%s\" is not a valid address (%s); "
				"give ADDR:PORT with a port from 1 to 65535",
				i + 1, b->name, sw_format_addr(a, addr, sizeof(addr)));
		for (j = 0; j < i; j++) {
			if (same_addr(a, &b->replicas[j]))
				return sw_errorf(e, -EINVAL,
						 "backend \"%s\" lists replica %s twice; list each "
						 "ADDR:PORT once",
						 b->name, sw_format_addr(a, addr, sizeof(addr)));
		}
	}
	return 0;
}

/*
 * A split or shadow names a backend that is not there. An edit can point at the CLI command
 * that creates it; in a policy file (apply replaces everything) the fix is in the file.
 */
int policy_check_backend_exists(const struct sw_policy *p, const char *endpoint,
				const char *backend, bool in_file, struct sw_err *e)
{
	int err;

	err = check_terminated(backend, SW_NAME_MAX, "backend name", e);
	if (err || policy_find_backend(p, backend))
		return err;
	err = sw_parse_name(backend, "backend name", e);
	if (err)
		return err;
	if (in_file)
		return sw_errorf(
			e, -ENOENT,
			"endpoint \"%s\" uses backend \"%s\", which is not defined; add it "
			"under \"backends\" or take it out of the endpoint",
			endpoint, backend);
	return sw_errorf(e, -ENOENT,
			 "backend \"%s\" does not exist; create it with \"sockway backend create "
			 "%s ADDR:PORT\"",
			 backend, backend);
}

int policy_serves_and_shadows(const char *endpoint, const char *backend, struct sw_err *e)
{
	return sw_errorf(e, -EINVAL,
			 "backend \"%s\" both serves and shadows endpoint \"%s\"; a shadow copy to "
			 "the backend that served the request is pointless, so take it out of the "
			 "traffic or the shadows",
			 backend, endpoint);
}

int policy_check_weights(const struct sw_policy *p, const char *endpoint,
			 const struct sw_policy_weight *w, __u32 nr, bool in_file, struct sw_err *e)
{
	char sum_s[32], w_s[32];
	__u64 sum = 0;
	__u32 i, j;
	int err;

	if (!nr)
		return sw_errorf(e, -EINVAL,
				 "endpoint \"%s\" has no traffic weights; give it at least one "
				 "backend with weight 1",
				 endpoint);
	if (nr > SW_MAX_SPLIT)
		return sw_errorf(
			e, -ENOSPC,
			"endpoint \"%s\" splits traffic between %u backends (limit %d); use "
			"fewer backends",
			endpoint, nr, SW_MAX_SPLIT);
	for (i = 0; i < nr; i++) {
		err = policy_check_backend_exists(p, endpoint, w[i].backend, in_file, e);
		if (err)
			return err;
		for (j = 0; j < i; j++) {
			if (!strcmp(w[i].backend, w[j].backend))
				return sw_errorf(e, -EINVAL,
						 "backend \"%s\" appears twice in the traffic of "
						 "endpoint \"%s\"; give each backend one weight",
						 w[i].backend, endpoint);
		}
		if (w[i].weight > SW_WEIGHT_ONE)
			return sw_errorf(
				e, -EINVAL,
				"weight %s of backend \"%s\" on endpoint \"%s\" is above 1; "
				"use weights from 0 to 1 that add up to 1",
				sw_format_fraction(w[i].weight, w_s, sizeof(w_s)), w[i].backend,
				endpoint);
		sum += w[i].weight;
	}
	if (sum + SW_WEIGHT_TOLERANCE < SW_WEIGHT_ONE || sum > SW_WEIGHT_ONE + SW_WEIGHT_TOLERANCE)
		return sw_errorf(
			e, -EINVAL,
			"weights of endpoint \"%s\" sum to %s, not 1.0 (within %g); adjust "
			"them so they add up to 1",
			endpoint, sw_format_fraction(sum, sum_s, sizeof(sum_s)),
			(double)SW_WEIGHT_TOLERANCE / SW_WEIGHT_ONE);
	return 0;
}

static int check_shadows(const struct sw_policy *p, const struct sw_policy_endpoint *ep,
			 bool in_file, struct sw_err *e)
{
	const struct sw_policy_shadow *sh = ep->shadows;
	char f_s[32];
	__u32 i, j;
	int err;

	if (ep->nr_shadows > SW_MAX_SHADOWS)
		return sw_errorf(e, -ENOSPC,
				 "endpoint \"%s\" has %u shadows (limit %d); remove some", ep->name,
				 ep->nr_shadows, SW_MAX_SHADOWS);
	for (i = 0; i < ep->nr_shadows; i++) {
		err = policy_check_backend_exists(p, ep->name, sh[i].backend, in_file, e);
		if (err)
			return err;
		for (j = 0; j < i; j++) {
			if (!strcmp(sh[i].backend, sh[j].backend))
				return sw_errorf(
					e, -EINVAL,
					"backend \"%s\" shadows endpoint \"%s\" twice; give "
					"it one fraction",
					sh[i].backend, ep->name);
		}
		if (!sh[i].fraction || sh[i].fraction > SW_WEIGHT_ONE)
			return sw_errorf(
				e, -EINVAL,
				"shadow fraction %s of backend \"%s\" on endpoint \"%s\" is "
				"out of range; use a number in (0, 1], or remove the shadow",
				sw_format_fraction(sh[i].fraction, f_s, sizeof(f_s)), sh[i].backend,
				ep->name);
		if (policy_weight_index(ep, sh[i].backend) >= 0)
			return policy_serves_and_shadows(ep->name, sh[i].backend, e);
	}
	return 0;
}

/* Everything about one endpoint but its name's uniqueness; skip is its own index, or -1. */
int policy_check_endpoint(const struct sw_policy *p, const struct sw_policy_endpoint *ep, int skip,
			  bool in_file, struct sw_err *e)
{
	char norm[SW_PREFIX_MAX];
	__u32 i;
	int err;

	err = policy_check_name(ep->name, "endpoint name", e);
	if (!err)
		err = check_terminated(ep->route, sizeof(ep->route), "route", e);
	if (!err)
		err = check_terminated(ep->host, sizeof(ep->host), "host", e);
	if (!err)
		err = check_terminated(ep->shard_header, sizeof(ep->shard_header), "header name",
				       e);
	if (!err)
		err = sw_parse_route(ep->route, norm, e);
	if (err)
		return err;
	/* Routes are matched byte for byte: "/api/" would never match what "/api" does. */
	if (strcmp(norm, ep->route))
		return sw_errorf(e, -EINVAL,
				 "route \"%s\" of endpoint \"%s\" is not in normal form; "
				 "write it as \"%s\"",
				 ep->route, ep->name, norm);
	if (ep->host[0]) {
		err = sw_parse_host(ep->host, norm, e);
		if (err)
			return err;
		if (strcmp(norm, ep->host))
			return sw_errorf(
				e, -EINVAL,
				"host \"%s\" of endpoint \"%s\" is not in lower case; write "
				"it as \"%s\"",
				ep->host, ep->name, norm);
	}
	if (ep->methods & ~SW_METHODS_KNOWN)
		return sw_errorf(
			e, -EINVAL,
			"endpoint \"%s\" has unknown method bits 0x%x; filter on GET, HEAD, "
			"POST, PUT, DELETE, PATCH, OPTIONS, CONNECT or TRACE only",
			ep->name, ep->methods & ~SW_METHODS_KNOWN);
	err = sw_parse_header_name(ep->shard_header, norm, e);
	if (!err)
		err = policy_check_weights(p, ep->name, ep->weights, ep->nr_weights, in_file, e);
	if (!err)
		err = check_shadows(p, ep, in_file, e);
	if (err)
		return err;
	for (i = 0; i < p->nr_endpoints; i++) {
		const struct sw_policy_endpoint *other = &p->endpoints[i];

		if ((int)i == skip || strcmp(other->route, ep->route) ||
		    strcmp(other->host, ep->host))
			continue;
		return sw_errorf(
			e, -EEXIST,
			"endpoint \"%s\" already has route %s on %s%s; give endpoint \"%s\" "
			"another route or host",
			other->name, ep->route, ep->host[0] ? "host " : "any host", ep->host,
			ep->name);
	}
	return 0;
}

int policy_validate(const struct sw_policy *p, struct sw_err *e)
{
	__u32 i, j;
	int err;

	if (p->nr_backends > SW_MAX_BACKENDS)
		return sw_errorf(e, -ENOSPC, "too many backends (%u, limit %d); remove some",
				 p->nr_backends, SW_MAX_BACKENDS);
	if (p->nr_endpoints > SW_MAX_ENDPOINTS)
		return sw_errorf(e, -ENOSPC, "too many endpoints (%u, limit %d); remove some",
				 p->nr_endpoints, SW_MAX_ENDPOINTS);
	/*
	 * Duplicates are found pairwise rather than between neighbours: a policy read back from
	 * the maps comes in id order, and 256 x 256 name comparisons cost well under a millisecond.
	 */
	for (i = 0; i < p->nr_backends; i++) {
		err = policy_check_backend(&p->backends[i], e);
		if (err)
			return err;
		for (j = 0; j < i; j++) {
			if (!strcmp(p->backends[i].name, p->backends[j].name))
				return sw_errorf(e, -EEXIST,
						 "backend \"%s\" is defined twice; keep one "
						 "definition",
						 p->backends[i].name);
		}
	}
	for (i = 0; i < p->nr_endpoints; i++) {
		err = policy_check_endpoint(p, &p->endpoints[i], i, true, e);
		if (err)
			return err;
		for (j = 0; j < i; j++) {
			if (!strcmp(p->endpoints[i].name, p->endpoints[j].name))
				return sw_errorf(e, -EEXIST,
						 "endpoint \"%s\" is defined twice; keep one "
						 "definition",
						 p->endpoints[i].name);
		}
	}
	return 0;
}
