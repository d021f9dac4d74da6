// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * sockwayd: routes every HTTP/1.1 request by the policy in the pinned maps, mirrors shadow
 * samples and counts everything into the counter cells. It needs `sockway load` first; it
 * holds no policy of its own, so it can restart at any time without losing any.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "accel.h"
#include "conns.h"
#include "grace.h"
#include "guard.h"
#include "log.h"
#include "policy.h"
#include "options.h"
#include "sockwayd.h"

/* Set by the main thread on SIGTERM/SIGINT; workers start draining at their next tick. */
static volatile bool swd_stopping;

/*
 * Moves the process into <cgroup2 mount>/sockway and accelerates that cgroup, so that its
 * connections to local peers in accelerated cgroups skip the TCP stack. Any failure leaves
 * sockwayd on plain TCP, which always works.
 */
/* The cgroup v2 directory sockwayd started in, to go back to on exit. */
static char accel_home[2 * PATH_MAX];
static char accel_dir[2 * PATH_MAX];

/* Writes our pid into dir/cgroup.procs: the whole process (every thread) moves. */
static int cgroup_enter(const char *dir)
{
	char path[2 * PATH_MAX + 16], pid[32];
	int fd, n, err = 0;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = snprintf(pid, sizeof(pid), "%d", getpid());
	if (write(fd, pid, n) != n)
		err = -errno;
	close(fd);
	return err;
}

static struct sw_maps *accel_maps;

/* Nobody is in the cgroup (cgroup.events says "populated 0"). */
static bool cgroup_empty(const char *dir)
{
	char path[2 * PATH_MAX + 16], line[64];
	bool empty = false;
	FILE *f;

	snprintf(path, sizeof(path), "%s/cgroup.events", dir);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strcmp(line, "populated 0\n"))
			empty = true;
	if (f)
		fclose(f);
	return empty;
}

/*
 * Leaves the sockway cgroup for the one we came from. The last one out (another sockwayd
 * on the same pins may still be in it) takes it off the accelerated list and removes it.
 * Runs at every exit after accel_join (atexit), once.
 */
static void accel_leave(void)
{
	struct sw_err e = {};

	if (!accel_dir[0] || !accel_home[0] || cgroup_enter(accel_home))
		return;
	/* Under the writers' lock, which a joining sockwayd holds from mkdir to accel add:
	 * nobody joins between the check and the removal. */
	if (accel_maps && !sw_maps_lock(accel_maps, &e)) {
		if (cgroup_empty(accel_dir)) {
			__atomic_store_n(&accel_maps->ctl->swd_cgroup, 0, __ATOMIC_RELAXED);
			sw_accel_del(accel_maps, accel_dir, &e);
			rmdir(accel_dir);
		}
		sw_maps_unlock(accel_maps);
	}
	accel_dir[0] = '\0';
}

static void accel_join(struct sw_maps *maps)
{
	char root[PATH_MAX], path[PATH_MAX + 16], line[PATH_MAX];
	struct sw_err e = {};
	__u64 id;
	FILE *f;
	int err;

	if (sw_cgroup2_mount(root, sizeof(root), &e)) {
		pr_info("kernel fast path unused: %s", e.msg);
		return;
	}
	/* "0::/some/path" is our place in the v2 hierarchy. */
	f = fopen("/proc/self/cgroup", "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "0::", 3)) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(accel_home, sizeof(accel_home), "%s%s", root, line + 3);
		}
	if (f)
		fclose(f);
	/* Named after the pin directory ("sockway" by default): two instances with their
	 * own pins must not share a cgroup, whose sockets can live in one sock_hash only. */
	snprintf(path, sizeof(path), "%s/%s", root,
		 strrchr(sw_pin_root(), '/') ? strrchr(sw_pin_root(), '/') + 1 : sw_pin_root());
	/* From mkdir to accel add under the writers' lock: a sockwayd leaving at the same
	 * time (accel_leave) cannot remove the cgroup in between. */
	err = sw_maps_lock(maps, &e);
	if (err) {
		pr_warn("kernel fast path unused: %s", e.msg);
		return;
	}
	if (mkdir(path, 0755) && errno != EEXIST) {
		pr_warn("kernel fast path unused: cannot create %s: %s", path, strerror(errno));
		sw_maps_unlock(maps);
		return;
	}
	err = cgroup_enter(path);
	if (err) {
		pr_warn("kernel fast path unused: cannot join %s: %s", path, strerror(-err));
		sw_maps_unlock(maps);
		return;
	}
	snprintf(accel_dir, sizeof(accel_dir), "%s", path);
	accel_maps = maps;
	atexit(accel_leave);
	err = sw_accel_add(maps, path, &e);
	if (!err && !sw_cgroup_id(path, &id, &e))
		__atomic_store_n(&maps->ctl->swd_cgroup, id, __ATOMIC_RELAXED);
	sw_maps_unlock(maps);
	if (err)
		pr_warn("kernel fast path unused: %s", e.msg);
	else
		pr_info("joined %s (kernel fast path %s)", path,
			sw_accel_is_on(maps) ? "on" : "off");
}

