// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * sockway top [-n COUNT] [-d SECONDS] [ENDPOINT]: the counter cells, live. Each frame sums
 * the shards of every cell from the mmap-ed counters map (no syscall per cell), subtracts
 * what the previous frame saw and divides by the time between the two (CLOCK_MONOTONIC).
 * Three outputs, one frame model:
 *   - stdout a terminal, no -n, no -j: a view redrawn in place on the alternate screen,
 *     fitted to the terminal, `q` or a signal to quit;
 *   - -n COUNT, or stdout not a terminal: plain frames one after the other, no escapes
 *     (without -n, until a signal, as `top -b` does);
 *   - -j: one JSON object per frame and line.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "main.h"

#define TOP_INTERVAL_DEFAULT 1.0
#define TOP_INTERVAL_MAX     3600.0
#define TOP_COUNT_MAX	     1000000000L
/* Before the first frame there is nothing to subtract from: the view waits one interval. */
#define TOP_WAITING "waiting one interval for the first frame"

static int top_help(void)
{
	fputs("Usage: sockway top [-n COUNT] [-d SECONDS] [ENDPOINT]\n"
	      "\n"
	      "The counters of each endpoint x backend x role (of ENDPOINT only, if given),\n"
	      "live: a frame every SECONDS (default 1, decimals work, 3600 at most). Rows are\n"
	      "sorted by requests per second, then by name. Over the interval:\n"
	      "  REQ/S          requests per second (REQUESTS: the total so far)\n"
	      "  2XX% 4XX% 5XX% shares of the responses (- when there was none)\n"
	      "  P50 P99        latency (upper bound of its log2 bucket; - without one)\n"
	      "  ERR/S          upstream errors per second\n"
	      "  MATCH%         shadows: responses whose status equalled the primary's\n"
	      "  DROP/S         shadows: samples dropped per second\n"
	      "  ACCEL/S        bytes per second that the kernel moved (K, M, G: 1024s)\n"
	      "The first line: time, policy generation, the interval measured, and the totals\n"
	      "of the primary rows (of all rows for err/s and accel). The first frame comes\n"
	      "one interval after the start.\n"
	      "\n"
	      "On a terminal the view is redrawn in place; q, Ctrl-C or SIGTERM quit. With -n,\n"
	      "COUNT frames in plain text, a blank line after each, then exit. With stdout not\n"
	      "a terminal, plain frames until SIGINT or SIGTERM. With -j, one JSON object per\n"
	      "frame and line: every field, the counters so far and those of the interval as\n"
	      "\"sockway -j stats\" has them, rates unrounded.\n",
	      stderr);
	return 0;
}

/* A cell at the previous frame: one whose ids or role changed since is another cell. */
struct top_seen {
	bool in_use;
	__u16 endpoint_id;
	__u16 backend_id;
	__u32 role;
	struct sw_counters sum;
};

/* One row of a frame: a cell, its counters so far and those of the interval. */
struct top_row {
	__u32 cell;
	const char *role;
	char endpoint[SW_NAME_MAX];
	char backend[SW_NAME_MAX];
	struct sw_counters sum;
	struct sw_counters delta;
	__u64 responses; /* in the interval: the status classes summed */
	double requests_per_s;
};

/* Sums of the rows shown: requests of the primaries (a shadow's are copies), the rest of all. */
struct top_totals {
	__u64 requests;
	__u64 responses; /* of the primaries, in the interval */
	__u64 status_5xx;
	double requests_per_s;
	double errors_per_s;
	double accel_bytes_per_s;
};

struct top_frame {
	double interval_s; /* measured between this frame's reads and the previous one's */
	struct timespec wall;
	__u64 generation;
	struct top_totals totals;
	__u32 nr;
	struct top_row rows[SW_MAX_CELLS];
};

enum top_output {
	TOP_TERMINAL,
	TOP_PLAIN,
	TOP_JSON,
};

