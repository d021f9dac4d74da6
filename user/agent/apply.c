// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * sockway apply -f FILE|- [--dry-run], sockway export: the whole policy as one document.
 * apply --watch (watch.c) comes back here for each change of the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy_json.h"
#include "main.h"

/* Policy files are small; a megabyte-sized one is a mistake, not a policy. */
#define POLICY_FILE_MAX (16 << 20)

static int apply_help(void)
{
	fprintf(stderr,
		"Usage: sockway apply -f FILE|- [--dry-run] [--watch]\n"
		"       sockway export\n"
		"\n"
		"apply makes the maps hold exactly the policy in FILE (- for stdin): backends\n"
		"and endpoints missing from it are deleted. The document is validated whole and\n"
		"committed as one generation, or refused with nothing changed. --dry-run prints\n"
		"the commit's plan without writing it: the changes and, per endpoint, the\n"
		"fraction of shard keys that would move.\n"
		"A \"guard\" object in FILE ({\"deny\": [CIDR...], \"allow\": [CIDR...],\n"
		"\"limit\": {\"rate\": R, \"burst\": B}}) replaces the XDP guard's lists and "
		"limit;\n"
		"without one the guard is left as it is.\n"
		"--watch applies FILE, then again each time it changes (inotify on its\n"
		"directory: an editor's rename and a Kubernetes ConfigMap's ..data swap are\n"
		"seen); a change that does not validate is refused with its reason and counted\n"
		"(sockway_policy_refused_total), and the running policy stays. SIGHUP applies\n"
		"FILE again even if unchanged; SIGTERM or SIGINT end the watch.\n"
		"export prints the live policy; \"sockway export | sockway apply -f -\" is a "
		"no-op.\n");
	return 0;
}

static char *read_all(FILE *f, size_t *len)
{
	size_t cap = 65536, n = 0, got;
	char *buf = malloc(cap + 1), *tmp;

	while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n < cap)
			continue;
		if (cap >= POLICY_FILE_MAX) {
			free(buf);
			errno = EFBIG;
			return NULL;
		}
		cap *= 2;
		tmp = realloc(buf, cap + 1);
		if (!tmp)
			free(buf);
		buf = tmp;
	}
	if (buf && ferror(f)) {
		free(buf);
		return NULL;
	}
	if (buf) {
		buf[n] = '\0';
		*len = n;
	}
	return buf;
}

/* What apply did, or would do (dry_run): the commit's own plan. */
struct apply_view {
	const struct sw_plan *plan;
	struct sw_guard_delta delta;
	bool dry_run;
	__u64 generation;
};

static const char *const op_names[] = {
	[SW_PLAN_KEEP] = "keep",
	[SW_PLAN_CREATE] = "create",
	[SW_PLAN_CHANGE] = "change",
	[SW_PLAN_DELETE] = "delete",
};

static const char op_signs[] = {
	[SW_PLAN_KEEP] = '=',
	[SW_PLAN_CREATE] = '+',
	[SW_PLAN_CHANGE] = '~',
	[SW_PLAN_DELETE] = '-',
};