static int listener_open(const struct sockaddr_storage *ss, socklen_t len)
{
	int fd, one = 1;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* One socket per worker on the same port: the kernel spreads connections. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    bind(fd, (const struct sockaddr *)ss, len) || listen(fd, 1024)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static void worker_tick(struct reactor *r, void *arg)
{
	struct worker *w = arg;
	__u64 now = reactor_now_ms(r);
	unsigned i;

	/* An idle worker follows the policy too, so its first request finds it current. */
	worker_policy_refresh(w);
	proxy_tick(w);
	shadow_tick(w);
	client_accept_resume(w);
	if (swd_stopping && !w->draining) {
		/* Stop taking connections; idle ones close; in-flight requests may finish. */
		w->draining = true;
		w->drain_deadline_ms = now + swd_cfg.drain_ms;
		for (i = 0; i < w->nr_listeners; i++) {
			reactor_del(r, &w->listeners[i]);
			close(w->listeners[i].fd);
		}
		w->nr_listeners = 0;
	}
	if (w->draining) {
		bool waiting = proxy_close_idle(w);

		if ((!w->nr_exchanges && !w->nr_shadows && !waiting) || now >= w->drain_deadline_ms)
			w->stop = true;
	}
}

/*
 * Each client takes a descriptor, its upstream another, a pipe two: the usual soft limit of
 * 1024 runs out at a few hundred slow clients, and then a connect fails as if the backend
 * refused it. The soft limit goes up to the hard one (systemd gives services 524288).
 */
static void nofile_raise(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		pr_warn("cannot raise the open file limit: %s", strerror(errno));
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	reactor_run(w->r, 100, worker_tick, NULL, w, &w->stop);
	client_stop_all(w);
	pipe_spares_free(w);
	exchange_spares_free(w);
	return NULL;
}

static int worker_init(struct worker *w, unsigned id, struct sw_maps *maps)
{
	unsigned i;
	int fd, err;

	w->id = id;
	w->maps = maps;
	/* Without grace periods, no entry of a sockwayd gone is freed (conns.h). */
	w->reclaims.ticket = grace_ok() ? grace_ticket : NULL;
	w->reclaims.passed = grace_passed;
	w->shard = 1 + id % (SW_COUNTER_SHARDS - 1);
	if (getrandom(&w->rng, sizeof(w->rng), 0) != sizeof(w->rng) || !w->rng)
		w->rng = 0x9e3779b97f4a7c15ULL ^ id;
	w->r = reactor_new();
	if (w->r)
		reactor_batch(w->r, !swd_cfg.no_uring, &w->stats.batch);
	w->snap = snapshot_alloc();
	w->spare = snapshot_alloc();
	if (!w->r || !w->snap || !w->spare)
		return -ENOMEM;
	err = snapshot_load(maps, NULL, w->snap);
	for (i = 0; err == -EAGAIN && i < 100; i++) {
		usleep(10000);
		err = snapshot_load(maps, NULL, w->snap);
	}
	if (err) {
		pr_warn("cannot read the policy: %s", strerror(-err));
		return err;
	}
	for (i = 0; i < swd_cfg.nr_listen; i++) {
		fd = listener_open(&swd_cfg.listen[i], swd_cfg.listen_len[i]);
		if (fd < 0)
			return fd;
		w->listeners[i].fd = fd;
		w->listeners[i].fn = client_accept;
		w->listeners[i].owner = w;
		err = reactor_add(w->r, &w->listeners[i], EPOLLIN);
		if (err)
			return err;
		w->nr_listeners++;
	}
	/* Connections are filed in the conns map (accel bytes per cell, body splice) only
	 * on the fast path. */
	if (w->nr_listeners)
		w->netns_id = sw_netns_cookie(w->listeners[0].fd);
	if (!swd_cfg.no_accel)
		w->netns = w->netns_id;
	kroute_worker_init(w);
	return 0;
}

/*
 * The XDP guard limits new connections to the ports sockwayd listens on: each sockwayd adds
 * its own. A port stays guarded after sockwayd exits (another may listen on it during a
 * rolling restart), until `sockway unload`.
 */
static void guard_ports_add(struct sw_maps *m)
{
	struct sw_err e = {};
	unsigned i;
	__u16 port;

	for (i = 0; i < swd_cfg.nr_listen; i++) {
		const struct sockaddr_storage *ss = &swd_cfg.listen[i];

		port = ss->ss_family == AF_INET6
			       ? ntohs(((const struct sockaddr_in6 *)ss)->sin6_port)
			       : ntohs(((const struct sockaddr_in *)ss)->sin_port);
		if (sw_guard_port_add(m, port, &e))
			pr_warn("%s (the guard will not limit connections to it)", e.msg);
	}
}

int main(int argc, char **argv)
{
	static struct worker workers[SWD_MAX_WORKERS];
	/* static: accel_leave reads it at exit, after main has returned. */
	static struct sw_maps maps;
	struct admin *admin;
	struct sw_err e = {};
	sigset_t sigs;
	unsigned i;
	int err, sig;

	err = swd_options_parse(argc, argv);
	if (err)
		return err == 1 ? 0 : 2;
	log_init("sockwayd", swd_cfg.verbose >= 2 ? SW_LOG_DEBUG
			     : swd_cfg.verbose	  ? SW_LOG_INFO
						  : SW_LOG_WARN);
	if (geteuid() != 0) {
		pr_warn("must run as root: the maps under %s are root-only", sw_pin_root());
		return 1;
	}
	nofile_raise();
	err = sw_maps_open(&maps, &e);
	if (err) {
		pr_warn("%s", e.msg);
		return 1;
	}

	/* Workers (and grace.c's thread) inherit this mask: only the main thread takes
	 * SIGTERM and SIGINT. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (!swd_cfg.no_accel) {
		unsigned n;

		/* conns entries the kernel may be at work on are freed after grace periods.
		 * Those of sockwayds gone are marked and their keys retired first (no new run
		 * finds them), and the first grace period begins after: once it is over
		 * (grace_start returns) no run that found one before is still at work on it. */
		n = sw_conns_mark_dead(&maps);
		grace_start();
		if (grace_ok()) {
			sw_conns_free_marked(&maps);
			if (n)
				pr_info("freed %u conns entries of sockwayd processes gone", n);
		} else if (n) {
			pr_warn("no grace periods: %u conns entries of sockwayd processes gone "
				"stay taken (a later sockwayd frees them)",
				n);
		}
		n = sw_lend_sweep(&maps);
		if (n)
			pr_info("emptied %u lend slots of sockwayd processes gone", n);
		accel_join(&maps);
	}

	for (i = 0; i < swd_cfg.workers; i++) {
		err = worker_init(&workers[i], i, &maps);
		if (err) {
			pr_warn("cannot start worker %u: %s (is the --listen address free?)", i,
				strerror(-err));
			return 1;
		}
	}
	guard_ports_add(&maps);
	admin = admin_start(workers, swd_cfg.workers, &maps);
	if (!admin) {
		pr_warn("cannot listen on the admin address: %s", strerror(errno));
		return 1;
	}
	for (i = 0; i < swd_cfg.workers; i++)
		pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]);
	fprintf(stderr, "sockwayd: %u workers, %u listeners, policy generation %llu; ready\n",
		swd_cfg.workers, swd_cfg.nr_listen, (unsigned long long)sw_generation(&maps));

	while (sigwait(&sigs, &sig) == 0 && sig != SIGTERM && sig != SIGINT)
		;
	pr_info("signal %d: draining", sig);
	swd_stopping = true;
	for (i = 0; i < swd_cfg.workers; i++)
		pthread_join(workers[i].thread, NULL);
	admin_stop(admin);
	/* The workers are gone, and took their lent connections out of the lend sets as they
	 * drained (kroute_drain): no connection of ours is left for the kernel to find, once
	 * the runs that found one before have ended (grace_stop waits for them). The
	 * entries we marked for reclaim go with ours (their keys are retired already). */
	if (grace_stop())
		sw_conns_release_mine(&maps);
	else if (!swd_cfg.no_accel)
		pr_warn("no last grace period: this sockwayd's conns entries stay taken (a later "
			"sockwayd frees them)");
	sw_lend_sweep(&maps);
	sw_lend_release_mine(&maps);
	accel_leave();
	sw_maps_close(&maps);
	fprintf(stderr, "sockwayd: stopped\n");
	return 0;
}