struct top {
	long count; /* frames to print; 0: until quit */
	double interval;
	const char *endpoint; /* NULL: all of them */
	enum top_output output;
	struct sw_maps m;
	struct cell_names names;
	__u64 names_generation; /* the generation names was read at */
	bool names_valid;	/* ... whole: even, and the same after the read */
	struct top_seen seen[SW_MAX_CELLS];
	double seen_at; /* CLOCK_MONOTONIC, s */
	bool have_frame;
	struct top_frame frame;
	/* The terminal, in TOP_TERMINAL */
	bool keys;   /* stdin is a terminal in non-canonical mode, read for q */
	bool screen; /* on the alternate screen */
	struct termios saved;
};

/*
 * Set by the signal handlers, read by the wait between frames. Process-wide, as signals
 * are; they are blocked except inside ppoll(), so a signal never slips in between the test
 * of a flag and the sleep.
 */
static volatile sig_atomic_t top_quit, top_resized;

static void top_on_signal(int sig)
{
	if (sig == SIGWINCH)
		top_resized = 1;
	else
		top_quit = 1;
}

static double monotonic_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int parse_interval(const char *arg, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (!arg[0] || *end || errno || !isfinite(v) || v <= 0 || v > TOP_INTERVAL_MAX)
		return usage_error("-d takes the seconds between frames, above 0 and at most %.0f "
				   "(0.5 say), not \"%s\"",
				   TOP_INTERVAL_MAX, arg);
	*out = v;
	return 0;
}

static int parse_count(const char *arg, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (!arg[0] || *end || errno || v < 1 || v > TOP_COUNT_MAX)
		return usage_error("-n takes the number of frames to print, a whole number from 1 "
				   "to %ld, not \"%s\"",
				   TOP_COUNT_MAX, arg);
	*out = v;
	return 0;
}

/* --- frames ---------------------------------------------------------------------------- */

/* Re-reads the names when a commit moved the generation, so that new endpoints show. */
static int top_names_refresh(struct top *t, struct sw_err *e)
{
	__u64 gen = sw_generation(&t->m);
	int err;

	if (t->names_valid && gen == t->names_generation)
		return 0;
	err = cell_names_read(&t->m, &t->names, e);
	if (err)
		return err;
	/* Read during a commit (odd, or moved meanwhile): used, and read again next frame. */
	t->names_valid = !(gen & 1) && sw_generation(&t->m) == gen;
	t->names_generation = gen;
	return 0;
}

/* now - then field by field; a field that went down means the cell was reset (stats
 * --reset, or released and taken again): then everything in now is new. */
static void counters_delta(const struct sw_counters *now, const struct sw_counters *then,
			   struct sw_counters *out)
{
	const __u64 *a = (const __u64 *)now, *b = (const __u64 *)then;
	__u64 *d = (__u64 *)out;
	size_t i, n = sizeof(*out) / sizeof(__u64);

	for (i = 0; i < n; i++) {
		if (a[i] < b[i]) {
			memcpy(out, now, sizeof(*out));
			return;
		}
	}
	for (i = 0; i < n; i++)
		d[i] = a[i] - b[i];
}

static int row_cmp(const void *x, const void *y)
{
	const struct top_row *a = x, *b = y;
	int c;

	if (a->requests_per_s != b->requests_per_s)
		return a->requests_per_s > b->requests_per_s ? -1 : 1;
	c = strcmp(a->endpoint, b->endpoint);
	if (!c)
		c = strcmp(a->backend, b->backend);
	return c ? c : strcmp(a->role, b->role);
}

static void row_totals(const struct top_row *r, double dt, struct top_totals *tot)
{
	__u64 errors = 0;
	int i;

	for (i = 0; i < SW_ERR_MAX; i++)
		errors += r->delta.errors[i];
	tot->errors_per_s += errors / dt;
	tot->accel_bytes_per_s += r->delta.accel_bytes / dt;
	if (strcmp(r->role, "primary"))
		return;
	tot->requests += r->sum.requests;
	tot->requests_per_s += r->requests_per_s;
	tot->responses += r->responses;
	tot->status_5xx += r->delta.status[4];
}

