// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * sockway apply -f FILE --watch: applies FILE, then again whenever its bytes change, until
 * SIGTERM or SIGINT.
 *
 * It watches FILE's directory, not FILE: an editor saves by writing a new file and renaming
 * it over the old one, and a Kubernetes ConfigMap volume swaps its "..data" symlink to a new
 * directory; neither touches the inode a watch on FILE would hold. Any event in the
 * directory makes the watcher read FILE again and compare its bytes with the last ones it
 * acted on: equal bytes do nothing (a refused document is refused, and counted, once), new
 * ones are applied. When FILE resolves elsewhere through symlinks, the directory it resolves
 * to is watched too, resolved again after every event. Bytes are acted on only once they
 * hold still (read the same twice, no writer with FILE open), so that half a document
 * written in place is never refused and counted.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "main.h"

/* Events come in bursts (a rename is several; kubelet's swap is five): the file is read
 * this long after the first event of a burst, so that most bursts cost one read. */
#define WATCH_SETTLE_MS 50
/* A file written in place sends no event until its writer closes it, and a look that another
 * event scheduled can land in the middle of the write: only bytes that read the same twice,
 * WATCH_SETTLE_MS apart, are acted on (after this many reads that differed, whatever is
 * there, so that a file rewritten without pause is still applied). */
#define WATCH_STABLE_TRIES 40
/* A failed apply (no maps loaded, a map write failing) is tried again after 1 s, doubling
 * up to this; a refused one waits for the file to change. */
#define WATCH_RETRY_MAX_MS 30000

/* How often the watched directories are checked for having been replaced under their
 * names (a renamed directory, a symlinked one pointed elsewhere: no event tells). */
#define WATCH_REVALIDATE_MS 2000

/* A writer that has FILE open (IN_MODIFY seen, no IN_CLOSE_WRITE yet) is waited for this
 * long at most before FILE is read all the same. */
#define WATCH_WRITE_MAX_MS 10000

