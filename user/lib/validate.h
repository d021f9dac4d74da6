/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The checks of policy_validate() that the edits (policy.c) run on the one entry they
 * change, before they change anything. Each returns 0 or -errno with e filled.
 *
 * in_file picks the advice of a message about a backend that is not there: a policy file
 * is fixed in the file, an edit by creating the backend.
 */
#ifndef SOCKWAY_VALIDATE_H
#define SOCKWAY_VALIDATE_H

#include <stdbool.h>

#include "policy.h"

/* A name field of the model: terminated within SW_NAME_MAX, then sw_parse_name(). */
int policy_check_name(const char *name, const char *what, struct sw_err *e);
/* Name, replicas (at least one, valid, none twice). */
int policy_check_backend(const struct sw_policy_backend *b, struct sw_err *e);
/* Everything about ep but its name's uniqueness; skip is ep's own index in p, or -1. */
int policy_check_endpoint(const struct sw_policy *p, const struct sw_policy_endpoint *ep, int skip,
			  bool in_file, struct sw_err *e);
/* A split: 1..SW_MAX_SPLIT existing backends, none twice, summing to 1 within tolerance. */
int policy_check_weights(const struct sw_policy *p, const char *endpoint,
			 const struct sw_policy_weight *w, __u32 nr, bool in_file,
			 struct sw_err *e);
/* backend, named by endpoint's split or shadows, exists in p. */
int policy_check_backend_exists(const struct sw_policy *p, const char *endpoint,
				const char *backend, bool in_file, struct sw_err *e);
/* The refusal of a backend that would both serve and shadow endpoint. */
int policy_serves_and_shadows(const char *endpoint, const char *backend, struct sw_err *e);

#endif /* SOCKWAY_VALIDATE_H */