/*
 * Reads every cell in use: the baseline (frame false) only remembers them; a frame also
 * makes a row of each (of the endpoint asked for) with what it did since dt seconds ago.
 */
static void top_read(struct top *t, bool frame, double dt)
{
	struct top_frame *f = &t->frame;
	__u32 c;
	int k;

	memset(&f->totals, 0, sizeof(f->totals));
	f->nr = 0;
	f->interval_s = dt;
	f->generation = sw_generation(&t->m);
	clock_gettime(CLOCK_REALTIME, &f->wall);
	for (c = 0; c < SW_MAX_CELLS; c++) {
		const struct sw_cell *cell = &t->m.cells[c];
		struct top_seen *seen = &t->seen[c];
		struct top_row *row = &f->rows[f->nr];
		struct sw_counters sum;
		bool same;

		if (!(__atomic_load_n(&cell->flags, __ATOMIC_ACQUIRE) & SW_F_IN_USE)) {
			seen->in_use = false;
			continue;
		}
		sw_cell_sum(cell, &sum);
		same = seen->in_use && seen->endpoint_id == cell->endpoint_id &&
		       seen->backend_id == cell->backend_id && seen->role == cell->role;
		if (frame &&
		    (!t->endpoint || !strcmp(t->endpoint, cell_endpoint(&t->names, cell)))) {
			row->cell = c;
			row->role = cell_role(cell);
			strcpy(row->endpoint, cell_endpoint(&t->names, cell));
			strcpy(row->backend, cell_backend(&t->names, cell));
			row->sum = sum;
			/* A cell new since the last frame was zeroed when it was taken. */
			if (same)
				counters_delta(&sum, &seen->sum, &row->delta);
			else
				row->delta = sum;
			for (k = 0, row->responses = 0; k < 5; k++)
				row->responses += row->delta.status[k];
			row->requests_per_s = row->delta.requests / dt;
			row_totals(row, dt, &f->totals);
			f->nr++;
		}
		seen->in_use = true;
		seen->endpoint_id = cell->endpoint_id;
		seen->backend_id = cell->backend_id;
		seen->role = cell->role;
		seen->sum = sum;
	}
	qsort(f->rows, f->nr, sizeof(f->rows[0]), row_cmp);
}

/* --- text: the plain frame and the terminal's view ------------------------------------- */

enum top_column {
	COL_ENDPOINT,
	COL_BACKEND,
	COL_ROLE,
	COL_RPS,
	COL_REQUESTS,
	COL_2XX,
	COL_4XX,
	COL_5XX,
	COL_P50,
	COL_P99,
	COL_ERRORS,
	COL_MATCH,
	COL_DROPS,
	COL_ACCEL,
	COL_MAX,
};

/* Titles and least widths; the names' columns widen to the longest name. */
static const struct {
	const char *title;
	int width;
} top_columns[COL_MAX] = {
	[COL_ENDPOINT] = {"ENDPOINT", 8},
	[COL_BACKEND] = {"BACKEND", 8},
	[COL_ROLE] = {"ROLE", 7},
	[COL_RPS] = {"REQ/S", 9},
	[COL_REQUESTS] = {"REQUESTS", 10},
	[COL_2XX] = {"2XX%", 6},
	[COL_4XX] = {"4XX%", 6},
	[COL_5XX] = {"5XX%", 6},
	[COL_P50] = {"P50", 7},
	[COL_P99] = {"P99", 7},
	[COL_ERRORS] = {"ERR/S", 7},
	[COL_MATCH] = {"MATCH%", 6},
	[COL_DROPS] = {"DROP/S", 7},
	[COL_ACCEL] = {"ACCEL/S", 8},
};

/* Longest text of a column: a name, or a number formatted below. */
#define CELL_TEXT SW_NAME_MAX

static void fmt_rate(double v, char *buf)
{
	snprintf(buf, CELL_TEXT, v < 99999.95 ? "%.1f" : "%.0f", v);
}