#define WATCH_EVENTS                                                                               \
	(IN_CLOSE_WRITE | IN_MODIFY | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |        \
	 IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

/* What the last look found at FILE's path; a change of it is logged once. */
enum watch_file {
	WATCH_READABLE = 0,
	WATCH_GONE = 1,
	WATCH_NOT_FILE = 2,
	WATCH_UNREADABLE = 3,
	WATCH_OPEN_TO_ALL = 4,
};

struct watch {
	const char *file;
	int inotify_fd;
	int signal_fd;
	int dir_wd;    /* FILE's own directory, -1 while it cannot be watched */
	dev_t dir_dev; /* ... the directory it watches (its path may be replaced) */
	ino_t dir_ino;
	int target_wd;	       /* the directory FILE resolves to, when another one, else -1 */
	char target[PATH_MAX]; /* that directory's path */
	char *seen;	       /* the bytes read at the last look, not yet acted on */
	size_t seen_len;
	unsigned seen_tries; /* looks in a row whose bytes differed from the one before */
	bool seen_force;     /* the look that read them was forced (SIGHUP, a retry) */
	char *last;	     /* the bytes last acted on, NULL before the first read */
	size_t last_len;
	enum watch_file unusable;      /* why FILE could not be read at the last look */
	enum apply_result last_result; /* what became of last */
	long long check_at;	       /* when to read FILE again (ms, monotonic), 0: no need */
	long long retry_ms;	       /* the wait after the next failure */
	long long revalidate_at;       /* when to look at the directories' identities again */
	long long writing_since;       /* FILE is being written in place since (ms), or 0 */
	unsigned long long applied, refused, failed;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* The directory part of path, in buf. */
static const char *dir_of(const char *path, char *buf, size_t len)
{
	snprintf(buf, len, "%s", path);
	return dirname(buf);
}

/* (Re)arms the watch on FILE's own directory; -errno when it cannot be watched now. */
static int watch_dir(struct watch *w)
{
	char buf[PATH_MAX];
	const char *dir = dir_of(w->file, buf, sizeof(buf));
	struct stat st = {};

	if (w->dir_wd >= 0)
		return 0;
	w->dir_wd = inotify_add_watch(w->inotify_fd, dir, WATCH_EVENTS);
	if (w->dir_wd < 0)
		return -errno;
	/* Unknown (0) if stat fails: the directory is then not checked for replacement. */
	stat(dir, &st);
	w->dir_dev = st.st_dev;
	w->dir_ino = st.st_ino;
	return 0;
}

/* The name of FILE's directory now leads to another directory than the watched one (it was
 * renamed away, or is a symlink pointed elsewhere): watch that one. Returns true if so. */
static bool watch_dir_replaced(struct watch *w)
{
	char buf[PATH_MAX];
	struct stat st;

	if (w->dir_wd < 0 || !w->dir_ino || stat(dir_of(w->file, buf, sizeof(buf)), &st) ||
	    (st.st_dev == w->dir_dev && st.st_ino == w->dir_ino))
		return false;
	inotify_rm_watch(w->inotify_fd, w->dir_wd);
	w->dir_wd = -1;
	return true;
}

/* Follows FILE's symlinks again and watches the directory they end in, when it is not
 * FILE's own. Best effort: a dangling link leaves only the own directory watched. */
static bool watch_target(struct watch *w)
{
	char real[PATH_MAX], buf[PATH_MAX];
	const char *dir;
	int wd;

	if (!realpath(w->file, real))
		return false;
	dir = dir_of(real, buf, sizeof(buf));
	if (w->target_wd >= 0 && !strcmp(dir, w->target))
		return false;
	wd = inotify_add_watch(w->inotify_fd, dir, WATCH_EVENTS);
	/* The same directory as FILE's (inotify gives the same wd): nothing more to watch. */
	if (wd == w->dir_wd)
		wd = -1;
	if (w->target_wd >= 0 && w->target_wd != wd)
		inotify_rm_watch(w->inotify_fd, w->target_wd);
	w->target_wd = wd;
	snprintf(w->target, sizeof(w->target), "%s", wd >= 0 ? dir : "");
	return true;
}

/* Reads FILE and applies it if its bytes are new, or if force (SIGHUP, a retry). */
static void watch_check(struct watch *w, bool force)
{
	enum apply_result res;
	struct stat st = {};
	size_t len = 0;
	char *text = NULL;

	w->check_at = 0;
	/* Half a document written in place would be refused (and counted): wait for the
	 * writer to close it. */
	if (w->writing_since && now_ms() - w->writing_since < WATCH_WRITE_MAX_MS) {
		w->check_at = now_ms() + WATCH_SETTLE_MS;
		return;
	}
	w->writing_since = 0;
	watch_target(w);
	if (stat(w->file, &st) && errno == ENOENT) {
		/* Gone between a rename's two steps, or deleted: said once, policy kept. */
		if (w->unusable != WATCH_GONE)
			pr_warn("%s is gone; the running policy stays until it is back", w->file);
		w->unusable = WATCH_GONE;
		return;
	}
	if (!st.st_mode) {
		if (w->unusable != WATCH_UNREADABLE)
			pr_warn("cannot look at %s: %s; the running policy stays", w->file,
				strerror(errno));
		w->unusable = WATCH_UNREADABLE;
		return;
	}
	/* A FIFO would block the watch in its read, a device never end: files only. */
	if (!S_ISREG(st.st_mode)) {
		if (w->unusable != WATCH_NOT_FILE)
			pr_warn("%s is not a regular file; the running policy stays", w->file);
		w->unusable = WATCH_NOT_FILE;
		return;
	}
	/* Whoever can write FILE can set the policy: not anyone. */
	if (st.st_mode & S_IWOTH) {
		if (w->unusable != WATCH_OPEN_TO_ALL)
			pr_warn("%s is writable by anyone; not applied (chmod o-w it)", w->file);
		w->unusable = WATCH_OPEN_TO_ALL;
		return;
	}
	if (policy_file_load(w->file, true, &text, &len)) {
		w->unusable = WATCH_UNREADABLE;
		return;
	}
	w->unusable = WATCH_READABLE;
	force |= w->seen_force;
	if (!force && w->last && len == w->last_len && !memcmp(text, w->last, len) &&
	    w->last_result != APPLY_FAILED) {
		free(text);
		free(w->seen);
		w->seen = NULL;
		w->seen_tries = 0;
		return;
	}
	if (!(w->seen && len == w->seen_len && !memcmp(text, w->seen, len)) &&
	    w->seen_tries < WATCH_STABLE_TRIES) {
		free(w->seen);
		w->seen = text;
		w->seen_len = len;
		w->seen_tries++;
		w->seen_force = force;
		w->check_at = now_ms() + WATCH_SETTLE_MS;
		return;
	}
	free(w->seen);
	w->seen = NULL;
	w->seen_tries = 0;
	w->seen_force = false;
	apply_text(w->file, text, len, false, &res);
	free(w->last);
	w->last = text;
	w->last_len = len;
	w->last_result = res;
	switch (res) {
	case APPLY_DONE:
		w->applied++;
		w->retry_ms = 1000;
		break;
	case APPLY_REFUSED:
		w->refused++;
		w->retry_ms = 1000;
		break;
	case APPLY_FAILED:
		w->failed++;
		w->check_at = now_ms() + w->retry_ms;
		pr_warn("%s: trying again in %lld s", w->file, w->retry_ms / 1000);
		w->retry_ms =
			w->retry_ms * 2 > WATCH_RETRY_MAX_MS ? WATCH_RETRY_MAX_MS : w->retry_ms * 2;
		break;
	}
}

/* The event is about FILE itself (by its name in its directory, or in the one it resolves
 * to), not another file of the directory. */
static bool watch_names_file(const struct watch *w, const struct inotify_event *ev)
{
	char buf[PATH_MAX], real[PATH_MAX];
	const char *name;

	snprintf(buf, sizeof(buf), "%s", w->file);
	name = basename(buf);
	if (ev->wd == w->dir_wd && !strcmp(ev->name, name))
		return true;
	if (ev->wd != w->target_wd || !realpath(w->file, real))
		return false;
	return !strcmp(ev->name, basename(real));
}

/* Takes every queued inotify event; any of them means "look at FILE again soon". */
static void watch_drain(struct watch *w)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	ssize_t n;
	char *p;

	while ((n = read(w->inotify_fd, buf, sizeof(buf))) > 0) {
		for (p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			if (ev->len && watch_names_file(w, ev)) {
				if ((ev->mask & IN_MODIFY) && !w->writing_since)
					w->writing_since = now_ms();
				else if (!(ev->mask & IN_MODIFY))
					w->writing_since = 0;
			}
			/* The directory itself went away (IN_IGNORED follows its deletion or
			 * unmount): watch it again once it is back, checked at the retry. */
			if ((ev->mask & (IN_IGNORED | IN_MOVE_SELF)) && ev->wd >= 0 &&
			    (ev->wd == w->dir_wd || ev->wd == w->target_wd)) {
				/* Renamed away: its watch would follow it, not the name. */
				if (ev->mask & IN_MOVE_SELF)
					inotify_rm_watch(w->inotify_fd, ev->wd);
				if (ev->wd == w->dir_wd)
					w->dir_wd = -1;
				else
					w->target_wd = -1;
			}
		}
	}
	/* Not later than WATCH_SETTLE_MS from the first event of a burst, so that a directory
	 * written without pause cannot put the look off for ever; sooner than a pending retry,
	 * since the file may have been fixed. */
	if (!w->check_at || w->check_at > now_ms() + WATCH_SETTLE_MS)
		w->check_at = now_ms() + WATCH_SETTLE_MS;
}

/* Returns true when the watch is to end. */
static bool watch_signal(struct watch *w)
{
	struct signalfd_siginfo si;

	while (read(w->signal_fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo != SIGHUP)
			return true;
		pr_warn("SIGHUP: applying %s again", w->file);
		watch_check(w, true);
	}
	return false;
}

static void watch_summary(const struct watch *w)
{
	if (agent_cfg.json) {
		json_t *j = json_pack("{s:{s:s, s:I, s:I, s:I}}", "watch", "file", w->file,
				      "applied", (json_int_t)w->applied, "refused",
				      (json_int_t)w->refused, "failed", (json_int_t)w->failed);

		if (j) {
			json_dumpf(j, stdout, JSON_COMPACT);
			fputc('\n', stdout);
			json_decref(j);
		}
		return;
	}
	pr_warn("watch of %s ended: %llu applied, %llu refused, %llu failed", w->file, w->applied,
		w->refused, w->failed);
}

int apply_watch(const char *file)
{
	struct watch w = {
		.file = file,
		.inotify_fd = -1,
		.signal_fd = -1,
		.dir_wd = -1,
		.target_wd = -1,
		.retry_ms = 1000,
	};
	char buf[PATH_MAX];
	sigset_t mask, old;
	int err = 0;

	/* Each apply is a log record: out at once even into a pipe or a journal. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, &old);
	w.signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	w.inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w.signal_fd < 0 || w.inotify_fd < 0) {
		err = agent_error(-errno, "cannot watch %s: %s", file, strerror(errno));
		goto cleanup;
	}
	/* A directory that is not there is a mistake in the command, not a change to wait
	 * for; everything after this start is waited out. */
	err = watch_dir(&w);
	if (err) {
		agent_error(err, "cannot watch the directory %s: %s",
			    dir_of(file, buf, sizeof(buf)), strerror(-err));
		goto cleanup;
	}
	watch_check(&w, true);
	for (;;) {
		struct pollfd pfd[2] = {
			{.fd = w.signal_fd, .events = POLLIN},
			{.fd = w.inotify_fd, .events = POLLIN},
		};
		long long timeout = -1;

		if (w.dir_wd < 0 && !w.check_at)
			w.check_at = now_ms() + 1000;
		if (now_ms() >= w.revalidate_at) {
			w.revalidate_at = now_ms() + WATCH_REVALIDATE_MS;
			if ((watch_dir_replaced(&w) || watch_target(&w)) && !w.check_at)
				w.check_at = now_ms();
		}
		timeout = w.revalidate_at - now_ms();
		if (w.check_at && w.check_at < w.revalidate_at)
			timeout = w.check_at > now_ms() ? w.check_at - now_ms() : 0;
		if (poll(pfd, 2, (int)timeout) < 0 && errno != EINTR) {
			err = agent_error(-errno, "poll: %s", strerror(errno));
			break;
		}
		if ((pfd[0].revents & POLLIN) && watch_signal(&w))
			break;
		if (pfd[1].revents & POLLIN)
			watch_drain(&w);
		if (w.check_at && now_ms() >= w.check_at) {
			/* Back after its directory was removed: watch it again, then look. */
			if (w.dir_wd < 0 && watch_dir(&w)) {
				w.check_at = now_ms() + 1000;
				continue;
			}
			watch_check(&w, w.last_result == APPLY_FAILED);
		}
	}
	watch_summary(&w);
cleanup:
	free(w.seen);
	free(w.last);
	if (w.inotify_fd >= 0)
		close(w.inotify_fd);
	if (w.signal_fd >= 0)
		close(w.signal_fd);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return err;
}
