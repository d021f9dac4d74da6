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
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "accel.h"
#include "conns.h"
#include "log.h"
#include "policy.h"
#include "sockwayd.h"

/* Set by the main thread on SIGTERM/SIGINT; workers start draining at their next tick. */
static volatile bool swd_stopping;

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: sockwayd [--listen ADDR:PORT ...] [--admin ADDR:PORT] [--workers N] [-v]\n"
		"                [limits] [timeouts] [shadow options]\n"
		"\n"
		"  --listen ADDR:PORT        where clients connect (default 127.0.0.1:8000; repeat)\n"
		"  --admin ADDR:PORT         /healthz, /metrics, /policy (default 127.0.0.1:8001)\n"
		"  --workers N               worker threads (default: one per CPU, at most %d)\n"
		"  -v, --verbose             more logging (twice: debug)\n"
		"Limits:\n"
		"  --max-request-line BYTES  longer request lines get 414 (default 8192)\n"
		"  --max-header-bytes BYTES  larger heads get 431 (default 32768)\n"
		"  --max-headers N           more header fields get 431 (default 100)\n"
		"  --max-body BYTES          larger bodies get 413 (default 1073741824)\n"
		"Timeouts (milliseconds):\n"
		"  --header-timeout MS       a request head must arrive in this (default 10000)\n"
		"  --keepalive-timeout MS    idle client connections close after this (default 60000)\n"
		"  --body-timeout MS         a request body must progress within this (default 30000)\n"
		"  --connect-timeout MS      upstream connect (default 2000)\n"
		"  --response-timeout MS     upstream response after the request (default 30000)\n"
		"  --drain MS                in-flight requests get this long on SIGTERM (default 10000)\n"
		"Upstreams:\n"
		"  --pool-size N             idle connections kept per replica and worker (default 64)\n"
		"  --replica-down MS         a replica that refused is skipped this long (default 1000)\n"
		"  --retry-on-timeout        also retry an idempotent request (GET, HEAD, OPTIONS,\n"
		"                            TRACE, PUT, DELETE) whose response timed out; by\n"
		"                            default only requests the backend cannot have seen,\n"
		"                            or idempotent ones whose connection broke, go again\n"
		"Shadows:\n"
		"  --shadow-body-max BYTES   request bodies kept for shadows and retries (default 65536)\n"
		"  --shadow-queue N          shadow requests in flight per worker (default 1024)\n"
		"  --shadow-strip-header H   remove header H from shadow copies (repeat)\n"
		"  --shadow-keep-header H    keep credential H on shadow copies (Authorization,\n"
		"                            Proxy-Authorization or Cookie: removed by default)\n"
		"Kernel fast path:\n"
		"  --no-accel                do not join the accelerated cgroup CGROUP2/sockway\n"
		"                            (named after the pin directory)\n"
		"  --no-splice               keep responses in userspace: by default the kernel\n"
		"                            moves a response whose head sockwayd would pass on\n"
		"                            unchanged, or the rest of a Content-Length body of\n"
		"                            64 KiB or more, from a local backend straight to a\n"
		"                            local client\n",
		SWD_MAX_WORKERS);
}

static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sw_err e = {};
	struct sw_addr a;

	if (sw_parse_addr(s, &a, &e)) {
		fprintf(stderr, "sockwayd: %s\n", e.msg);
		return -EINVAL;
	}
	*len = sw_addr_to_sockaddr(&a, ss);
	return 0;
}

static int parse_number(const char *opt, const char *s, unsigned long long max,
			unsigned long long *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 10);
	if (errno || end == s || *end || *out > max || s[0] == '-') {
		fprintf(stderr, "sockwayd: %s takes a number from 0 to %llu, not \"%s\"\n", opt, max,
			s);
		return -EINVAL;
	}
	return 0;
}

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
		pr_info("joined %s (kernel fast path %s)", path, sw_accel_is_on(maps) ? "on" : "off");
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
		proxy_close_idle(w);
		if ((!w->nr_exchanges && !w->nr_shadows) || now >= w->drain_deadline_ms)
			w->stop = true;
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	reactor_run(w->r, 100, worker_tick, NULL, w, &w->stop);
	return NULL;
}

static int worker_init(struct worker *w, unsigned id, struct sw_maps *maps)
{
	unsigned i;
	int fd, err;

	w->id = id;
	w->maps = maps;
	w->shard = 1 + id % (SW_COUNTER_SHARDS - 1);
	if (getrandom(&w->rng, sizeof(w->rng), 0) != sizeof(w->rng) || !w->rng)
		w->rng = 0x9e3779b97f4a7c15ULL ^ id;
	w->r = reactor_new();
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
	if (!swd_cfg.no_accel && w->nr_listeners)
		w->netns = sw_netns_cookie(w->listeners[0].fd);
	return 0;
}