static void fmt_share(__u64 part, __u64 whole, char *buf)
{
	if (whole)
		snprintf(buf, CELL_TEXT, "%.1f", 100.0 * part / whole);
	else
		strcpy(buf, "-");
}

/* A bucket's upper bound: 512us, 1.0ms, 2.1s; "-" without a sample. */
static void fmt_latency(__u64 us, char *buf)
{
	if (!us)
		strcpy(buf, "-");
	else if (us < 1000)
		snprintf(buf, CELL_TEXT, "%lluus", (unsigned long long)us);
	else if (us < 1000000)
		snprintf(buf, CELL_TEXT, "%.1fms", us / 1e3);
	else
		snprintf(buf, CELL_TEXT, "%.1fs", us / 1e6);
}

/* Bytes per second in powers of 1024: 512, 12.3K, 4.0M. */
static void fmt_bytes_rate(double v, char *buf)
{
	static const char units[] = "KMGTP";
	int u = -1;

	while (v >= 1024 && u + 1 < (int)sizeof(units) - 1) {
		v /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, CELL_TEXT, "%.0f", v);
	else
		snprintf(buf, CELL_TEXT, "%.1f%c", v, units[u]);
}

static void row_text(const struct top_row *r, double dt, char text[COL_MAX][CELL_TEXT])
{
	bool shadow = !strcmp(r->role, "shadow");
	__u64 errors = 0;
	int i;

	for (i = 0; i < SW_ERR_MAX; i++)
		errors += r->delta.errors[i];
	strcpy(text[COL_ENDPOINT], r->endpoint);
	strcpy(text[COL_BACKEND], r->backend);
	strcpy(text[COL_ROLE], r->role);
	fmt_rate(r->requests_per_s, text[COL_RPS]);
	snprintf(text[COL_REQUESTS], CELL_TEXT, "%llu", (unsigned long long)r->sum.requests);
	fmt_share(r->delta.status[1], r->responses, text[COL_2XX]);
	fmt_share(r->delta.status[3], r->responses, text[COL_4XX]);
	fmt_share(r->delta.status[4], r->responses, text[COL_5XX]);
	fmt_latency(latency_quantile(&r->delta, 0.5), text[COL_P50]);
	fmt_latency(latency_quantile(&r->delta, 0.99), text[COL_P99]);
	fmt_rate(errors / dt, text[COL_ERRORS]);
	if (shadow) {
		fmt_share(r->delta.shadow_match, r->responses, text[COL_MATCH]);
		fmt_rate(r->delta.shadow_drops / dt, text[COL_DROPS]);
	} else {
		strcpy(text[COL_MATCH], "-");
		strcpy(text[COL_DROPS], "-");
	}
	fmt_bytes_rate(r->delta.accel_bytes / dt, text[COL_ACCEL]);
}

static void column_widths(const struct top_frame *f, int widths[COL_MAX])
{
	__u32 r;
	int i;

	for (i = 0; i < COL_MAX; i++)
		widths[i] = top_columns[i].width;
	for (r = 0; r < f->nr; r++) {
		int e = strlen(f->rows[r].endpoint), b = strlen(f->rows[r].backend);

		widths[COL_ENDPOINT] = e > widths[COL_ENDPOINT] ? e : widths[COL_ENDPOINT];
		widths[COL_BACKEND] = b > widths[COL_BACKEND] ? b : widths[COL_BACKEND];
	}
}

/*
 * One line of the table into out (of at least max + 1 bytes): the columns that fit in max
 * characters whole; the names' columns, which come first, cut if even they do not fit.
 */
static void table_line(char text[COL_MAX][CELL_TEXT], const int widths[COL_MAX], int max, char *out)
{
	int i, len = 0, n;

	out[0] = '\0';
	for (i = 0; i < COL_MAX; i++) {
		int need = (i ? 1 : 0) + widths[i];

		if (len + need > max && i > COL_BACKEND)
			break;
		if (i <= COL_BACKEND || i == COL_ROLE)
			n = snprintf(out + len, max - len + 1, "%s%-*s", i ? " " : "", widths[i],
				     text[i]);
		else
			n = snprintf(out + len, max - len + 1, " %*s", widths[i], text[i]);
		len += n;
		if (len >= max) {
			len = max;
			break;
		}
	}
	/* Left-aligned text at the end would leave trailing blanks. */
	while (len > 0 && out[len - 1] == ' ')
		len--;
	out[len] = '\0';
}

