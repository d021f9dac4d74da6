/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The policy file: one JSON document that holds the whole policy (README "Policy file").
 * Export is canonical (sorted keys, shortest numbers), so export | apply round-trips exactly.
 */
#ifndef SOCKWAY_POLICY_JSON_H
#define SOCKWAY_POLICY_JSON_H

#include "guard.h"
#include "policy.h"

/*
 * Parses a policy document into p (which it first empties). Unknown fields, wrong types and
 * bad values are refused with a message that names the JSON path ("endpoints.canary.traffic").
 * Does not run policy_validate(): the caller does.
 */
int policy_from_json(const char *text, size_t len, struct sw_policy *p, struct sw_err *e);

/* The canonical document, newline-terminated; malloc'd, NULL with errno set on failure. */
char *policy_to_json(const struct sw_policy *p);

/* The document's "guard" into g (g->present false when it has none): the prefixes parsed
 * and sorted, a prefix listed twice refused. The document is policy_from_json()'s. */
int guard_from_json(const char *text, size_t len, struct sw_guard_policy *g, struct sw_err *e);
/* policy_to_json() with the guard g as "guard", unless g is NULL or holds nothing. */
char *policy_guard_to_json(const struct sw_policy *p, const struct sw_guard_policy *g);

#endif /* SOCKWAY_POLICY_JSON_H */