/* Appends one "; "-separated part to text. */
static void text_add(char *text, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void text_add(char *text, size_t len, const char *fmt, ...)
{
	size_t n = strlen(text);
	va_list ap;

	if (n && n + 2 < len)
		n += snprintf(text + n, len - n, "; ");
	va_start(ap, fmt);
	vsnprintf(text + n, len - n, fmt, ap);
	va_end(ap);
}

static char *replicas_text(const struct sw_policy_backend *b, char *buf, size_t len)
{
	size_t off = 0;
	char addr[64];
	__u32 i;

	buf[0] = '\0';
	for (i = 0; i < b->nr_replicas && off < len; i++)
		off += snprintf(buf + off, len - off, "%s%s", i ? " " : "",
				sw_format_addr(&b->replicas[i], addr, sizeof(addr)));
	return buf;
}

/* "GET,POST", or "*" for any method, as endpoint list prints them. */
static const char *methods_text(__u32 methods, char *buf, size_t len)
{
	return methods ? sw_format_methods(methods, buf, len) : "*";
}

/* A backend's change: what its replicas become. Creates and deletes say nothing more. */
static char *backend_text(const struct sw_plan_backend *pb, char *text, size_t len)
{
	char a[SW_MAX_REPLICAS * 48], b[SW_MAX_REPLICAS * 48];

	text[0] = '\0';
	if (pb->op == SW_PLAN_CHANGE)
		snprintf(text, len, "replicas %s -> %s", replicas_text(pb->old, a, sizeof(a)),
			 replicas_text(pb->new, b, sizeof(b)));
	return text;
}

/* An endpoint's: a created one's route and split, what a change changes, and the shard keys
 * that a change of its split moves. */
static char *endpoint_text(const struct sw_plan_endpoint *pe, char *text, size_t len)
{
	char a[SW_MAX_SPLIT * 48], b[SW_MAX_SPLIT * 48];
	const struct sw_policy_endpoint *o = pe->old, *n = pe->new;

	text[0] = '\0';
	if (pe->op == SW_PLAN_CREATE)
		snprintf(text, len, "route %s%s traffic %s", n->host, n->route,
			 format_weights(n, b, sizeof(b)));
	if (pe->op != SW_PLAN_CHANGE)
		return text;
	if (pe->changes & SW_PLAN_ROUTE)
		text_add(text, len, "route %s%s -> %s%s", o->host, o->route, n->host, n->route);
	if (pe->changes & SW_PLAN_METHODS)
		text_add(text, len, "methods %s -> %s", methods_text(o->methods, a, sizeof(a)),
			 methods_text(n->methods, b, sizeof(b)));
	if (pe->changes & SW_PLAN_SHARD_HEADER)
		text_add(text, len, "shard header %s -> %s", o->shard_header, n->shard_header);
	if (pe->changes & SW_PLAN_TRAFFIC)
		text_add(text, len, "traffic %s -> %s; shard keys moving: %.4f%% (%u of %u slots)",
			 format_weights(o, a, sizeof(a)), format_weights(n, b, sizeof(b)),
			 100.0 * pe->moved_slots / SW_SLOTS, pe->moved_slots, SW_SLOTS);
	if (pe->changes & SW_PLAN_SHADOWS)
		text_add(text, len, "shadows %s -> %s", format_shadows(o, a, sizeof(a)),
			 format_shadows(n, b, sizeof(b)));
	return text;
}

static void change_plain(enum sw_plan_op op, const char *kind, const char *name, const char *text)
{
	printf("%c %s%s%s%s%s\n", op_signs[op], kind, name[0] ? " " : "", name, text[0] ? ": " : "",
	       text);
}

/* The guard counts as one change when the file's differs from the live one. */
static __u32 guard_changes(const struct apply_view *v)
{
	const struct sw_guard_delta *d = &v->delta;

	return d->deny_added || d->deny_removed || d->allow_added || d->allow_removed ||
	       d->limit_changed;
}

static char *guard_text(const struct apply_view *v, char *text, size_t len)
{
	const struct sw_guard_delta *d = &v->delta;

	text[0] = '\0';
	if (d->deny_added || d->deny_removed)
		text_add(text, len, "deny +%u -%u", d->deny_added, d->deny_removed);
	if (d->allow_added || d->allow_removed)
		text_add(text, len, "allow +%u -%u", d->allow_added, d->allow_removed);
	if (d->limit_changed)
		text_add(text, len, "limit %u/s burst %u -> %u/s burst %u", d->old_rate,
			 d->old_burst, d->rate, d->burst);
	return text;
}

static void apply_plain(const void *data)
{
	const struct apply_view *v = data;
	const struct sw_plan *plan = v->plan;
	char text[4 * SW_MAX_SPLIT * 48];
	__u32 i, n = plan->nr_changes + guard_changes(v);

	if (!n) {
		printf("no changes\n");
		return;
	}
	for (i = 0; i < plan->nr_backends; i++) {
		const struct sw_plan_backend *pb = &plan->backends[i];

		if (pb->op != SW_PLAN_KEEP)
			change_plain(pb->op, "backend", (pb->new ? pb->new : pb->old)->name,
				     backend_text(pb, text, sizeof(text)));
	}
	for (i = 0; i < plan->nr_endpoints; i++) {
		const struct sw_plan_endpoint *pe = &plan->endpoints[i];

		if (pe->op != SW_PLAN_KEEP)
			change_plain(pe->op, "endpoint", (pe->new ? pe->new : pe->old)->name,
				     endpoint_text(pe, text, sizeof(text)));
	}
	if (guard_changes(v))
		change_plain(SW_PLAN_CHANGE, "guard", "", guard_text(v, text, sizeof(text)));
	printf("%s %u change%s\n", v->dry_run ? "would apply" : "applied", n, n == 1 ? "" : "s");
}

static json_t *change_json(enum sw_plan_op op, const char *kind, const char *name, __u32 id,
			   const char *text)
{
	return json_pack("{s:s, s:s, s:i, s:s}", "op", op_names[op], kind, name, "id", id, "text",
			 text);
}

static json_t *apply_json(const void *data)
{
	const struct apply_view *v = data;
	const struct sw_plan *plan = v->plan;
	char text[4 * SW_MAX_SPLIT * 48];
	json_t *changes = json_array(), *c;
	__u32 i;

	for (i = 0; i < plan->nr_backends; i++) {
		const struct sw_plan_backend *pb = &plan->backends[i];

		if (pb->op != SW_PLAN_KEEP)
			json_array_append_new(
				changes,
				change_json(pb->op, "backend", (pb->new ? pb->new : pb->old)->name,
					    pb->id, backend_text(pb, text, sizeof(text))));
	}
	for (i = 0; i < plan->nr_endpoints; i++) {
		const struct sw_plan_endpoint *pe = &plan->endpoints[i];

		if (pe->op == SW_PLAN_KEEP)
			continue;
		c = change_json(pe->op, "endpoint", (pe->new ? pe->new : pe->old)->name, pe->id,
				endpoint_text(pe, text, sizeof(text)));
		if (pe->changes & SW_PLAN_TRAFFIC) {
			json_object_set_new(c, "moved_slots", json_integer(pe->moved_slots));
			json_object_set_new(c, "moved_fraction",
					    json_real(pe->moved_slots / (double)SW_SLOTS));
		}
		json_array_append_new(changes, c);
	}
	if (guard_changes(v))
		json_array_append_new(
			changes, json_pack("{s:s, s:s, s:s, s:{s:i, s:i, s:i, s:i, s:i, s:i}}",
					   "op", op_names[SW_PLAN_CHANGE], "guard", "guard", "text",
					   guard_text(v, text, sizeof(text)), "guard_delta",
					   "deny_added", (int)v->delta.deny_added, "deny_removed",
					   (int)v->delta.deny_removed, "allow_added",
					   (int)v->delta.allow_added, "allow_removed",
					   (int)v->delta.allow_removed, "rate", (int)v->delta.rate,
					   "burst", (int)v->delta.burst));
	return json_pack("{s:b, s:I, s:o}", "dry_run", v->dry_run, "generation",
			 (json_int_t)v->generation, "changes", changes);
}

static const struct printer apply_printer = {apply_plain, apply_json};

int policy_file_load(const char *file, bool regular_only, char **text, size_t *len)
{
	struct stat st;
	FILE *f;
	int fd, err = 0;

	if (!strcmp(file, "-")) {
		f = stdin;
	} else {
		/* O_NONBLOCK: a FIFO swapped in after the caller looked must not block the open;
		 * the check is then on what was opened. */
		fd = open(file, O_RDONLY | O_CLOEXEC | (regular_only ? O_NONBLOCK : 0));
		if (fd < 0)
			return agent_error(-errno, "cannot open %s: %s", file, strerror(errno));
		if (regular_only && (fstat(fd, &st) || !S_ISREG(st.st_mode))) {
			close(fd);
			return agent_error(-EINVAL, "%s is not a regular file", file);
		}
		if (regular_only)
			fcntl(fd, F_SETFL, 0);
		f = fdopen(fd, "r");
		if (!f) {
			err = -errno;
			close(fd);
			return agent_error(err, "cannot open %s: %s", file, strerror(-err));
		}
	}
	*text = read_all(f, len);
	if (!*text)
		err = agent_error(-errno, "cannot read %s: %s", file, strerror(errno));
	if (f != stdin)
		fclose(f);
	return err;
}

/*
 * Adds one to the refused-documents counter of the ctl map, which sockwayd's /metrics
 * exports, so that a bad file (a ConfigMap rolled out to a fleet, say) can raise an alert.
 * Best effort: with no maps loaded there is nothing to count in.
 */
static void count_refusal(void)
{
	struct sw_err e = {};
	struct sw_maps m;

	if (sw_maps_open(&m, &e))
		return;
	__atomic_fetch_add(&m.ctl->policy_refused, 1, __ATOMIC_RELAXED);
	sw_maps_close(&m);
}

/* Plans new over the live policy and, unless a dry run, commits the plan; prints it. */
static int apply_policy(const struct sw_policy *new, const struct sw_guard_policy *g, bool dry_run,
			enum apply_result *res)
{
	struct apply_view v = {.dry_run = dry_run};
	struct sw_policy *old = NULL;
	struct sw_plan *plan = NULL;
	struct sw_err e = {};
	struct sw_maps m;
	int err;

	*res = APPLY_FAILED;
	/* A dry run takes no lock: it plans against what the maps hold now. */
	err = agent_open(&m, !dry_run);
	if (err)
		return err;
	old = policy_alloc();
	if (!old) {
		err = agent_error(-ENOMEM, "out of memory");
		goto cleanup;
	}
	err = policy_read(&m, old, &e);
	if (err) {
		agent_fail(&e, err);
		goto cleanup;
	}
	err = policy_plan(&m, old, new, &plan, &e);
	/* The guard's plan too before anything is written (it reads the maps only). */
	if (!err)
		err = sw_guard_apply(&m, g, true, &v.delta, &e);
	if (err) {
		/* What the plans refuse for what the document says (too many backends, no
		 * counter cells left, a guard list over its limit, a name that does not exist)
		 * is refused like an invalid document; a map read or memory failing is not the
		 * document's fault, and may pass when tried again. */
		if (err == -EINVAL || err == -ENOENT || err == -ENOSPC || err == -E2BIG ||
		    err == -ERANGE || err == -EEXIST) {
			*res = APPLY_REFUSED;
			if (!dry_run)
				__atomic_fetch_add(&m.ctl->policy_refused, 1, __ATOMIC_RELAXED);
		}
		agent_fail(&e, err);
		goto cleanup;
	}
	if (!dry_run && plan->nr_changes)
		err = policy_plan_write(&m, plan, &e);
	if (!err && !dry_run) {
		err = sw_guard_apply(&m, g, false, &v.delta, &e);
		/* Rare (a map update failing): the policy went in, the guard only in part. */
		if (err) {
			agent_error(err,
				    "the policy was committed (generation %llu) but the guard "
				    "was not: %s; apply the file again",
				    (unsigned long long)sw_generation(&m), e.msg);
			goto cleanup;
		}
	}
	if (err) {
		agent_fail(&e, err);
		goto cleanup;
	}
	*res = APPLY_DONE;
	v.plan = plan;
	v.generation = sw_generation(&m);
	err = agent_print(&apply_printer, &v);
cleanup:
	policy_plan_free(plan);
	policy_free(old);
	sw_maps_close(&m);
	return err;
}

int apply_text(const char *name, const char *text, size_t len, bool dry_run, enum apply_result *res)
{
	struct sw_guard_policy *g;
	struct sw_policy *new;
	struct sw_err e = {};
	int err;

	*res = APPLY_FAILED;
	new = policy_alloc();
	g = calloc(1, sizeof(*g));
	if (!new || !g) {
		err = agent_error(-ENOMEM, "out of memory");
		goto cleanup;
	}
	err = policy_from_json(text, len, new, &e);
	if (!err)
		err = policy_validate(new, &e);
	if (!err)
		err = guard_from_json(text, len, g, &e);
	if (err) {
		*res = APPLY_REFUSED;
		agent_error(err, "%s: %s", name, e.msg);
		/* A dry run only asks: its refusals are not counted. */
		if (!dry_run)
			count_refusal();
		goto cleanup;
	}
	err = apply_policy(new, g, dry_run, res);
cleanup:
	policy_free(new);
	free(g);
	return err;
}

int do_apply(int argc, char **argv)
{
	enum apply_result res;
	const char *file = NULL;
	bool dry_run = false, watch = false;
	size_t len = 0;
	char *text;
	int i, err;

	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--dry-run"))
			dry_run = true;
		else if (!strcmp(argv[i], "--watch"))
			watch = true;
		else if ((!strcmp(argv[i], "-f") || !strcmp(argv[i], "--file")) && i + 1 < argc)
			file = argv[++i];
		else if (!strcmp(argv[i], "help") || !strcmp(argv[i], "-h"))
			return apply_help();
		else
			return usage_error("usage: sockway apply -f FILE|- [--dry-run] [--watch]");
	}
	if (!file)
		return usage_error("apply needs -f FILE (or -f - for stdin)");
	if (watch && dry_run)
		return usage_error("--watch applies each change; it does not go with --dry-run");
	if (watch && !strcmp(file, "-"))
		return usage_error("--watch needs a file to watch, not - (stdin)");
	if (watch)
		return apply_watch(file);
	err = policy_file_load(file, false, &text, &len);
	if (err)
		return err;
	err = apply_text(file, text, len, dry_run, &res);
	free(text);
	return err;
}

int do_export(int argc, char **argv)
{
	struct sw_guard_policy *g = NULL;
	struct sw_policy *p = NULL;
	struct sw_err e = {};
	struct sw_maps m;
	char *text;
	int err;

	if (argc > 0 && (!strcmp(argv[0], "help") || !strcmp(argv[0], "-h")))
		return apply_help();
	if (argc)
		return usage_error("usage: sockway export");
	err = agent_open_policy(&m, &p);
	if (err)
		return err;
	g = calloc(1, sizeof(*g));
	if (!g) {
		err = agent_error(-ENOMEM, "out of memory");
		goto cleanup;
	}
	err = sw_guard_policy_read(&m, g, &e);
	if (err) {
		agent_fail(&e, err);
		goto cleanup;
	}
	text = policy_guard_to_json(p, g);
	if (!text) {
		err = agent_error(-ENOMEM, "out of memory");
		goto cleanup;
	}
	fputs(text, stdout);
	free(text);
cleanup:
	free(g);
	policy_free(p);
	sw_maps_close(&m);
	return err;
}