/* The frame's first line; on a terminal (keys: q is read) the time of day is enough and the
 * hint comes first, where a narrow screen does not cut it. */
static void header_line(const struct top *t, bool keys, char *out, size_t len)
{
	const struct top_frame *f = &t->frame;
	const struct top_totals *tot = &f->totals;
	char when[32], rps[CELL_TEXT], share[CELL_TEXT], errs[CELL_TEXT], accel[CELL_TEXT];
	struct tm tm;

	localtime_r(&f->wall.tv_sec, &tm);
	strftime(when, sizeof(when), keys ? "%H:%M:%S" : "%Y-%m-%d %H:%M:%S", &tm);
	fmt_rate(tot->requests_per_s, rps);
	fmt_share(tot->status_5xx, tot->responses, share);
	fmt_rate(tot->errors_per_s, errs);
	fmt_bytes_rate(tot->accel_bytes_per_s, accel);
	snprintf(out, len,
		 "sockway top%s  %s  generation %llu  interval %.3fs  %s%s%sreq/s %s  requests "
		 "%llu  "
		 "5xx%% %s  err/s %s  accel %s/s",
		 keys ? " (q quits)" : "", when, (unsigned long long)f->generation, f->interval_s,
		 t->endpoint ? "endpoint " : "", t->endpoint ? t->endpoint : "",
		 t->endpoint ? "  " : "", rps, (unsigned long long)tot->requests, share, errs,
		 accel);
}

/* The plain frame, on stdout: every row and column, whatever the width. */
static void frame_plain(const void *data)
{
	const struct top *t = data;
	const struct top_frame *f = &t->frame;
	char text[COL_MAX][CELL_TEXT], line[COL_MAX * (CELL_TEXT + 1) + 1];
	int widths[COL_MAX], i;
	__u32 r;

	header_line(t, false, line, sizeof(line));
	printf("%s\n", line);
	column_widths(f, widths);
	for (i = 0; i < COL_MAX; i++)
		strcpy(text[i], top_columns[i].title);
	table_line(text, widths, sizeof(line) - 1, line);
	printf("%s\n", line);
	for (r = 0; r < f->nr; r++) {
		row_text(&f->rows[r], f->interval_s, text);
		table_line(text, widths, sizeof(line) - 1, line);
		printf("%s\n", line);
	}
	printf("\n");
}

/* --- JSON -------------------------------------------------------------------------------- */

/* {"1xx": share, ...} of the responses of the interval, null when there was none. */
static json_t *status_share_json(const __u64 status[5], __u64 responses)
{
	json_t *out;
	char name[4] = "0xx";
	int k;

	if (!responses)
		return json_null();
	out = json_object();
	for (k = 0; k < 5; k++) {
		name[0] = (char)('1' + k);
		json_object_set_new(out, name, json_real((double)status[k] / responses));
	}
	return out;
}

static json_t *row_json(const struct top_row *r, double dt)
{
	bool shadow = !strcmp(r->role, "shadow");
	__u64 errors = 0;
	int i;

	for (i = 0; i < SW_ERR_MAX; i++)
		errors += r->delta.errors[i];
	return json_pack(
		"{s:s, s:s, s:s, s:i, s:f, s:f, s:f, s:o, s:o, s:o, s:o, s:o}", "endpoint",
		r->endpoint, "backend", r->backend, "role", r->role, "cell", r->cell,
		"requests_per_s", r->requests_per_s, "errors_per_s", errors / dt,
		"accel_bytes_per_s", r->delta.accel_bytes / dt, "status_share",
		status_share_json(r->delta.status, r->responses), "shadow_match_share",
		shadow && r->responses ? json_real((double)r->delta.shadow_match / r->responses)
				       : json_null(),
		"shadow_drops_per_s", shadow ? json_real(r->delta.shadow_drops / dt) : json_null(),
		"interval", counters_json(&r->delta), "counters", counters_json(&r->sum));
}