int main(int argc, char **argv)
{
	enum {
		OPT_LISTEN = 256, OPT_ADMIN, OPT_WORKERS, OPT_MAX_LINE, OPT_MAX_HEAD,
		OPT_MAX_HEADERS, OPT_MAX_BODY, OPT_T_HEADER, OPT_T_KEEPALIVE, OPT_T_BODY,
		OPT_T_CONNECT, OPT_T_RESPONSE, OPT_DRAIN, OPT_POOL, OPT_DOWN, OPT_SHADOW_BODY,
		OPT_SHADOW_QUEUE, OPT_STRIP, OPT_KEEP, OPT_NO_ACCEL, OPT_NO_SPLICE, OPT_RETRY_TIMEOUT,
	};
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "admin", required_argument, NULL, OPT_ADMIN },
		{ "workers", required_argument, NULL, OPT_WORKERS },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "max-request-line", required_argument, NULL, OPT_MAX_LINE },
		{ "max-header-bytes", required_argument, NULL, OPT_MAX_HEAD },
		{ "max-headers", required_argument, NULL, OPT_MAX_HEADERS },
		{ "max-body", required_argument, NULL, OPT_MAX_BODY },
		{ "header-timeout", required_argument, NULL, OPT_T_HEADER },
		{ "keepalive-timeout", required_argument, NULL, OPT_T_KEEPALIVE },
		{ "body-timeout", required_argument, NULL, OPT_T_BODY },
		{ "connect-timeout", required_argument, NULL, OPT_T_CONNECT },
		{ "response-timeout", required_argument, NULL, OPT_T_RESPONSE },
		{ "drain", required_argument, NULL, OPT_DRAIN },
		{ "pool-size", required_argument, NULL, OPT_POOL },
		{ "replica-down", required_argument, NULL, OPT_DOWN },
		{ "shadow-body-max", required_argument, NULL, OPT_SHADOW_BODY },
		{ "shadow-queue", required_argument, NULL, OPT_SHADOW_QUEUE },
		{ "shadow-strip-header", required_argument, NULL, OPT_STRIP },
		{ "shadow-keep-header", required_argument, NULL, OPT_KEEP },
		{ "no-accel", no_argument, NULL, OPT_NO_ACCEL },
		{ "no-splice", no_argument, NULL, OPT_NO_SPLICE },
		{ "retry-on-timeout", no_argument, NULL, OPT_RETRY_TIMEOUT },
		{ NULL, 0, NULL, 0 },
	};
	static struct worker workers[SWD_MAX_WORKERS];
	unsigned long long v;
	/* static: accel_leave reads it at exit, after main has returned. */
	static struct sw_maps maps;
	struct admin *admin;
	struct sw_err e = {};
	sigset_t sigs;
	unsigned i;
	int opt, err, sig;
	long ncpu;

	http_limits_default(&swd_cfg.limits);
	swd_cfg.header_timeout_ms = 10000;
	swd_cfg.keepalive_timeout_ms = 60000;
	swd_cfg.body_timeout_ms = 30000;
	swd_cfg.connect_timeout_ms = 2000;
	swd_cfg.response_timeout_ms = 30000;
	swd_cfg.drain_ms = 10000;
	swd_cfg.pool_size = 64;
	swd_cfg.down_ms = 1000;
	swd_cfg.body_copy_max = 65536;
	swd_cfg.shadow_queue = 1024;
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	swd_cfg.workers = ncpu > 0 ? (ncpu < SWD_MAX_WORKERS ? ncpu : SWD_MAX_WORKERS) : 1;
	parse_listen("127.0.0.1:8001", &swd_cfg.admin, &swd_cfg.admin_len);

	while ((opt = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		err = 0;
		switch (opt) {
		case OPT_LISTEN:
			if (swd_cfg.nr_listen == SWD_MAX_LISTEN) {
				fprintf(stderr, "sockwayd: at most %d --listen\n", SWD_MAX_LISTEN);
				return 2;
			}
			err = parse_listen(optarg, &swd_cfg.listen[swd_cfg.nr_listen],
					   &swd_cfg.listen_len[swd_cfg.nr_listen]);
			swd_cfg.nr_listen++;
			break;
		case OPT_ADMIN:
			err = parse_listen(optarg, &swd_cfg.admin, &swd_cfg.admin_len);
			break;
		case OPT_WORKERS:
			err = parse_number("--workers", optarg, SWD_MAX_WORKERS, &v);
			if (!err && !v)
				err = parse_number("--workers", "x", SWD_MAX_WORKERS, &v);
			swd_cfg.workers = v;
			break;
		case 'v':
			swd_cfg.verbose++;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case OPT_MAX_LINE:
			err = parse_number("--max-request-line", optarg, 1 << 20, &v);
			swd_cfg.limits.max_request_line = v;
			break;
		case OPT_MAX_HEAD:
			err = parse_number("--max-header-bytes", optarg, 1 << 20, &v);
			swd_cfg.limits.max_header_bytes = v;
			break;
		case OPT_MAX_HEADERS:
			err = parse_number("--max-headers", optarg, HTTP_MAX_HEADERS, &v);
			swd_cfg.limits.max_headers = v;
			break;
		case OPT_MAX_BODY:
			err = parse_number("--max-body", optarg, ULLONG_MAX >> 1, &v);
			swd_cfg.limits.max_body = v;
			break;
		case OPT_T_HEADER:
			err = parse_number("--header-timeout", optarg, UINT_MAX, &v);
			swd_cfg.header_timeout_ms = v;
			break;
		case OPT_T_KEEPALIVE:
			err = parse_number("--keepalive-timeout", optarg, UINT_MAX, &v);
			swd_cfg.keepalive_timeout_ms = v;
			break;
		case OPT_T_BODY:
			err = parse_number("--body-timeout", optarg, UINT_MAX, &v);
			swd_cfg.body_timeout_ms = v;
			break;
		case OPT_T_CONNECT:
			err = parse_number("--connect-timeout", optarg, UINT_MAX, &v);
			swd_cfg.connect_timeout_ms = v;
			break;
		case OPT_T_RESPONSE:
			err = parse_number("--response-timeout", optarg, UINT_MAX, &v);
			swd_cfg.response_timeout_ms = v;
			break;
		case OPT_DRAIN:
			err = parse_number("--drain", optarg, UINT_MAX, &v);
			swd_cfg.drain_ms = v;
			break;
		case OPT_POOL:
			err = parse_number("--pool-size", optarg, 65536, &v);
			swd_cfg.pool_size = v;
			break;
		case OPT_DOWN:
			err = parse_number("--replica-down", optarg, UINT_MAX, &v);
			swd_cfg.down_ms = v;
			break;
		case OPT_SHADOW_BODY:
			err = parse_number("--shadow-body-max", optarg, 64 << 20, &v);
			swd_cfg.body_copy_max = v;
			break;
		case OPT_SHADOW_QUEUE:
			err = parse_number("--shadow-queue", optarg, 1 << 20, &v);
			swd_cfg.shadow_queue = v;
			break;
		case OPT_STRIP:
			if (swd_cfg.nr_strip == SWD_MAX_STRIP) {
				fprintf(stderr, "sockwayd: at most %d --shadow-strip-header\n",
					SWD_MAX_STRIP);
				return 2;
			}
			swd_cfg.strip[swd_cfg.nr_strip++] = optarg;
			break;
		case OPT_KEEP:
			if (strcasecmp(optarg, "authorization") && strcasecmp(optarg, "cookie") &&
			    strcasecmp(optarg, "proxy-authorization")) {
				fprintf(stderr,
					"sockwayd: --shadow-keep-header takes Authorization, "
					"Proxy-Authorization or Cookie, not \"%s\" (other fields are "
					"kept unless --shadow-strip-header names them)\n",
					optarg);
				return 2;
			}
			if (swd_cfg.nr_shadow_keep == SWD_MAX_STRIP) {
				fprintf(stderr, "sockwayd: at most %d --shadow-keep-header\n",
					SWD_MAX_STRIP);
				return 2;
			}
			swd_cfg.shadow_keep[swd_cfg.nr_shadow_keep++] = optarg;
			break;
		case OPT_NO_ACCEL:
			swd_cfg.no_accel = true;
			break;
		case OPT_NO_SPLICE:
			swd_cfg.no_splice = true;
			break;
		case OPT_RETRY_TIMEOUT:
			swd_cfg.retry_on_timeout = true;
			break;
		default:
			usage(stderr);
			return 2;
		}
		if (err)
			return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "sockwayd: unexpected argument \"%s\"; see sockwayd --help\n",
			argv[optind]);
		return 2;
	}
	if (!swd_cfg.nr_listen) {
		parse_listen("127.0.0.1:8000", &swd_cfg.listen[0], &swd_cfg.listen_len[0]);
		swd_cfg.nr_listen = 1;
	}
	log_init("sockwayd", swd_cfg.verbose >= 2 ? SW_LOG_DEBUG
			     : swd_cfg.verbose ? SW_LOG_INFO : SW_LOG_WARN);
	if (geteuid() != 0) {
		pr_warn("must run as root: the maps under %s are root-only", sw_pin_root());
		return 1;
	}
	err = sw_maps_open(&maps, &e);
	if (err) {
		pr_warn("%s", e.msg);
		return 1;
	}

	if (!swd_cfg.no_accel) {
		unsigned n = sw_conns_sweep(&maps);

		if (n)
			pr_info("freed %u conns entries of sockwayd processes gone", n);
		accel_join(&maps);
	}

	/* Workers inherit this mask: only the main thread takes SIGTERM and SIGINT. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	for (i = 0; i < swd_cfg.workers; i++) {
		err = worker_init(&workers[i], i, &maps);
		if (err) {
			pr_warn("cannot start worker %u: %s (is the --listen address free?)", i,
				strerror(-err));
			return 1;
		}
	}
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
	/* The workers are gone: no connection of ours is left for the kernel to find. */
	sw_conns_release_mine(&maps);
	accel_leave();
	sw_maps_close(&maps);
	fprintf(stderr, "sockwayd: stopped\n");
	return 0;
}
