/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The sockway agent: `sockway [-j] OBJECT VERB ARGS`, shaped like bpftool. Each object has
 * its own file with a static table of verbs; main.c holds what they share.
 */
#ifndef SOCKWAY_AGENT_MAIN_H
#define SOCKWAY_AGENT_MAIN_H

#include <stdbool.h>

#include <jansson.h>

#include "maps.h"
#include "policy.h"

/* A usage error: main() exits 2 for it, 1 for every other error. Outside errno's range. */
#define EUSAGE 4096

/* Set once by main() from the global options; read-only afterwards. */
struct agent_cfg {
	bool json;
	int verbose;
};
extern struct agent_cfg agent_cfg;

struct cmd {
	const char *name;
	int (*func)(int argc, char **argv);
};

/*
 * Runs the verb that argv[0] names or uniquely prefixes; with no verb, default_verb (if set)
 * or help. Returns the verb's result, or -EUSAGE.
 */
int cmd_select(const char *object, const struct cmd *cmds, int argc, char **argv,
	       int (*help)(int argc, char **argv), const char *default_verb);

/* True when arg is a non-empty prefix of word ("cr" of "create"). */
bool is_prefix(const char *arg, const char *word);

/*
 * Printers (print.c). Each object prints through a pair fed from the same C data: a plain
 * printer that writes text on stdout, and its JSON twin that returns the value, which
 * agent_print() writes on stdout, compact, on one line. -j picks the twin.
 */
struct printer {
	void (*plain)(const void *data);
	json_t *(*json)(const void *data);
};
int agent_print(const struct printer *printer, const void *data);

/*
 * Errors: "sockway: <message>" on stderr, or under -j {"error": "<message>"} on stdout, as
 * bpftool does. Each returns err (usage_error: -EUSAGE, which main() turns into exit 2).
 */
int agent_error(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints e's message and returns err. */
int agent_fail(const struct sw_err *e, int err);

/* An endpoint's split as "b1=0.5 b2=0.5", its shadows as "s=0.1" or "-"; return buf. */
char *format_weights(const struct sw_policy_endpoint *ep, char *buf, size_t len);
char *format_shadows(const struct sw_policy_endpoint *ep, char *buf, size_t len);
/* The same in JSON: a fraction as a number, a split or the shadows as {"b1": 0.5, ...}. */
json_t *json_fraction(__u32 v);
json_t *json_weights(const struct sw_policy_endpoint *ep);
json_t *json_shadows(const struct sw_policy_endpoint *ep);

/* Opens the pinned maps; with lock, also takes the writers' lock. Prints errors. */
int agent_open(struct sw_maps *m, bool lock);

/* Opens the maps and reads the live policy into a new *p (policy_free() it, then
 * sw_maps_close()). Prints errors. */
int agent_open_policy(struct sw_maps *m, struct sw_policy **p);

/* Reads the live policy and prints it with printer (its data is the struct sw_policy). */
int agent_print_policy(const struct printer *printer);

/* One policy change: read the live policy, let edit() change a copy, validate the copy
 * whole, commit it. Nothing is written unless every step succeeds. */
typedef int (*policy_edit_fn)(struct sw_policy *p, void *ctx, struct sw_err *e);
int agent_edit(policy_edit_fn edit, void *ctx);

/* What apply_text() did with a document: committed it (or, dry, planned it); refused it
 * for what it says (invalid, or over a limit), so that the same bytes would be refused
 * again; or failed for another reason (no maps loaded, a map write failing). */
enum apply_result {
	APPLY_DONE = 0,
	APPLY_REFUSED = 1,
	APPLY_FAILED = 2,
};
/* Reads a policy file (- for stdin), at most 16 MiB, into a new NUL-terminated *text; with
 * regular_only, refuses anything but a regular file (a FIFO would block the reader). */
int policy_file_load(const char *file, bool regular_only, char **text, size_t *len);
/* Validates the document whole, then plans and (unless dry_run) commits it, and prints what
 * moved; name is what error lines call it. A refusal (not a dry run's) is counted in ctl. */
int apply_text(const char *name, const char *text, size_t len, bool dry_run,
	       enum apply_result *res);
/* apply --watch (watch.c): applies file, then each change of it, until SIGTERM or SIGINT. */
int apply_watch(const char *file);
/*
 * Counter cells as stats and top show them (cells.c). The names of the endpoints and backends
 * by id, from one read of the live policy: a cell carries ids only.
 */
struct cell_names {
	char endpoint[SW_MAX_ENDPOINTS][SW_NAME_MAX];
	char backend[SW_MAX_BACKENDS][SW_NAME_MAX];
};
/* Reads the live policy's names into n. */
int cell_names_read(struct sw_maps *m, struct cell_names *n, struct sw_err *e);
/* The names of a cell's endpoint and backend ("?" for an id n does not know), its role. */
const char *cell_endpoint(const struct cell_names *n, const struct sw_cell *cell);
const char *cell_backend(const struct cell_names *n, const struct sw_cell *cell);
const char *cell_role(const struct sw_cell *cell);
/* Upper bound in us of the latency bucket holding quantile q of c, 0 when there is no
 * sample. */
__u64 latency_quantile(const struct sw_counters *c, double q);
/* Counters as stats -j prints them: every field, the histogram, p50 and p99. */
json_t *counters_json(const struct sw_counters *c);

/* The objects. */
int do_load(int argc, char **argv);
int do_unload(int argc, char **argv);
int do_status(int argc, char **argv);
int do_backend(int argc, char **argv);
int do_endpoint(int argc, char **argv);
int do_traffic(int argc, char **argv);
int do_shadow(int argc, char **argv);
int do_stats(int argc, char **argv);
int do_apply(int argc, char **argv);
int do_export(int argc, char **argv);
int do_explain(int argc, char **argv);
int do_accel(int argc, char **argv);
int do_guard(int argc, char **argv);
int do_top(int argc, char **argv);
/* The guard's counters as guard stats -j prints them: {"passed": {"packets", "bytes"}...}. */
json_t *guard_counters_json(const struct sw_guard_stats *st);

#endif /* SOCKWAY_AGENT_MAIN_H */