static json_t *frame_json(const void *data)
{
	const struct top *t = data;
	const struct top_frame *f = &t->frame;
	const struct top_totals *tot = &f->totals;
	json_t *rows = json_array();
	__u32 r;

	for (r = 0; r < f->nr; r++)
		json_array_append_new(rows, row_json(&f->rows[r], f->interval_s));
	return json_pack("{s:f, s:I, s:f, s:o, s:{s:I, s:f, s:I, s:o, s:f, s:f}, s:o}", "time",
			 f->wall.tv_sec + f->wall.tv_nsec / 1e9, "generation",
			 (json_int_t)f->generation, "interval_s", f->interval_s, "endpoint",
			 t->endpoint ? json_string(t->endpoint) : json_null(), "totals", "requests",
			 (json_int_t)tot->requests, "requests_per_s", tot->requests_per_s,
			 "responses", (json_int_t)tot->responses, "status_5xx_share",
			 tot->responses ? json_real((double)tot->status_5xx / tot->responses)
					: json_null(),
			 "errors_per_s", tot->errors_per_s, "accel_bytes_per_s",
			 tot->accel_bytes_per_s, "rows", rows);
}

static const struct printer frame_printer = {frame_plain, frame_json};

/* --- the terminal ------------------------------------------------------------------------ */

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -errno;
		buf += n;
		len -= n;
	}
	return 0;
}

/*
 * The view, drawn over the last one: each line at its place and cleared to its end, so the
 * screen never blanks between frames. Lines stop one column short of the edge, where the
 * terminal would hold the cursor pending a wrap and the next erase would take the last
 * character. Rows that do not fit make way for a last line that counts them.
 */
static int top_draw(struct top *t)
{
	const struct top_frame *f = &t->frame;
	char text[COL_MAX][CELL_TEXT], *line = NULL, *buf = NULL;
	int widths[COL_MAX], width = 80, height = 24, y = 0, i, err;
	struct winsize ws;
	size_t len = 0;
	__u32 r, shown, avail;
	FILE *out;

	if (!ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) && ws.ws_col && ws.ws_row) {
		width = ws.ws_col;
		height = ws.ws_row;
	}
	line = malloc(width + 1 > 512 ? width + 1 : 512);
	out = open_memstream(&buf, &len);
	if (!line || !out) {
		err = -ENOMEM;
		goto cleanup;
	}
	if (t->have_frame)
		header_line(t, t->keys, line, width);
	else
		snprintf(line, width, "sockway top%s  %s (%gs)", t->keys ? " (q quits)" : "",
			 TOP_WAITING, t->interval);
	fprintf(out, "\033[%d;1H%s\033[K", ++y, line);
	if (t->have_frame && y < height) {
		column_widths(f, widths);
		for (i = 0; i < COL_MAX; i++)
			strcpy(text[i], top_columns[i].title);
		table_line(text, widths, width - 1, line);
		fprintf(out, "\033[%d;1H%s\033[K", ++y, line);
		avail = height - y;
		shown = f->nr <= avail ? f->nr : avail ? avail - 1 : 0;
		for (r = 0; r < shown; r++) {
			row_text(&f->rows[r], f->interval_s, text);
			table_line(text, widths, width - 1, line);
			fprintf(out, "\033[%d;1H%s\033[K", ++y, line);
		}
		if (shown < f->nr && y < height) {
			snprintf(line, width, "... %u more rows", f->nr - shown);
			fprintf(out, "\033[%d;1H%s\033[K", ++y, line);
		}
	}
	/* Below the last line: whatever the previous, longer frame left. */
	if (y < height)
		fprintf(out, "\033[%d;1H\033[J", y + 1);
	if (fclose(out)) {
		out = NULL;
		err = -ENOMEM;
		goto cleanup;
	}
	out = NULL;
	err = write_all(STDOUT_FILENO, buf, len);
cleanup:
	if (out)
		fclose(out);
	free(buf);
	free(line);
	return err;
}

/* The alternate screen with the cursor hidden; keys one by one, without echo. */
static int term_enter(struct top *t)
{
	static const char enter[] = "\033[?1049h\033[?25l\033[2J";
	struct termios raw;

	if (isatty(STDIN_FILENO) && !tcgetattr(STDIN_FILENO, &t->saved)) {
		raw = t->saved;
		/* ISIG stays: Ctrl-C is SIGINT, which quits as q does. */
		raw.c_lflag &= ~(ICANON | ECHO);
		raw.c_cc[VMIN] = 1;
		raw.c_cc[VTIME] = 0;
		if (!tcsetattr(STDIN_FILENO, TCSANOW, &raw))
			t->keys = true;
	}
	t->screen = true;
	return write_all(STDOUT_FILENO, enter, sizeof(enter) - 1);
}

static void term_leave(struct top *t)
{
	static const char leave[] = "\033[?25h\033[?1049l";

	if (t->screen)
		write_all(STDOUT_FILENO, leave, sizeof(leave) - 1);
	if (t->keys)
		tcsetattr(STDIN_FILENO, TCSANOW, &t->saved);
	t->screen = false;
	t->keys = false;
}

/*
 * Waits until deadline (CLOCK_MONOTONIC) for the next frame, redrawing on a resize and
 * reading keys meanwhile. 1 when the operator quit, 0 at the deadline, or -errno.
 */
static int top_wait(struct top *t, double deadline, const sigset_t *unblocked, struct sw_err *e)
{
	struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
	struct timespec ts;
	char keys[64];
	ssize_t n, i;
	double left;
	int err;

	for (;;) {
		if (top_quit)
			return 1;
		if (top_resized) {
			top_resized = 0;
			if (t->output == TOP_TERMINAL) {
				err = top_draw(t);
				if (err)
					return sw_errorf(e, err, "cannot draw on the terminal: %s",
							 strerror(-err));
			}
		}
		left = deadline - monotonic_s();
		if (left <= 0)
			return 0;
		ts.tv_sec = (time_t)left;
		ts.tv_nsec = (long)((left - ts.tv_sec) * 1e9);
		n = ppoll(&pfd, t->keys ? 1 : 0, &ts, unblocked);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return sw_errorf(e, -errno, "cannot wait for the next frame: %s",
					 strerror(errno));
		if (!n || !(pfd.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		n = read(STDIN_FILENO, keys, sizeof(keys));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		/* The terminal went away: nobody is left to press q. */
		if (n <= 0)
			return 1;
		for (i = 0; i < n; i++)
			if (keys[i] == 'q' || keys[i] == 'Q')
				return 1;
	}
}

static int top_show(struct top *t, struct sw_err *e)
{
	int err;

	if (t->output == TOP_TERMINAL) {
		err = top_draw(t);
		if (err)
			return sw_errorf(e, err, "cannot draw on the terminal: %s", strerror(-err));
		return 0;
	}
	if (agent_print(&frame_printer, t) || fflush(stdout))
		return sw_errorf(e, -EIO, "cannot write the frame to stdout");
	return 0;
}

/*
 * The frames: a baseline read, then one frame per interval. Deadlines follow a fixed
 * schedule, so a slow frame does not push the next ones back; a schedule fallen a whole
 * interval behind starts again from now instead of catching up in a burst.
 */
static int top_run(struct top *t, const sigset_t *unblocked, struct sw_err *e)
{
	double next, now;
	long frames;
	int err;

	err = top_names_refresh(t, e);
	if (err)
		return err;
	t->seen_at = monotonic_s();
	top_read(t, false, 0);
	next = t->seen_at + t->interval;
	if (t->output == TOP_TERMINAL) {
		err = term_enter(t);
		if (!err)
			err = top_draw(t);
		if (err)
			return sw_errorf(e, err, "cannot draw on the terminal: %s", strerror(-err));
	}
	for (frames = 0; !t->count || frames < t->count; frames++) {
		err = top_wait(t, next, unblocked, e);
		if (err)
			return err < 0 ? err : 0;
		err = top_names_refresh(t, e);
		if (err)
			return err;
		now = monotonic_s();
		top_read(t, true, now - t->seen_at);
		t->seen_at = now;
		t->have_frame = true;
		next += t->interval;
		if (next < now)
			next = now + t->interval;
		err = top_show(t, e);
		if (err)
			return err;
	}
	return 0;
}

/* The signals that end top, and SIGWINCH. */
static const int top_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGWINCH};
#define TOP_NR_SIGNALS (int)(sizeof(top_signals) / sizeof(top_signals[0]))

int do_top(int argc, char **argv)
{
	struct sigaction sa = {.sa_handler = top_on_signal}, old[TOP_NR_SIGNALS];
	double interval = TOP_INTERVAL_DEFAULT;
	sigset_t ours, saved, unblocked;
	const char *endpoint = NULL;
	struct sw_err e = {};
	struct top *t = NULL;
	long count = 0;
	int i, err;
	__u32 id;

	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "help") || !strcmp(argv[i], "-h") ||
		    !strcmp(argv[i], "--help"))
			return top_help();
		if (!strcmp(argv[i], "-n") || !strcmp(argv[i], "-d")) {
			if (i + 1 >= argc)
				return usage_error("%s needs a value; try \"sockway top help\"",
						   argv[i]);
			err = argv[i][1] == 'n' ? parse_count(argv[i + 1], &count)
						: parse_interval(argv[i + 1], &interval);
			if (err)
				return err;
			i++;
		} else if (argv[i][0] == '-' || endpoint) {
			return usage_error("usage: sockway top [-n COUNT] [-d SECONDS] [ENDPOINT], "
					   "not \"%s\"",
					   argv[i]);
		} else {
			endpoint = argv[i];
		}
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return agent_error(-ENOMEM, "out of memory");
	t->count = count;
	t->interval = interval;
	t->endpoint = endpoint;
	t->output = agent_cfg.json		      ? TOP_JSON
		    : count || !isatty(STDOUT_FILENO) ? TOP_PLAIN
						      : TOP_TERMINAL;
	err = agent_open(&t->m, false);
	if (err)
		goto out_free;
	if (endpoint && sw_endpoint_id(&t->m, endpoint, &id)) {
		err = agent_error(-ENOENT,
				  "endpoint \"%s\" does not exist; see \"sockway endpoint list\"",
				  endpoint);
		goto out_close;
	}

	/* A signal ignored at the start (SIGINT of a background job, SIGHUP under nohup)
	 * stays ignored; the others are taken, and blocked but inside ppoll(). */
	sigemptyset(&ours);
	for (i = 0; i < TOP_NR_SIGNALS; i++) {
		sigaction(top_signals[i], NULL, &old[i]);
		if (old[i].sa_handler != SIG_IGN || top_signals[i] == SIGWINCH)
			sigaddset(&ours, top_signals[i]);
	}
	sigprocmask(SIG_BLOCK, &ours, &saved);
	unblocked = saved;
	for (i = 0; i < TOP_NR_SIGNALS; i++) {
		if (!sigismember(&ours, top_signals[i]))
			continue;
		sigaction(top_signals[i], &sa, NULL);
		sigdelset(&unblocked, top_signals[i]);
	}

	err = top_run(t, &unblocked, &e);
	/* The terminal first, so that an error shows on the screen it belongs to. */
	term_leave(t);
	if (err)
		agent_fail(&e, err);

	/* Signals that came meanwhile land in the handlers before the old ones come back. */
	sigprocmask(SIG_SETMASK, &saved, NULL);
	for (i = 0; i < TOP_NR_SIGNALS; i++)
		if (sigismember(&ours, top_signals[i]))
			sigaction(top_signals[i], &old[i], NULL);
out_close:
	sw_maps_close(&t->m);
out_free:
	free(t);
	return err;
}
