// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Kernel routing, sockwayd's side (proxy.h). sk_msg routes a plain request of a client that
 * sockwayd left to it (bpf/kroute.h) over an upstream connection that sockwayd lent it;
 * here sockwayd
 *   - opens the client to the kernel when it is idle (K1) and takes it back before it
 *     touches it (K2), by the client's conns entry (include/sockway/abi.h, K1..K7);
 *   - takes a routed exchange over when the kernel cannot finish it alone (K6): the
 *     client speaks again before the response came, the response is not one the kernel
 *     passes on whole, the backend closes, or it times out. The exchange then goes on as
 *     one of sockwayd's own with its response armed whole (splice.c), which is what the
 *     kernel made of it;
 *   - lends connections, per replica and worker: more where the kernel found none (its
 *     lend set's misses), none to a backend that is not local, and closes those idle for
 *     the keep-alive timeout, those whose replica changed, and all of them when draining.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "conns.h"
#include "log.h"
#include "proxy.h"
#include "sockway.skel.h"

/* A backend found not local, or closing connections right after responses, is not lent
 * to for this long; "right after" is within this. */
#define LEND_OFF_MS   10000
#define LEND_CLOSE_NS 1000000000ULL
/* Closed lent connections whose sockets wait for a grace period (upstream.c) beyond which a
 * worker lends no more: a grace period held up (a program run held off its CPU, for as long
 * as its sender's priority allows) would otherwise keep ever more sockets open. */
#define LEND_DEFERRED_MAX 1024
/* How long a closing client waits for a routing run of its own to end (a run takes
 * microseconds; one held off its CPU longer is left WANT, K11, which is safe): bounded, so
 * that a client that holds its runs cannot stall its worker for long on every close. */
#define UNTRACK_YIELDS 10000

static struct sw_lend_set *lend_set_of(struct worker *w, const struct sw_conn *e)
{
	__u32 s = __atomic_load_n(&e->lend_set, __ATOMIC_RELAXED);

	return s < SW_LEND_SETS ? &w->maps->lend[s] : NULL;
}

/* Does sockwayd take every request the kernel routes (its limits no lower)? */
static bool kroute_limits_ok(void)
{
	const struct http_limits *lim = &swd_cfg.limits;

	return lim->max_header_bytes >= SW_REQHEAD_MAX && lim->max_request_line >= SW_REQHEAD_MAX &&
	       lim->max_headers >= SW_REQHEAD_FIELDS && lim->max_body >= SW_KROUTE_BODY_MAX;
}

/*
 * Takes a lender id (abi.h) for the worker: from then on the kernel may route its clients'
 * requests. false while every id is held (by the sockwayd this one replaces, during a
 * rolling restart): lend_tick tries again.
 */
static bool kroute_claim(struct worker *w)
{
	unsigned b, r;
	int id = sw_lend_claim(w->maps);

	if (id < 0)
		return false;
	w->lend_id = (unsigned)id;
	/* The sets' miss counts run on from the id's last holder: only new misses ask for
	 * connections. */
	for (b = 0; b < SW_MAX_BACKENDS; b++)
		for (r = 0; r < SW_MAX_REPLICAS; r++)
			w->lend_misses[b][r] = __atomic_load_n(
				&w->maps->lend[sw_lend_index(b, r, w->lend_id)].misses,
				__ATOMIC_RELAXED);
	w->kroute = true;
	return true;
}

void kroute_worker_init(struct worker *w)
{
	w->kroute = false;
	w->kroute_wait = false;
	if (!swd_cfg.lend || !w->netns)
		return;
	if (!kroute_limits_ok()) {
		if (!w->id)
			pr_warn("kernel routing is off: --max-header-bytes and --max-request-line "
				"must be at least %u, --max-headers %u, --max-body %u",
				SW_REQHEAD_MAX, SW_REQHEAD_FIELDS, SW_KROUTE_BODY_MAX);
		return;
	}
	w->client_at = calloc(SW_CONNS, sizeof(*w->client_at));
	w->lent_at = calloc(SW_CONNS, sizeof(*w->lent_at));
	if (!w->client_at || !w->lent_at) {
		free(w->client_at);
		free(w->lent_at);
		w->client_at = NULL;
		w->lent_at = NULL;
		return;
	}
	if (!kroute_claim(w)) {
		pr_info("worker %u: all %u lender ids of the pin directory are taken (another "
			"sockwayd's): its clients are served without kernel routing until one is "
			"free",
			w->id, SW_LEND_WORKERS);
		w->kroute_wait = true;
	}
}

/* ---- clients ---------------------------------------------------------------------------- */

/*
 * The client's state once no program run is routing a request of it (ROUTING lasts one
 * sk_msg run, on another CPU): SW_KR_ROUTING still if that takes longer than a few yields.
 */
static __u32 kroute_settled(struct client *c, unsigned yields)
{
	__u32 state = __atomic_load_n(&c->kc->kroute, __ATOMIC_ACQUIRE);

	while (state == SW_KR_ROUTING && yields--) {
		sched_yield();
		state = __atomic_load_n(&c->kc->kroute, __ATOMIC_ACQUIRE);
	}
	return state;
}

void kroute_client_track(struct client *c)
{
	struct worker *w = c->w;

	if (!w->kroute || !c->kc)
		return;
	c->kidx = sw_conn_index(w->maps, c->kc);
	c->kc->worker = (__u16)w->lend_id;
	w->client_at[c->kidx] = c;
}

static bool lend_close_dangling(struct upstream *u);

void kroute_client_untrack(struct client *c)
{
	struct worker *w = c->w;
	struct upstream *u;
	__u32 state, v;

	if (!w->kroute || !c->kc || w->client_at[c->kidx] != c)
		return;
	w->client_at[c->kidx] = NULL;
	/* K2, or K6 for a request in flight: the kernel gives nothing back to a client that
	 * goes, and lend_tick closes the upstream that carried it. A request being sent
	 * (ROUTING) is waited for: it ends BUSY or CLOSED within its program run (K11 if that
	 * run is held off its CPU past the wait), which may also begin between the wait and
	 * the swap (K4): then it is waited for again. */
	for (;;) {
		state = c->kroute_used ? kroute_settled(c, UNTRACK_YIELDS)
				       : __atomic_load_n(&c->kc->kroute, __ATOMIC_ACQUIRE);
		if (state == SW_KR_OPEN) {
			if (__atomic_compare_exchange_n(&c->kc->kroute, &state, SW_KR_CLOSED, false,
							__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
				return;
			continue;
		}
		if (state == SW_KR_ROUTING) {
			/* Still, after all the yields: a run held off its CPU. WANT, taken
			 * from under it, keeps the client's entry from opening again (its
			 * K8 and its answer's K5 fail), so no later send routes on an entry
			 * about to be freed; its response's splice checks the cookie of this
			 * client's socket, closed now, and the upstream goes at the tick. */
			if (__atomic_compare_exchange_n(&c->kc->kroute, &state, SW_KR_WANT, false,
							__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
				return;
			continue;
		}
		if (state != SW_KR_BUSY)
			return; /* CLOSED or WANT: nothing of the kernel's in flight */
		if (__atomic_compare_exchange_n(&c->kc->kroute, &state, SW_KR_WANT, false,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			break;
	}
	/* The response on its way must not reach a socket that takes the client's key next
	 * (a reused port): its arming is taken back now, not at the tick. */
	v = __atomic_load_n(&c->kc->kx_up, __ATOMIC_ACQUIRE);
	u = v && v <= SW_CONNS ? w->lent_at[v - 1] : NULL;
	if (u && !u->x && u->kc &&
	    __atomic_load_n(&u->kc->kx_client, __ATOMIC_ACQUIRE) == c->kidx + 1)
		lend_close_dangling(u);
}

/*
 * K1: with nothing of the client's in sockwayd's hands (no exchange, no byte read and not
 * parsed, nothing to write), its next request may be the kernel's. Bytes that came
 * meanwhile and wait unread in its socket keep the kernel off (kroute_in_order), and
 * sockwayd takes the client back (K2) before it reads them.
 */
bool kroute_client_could(const struct client *c)
{
	struct worker *w = c->w;

	return w->kroute && c->kc && c->cookie && w->client_at[c->kidx] == c &&
	       c->key.family == AF_INET && !c->eof && !c->pipelines && !w->draining;
}

void kroute_client_idle(struct client *c)
{
	if (!kroute_client_could(c) || c->state != C_HEAD || c->x || c->in.len || c->out.len ||
	    __atomic_load_n(&c->kc->kroute, __ATOMIC_RELAXED) != SW_KR_CLOSED)
		return;
	/* Bytes of the client still unread in sockwayd's socket need no check here: while
	 * they are there the kernel routes nothing (kroute_in_order) and gives the client
	 * back on its next send (K3), and sockwayd takes it back before it reads them (K2,
	 * client_read). */
	c->kx_seen = __atomic_load_n(&c->kc->kx_done, __ATOMIC_RELAXED);
	c->kroute_used = true;
	__atomic_store_n(&c->kc->kroute, SW_KR_OPEN, __ATOMIC_RELEASE); /* K1 */
}

bool kroute_client_active(struct client *c)
{
	__u32 state;
	__u64 done;

	if (!c->kc || !c->kroute_used)
		return false;
	state = __atomic_load_n(&c->kc->kroute, __ATOMIC_ACQUIRE);
	if (state == SW_KR_BUSY || state == SW_KR_ROUTING)
		return true;
	done = __atomic_load_n(&c->kc->kx_done, __ATOMIC_RELAXED);
	if (done == c->kx_seen)
		return false;
	c->kx_seen = done;
	return true;
}

__u32 kroute_handoff_take(struct client *c)
{
	if (!c->kc || !c->kroute_used)
		return 0;
	return __atomic_exchange_n(&c->kc->handoff, 0, __ATOMIC_ACQ_REL);
}

/*
 * After K6: the routed exchange becomes sockwayd's, over the lent upstream, with its
 * response armed whole as the kernel left it. Returns -1 when the client is gone.
 */
static int kroute_adopt(struct client *c)
{
	struct worker *w = c->w;
	struct sw_conn *e = c->kc;
	__u32 v = __atomic_load_n(&e->kx_up, __ATOMIC_ACQUIRE);
	struct upstream *u = v && v <= SW_CONNS ? w->lent_at[v - 1] : NULL;
	struct sw_conn *ue = u ? u->kc : NULL;
	struct exchange *x;
	__u64 now_ns = now_us() * 1000, start_ns;

	if (!u || !ue || u->x || __atomic_load_n(&ue->kx_client, __ATOMIC_ACQUIRE) != c->kidx + 1) {
		/* The kernel undid the routing just as sockwayd asked: nothing to take. */
		__atomic_store_n(&e->kroute, SW_KR_CLOSED, __ATOMIC_RELEASE); /* K7 */
		return 0;
	}
	x = exchange_alloc(w);
	if (!x) {
		client_close(c);
		return -1;
	}
	start_ns = __atomic_load_n(&ue->kx_start_ns, __ATOMIC_RELAXED);
	x->c = c;
	x->u = u;
	x->kernel = true;
	x->method_bit = ue->kx_method;
	x->version_minor = 1;
	x->keep_alive = true;
	x->endpoint_id = ue->kx_endpoint;
	x->backend_id = u->backend_id;
	x->cell = ue->kx_cell;
	x->replica = u->replica;
	/* sockwayd holds no copy of the request: it cannot go again. */
	x->tries = 1;
	x->req = REQ_DONE;
	x->resp = RESP_NONE;
	x->splice = SPLICE_WHOLE;
	x->splice_whole_tried = true;
	x->t_start_us = start_ns / 1000;
	u->x = x;
	u->lend_wait = false;
	u->deadline_ms = (start_ns < now_ns ? reactor_now_ms(w->r) - (now_ns - start_ns) / 1000000
					    : reactor_now_ms(w->r)) +
			 swd_cfg.response_timeout_ms;
	c->x = x;
	c->state = C_PROXY;
	w->nr_exchanges++;
	__atomic_fetch_add(&w->stats.kroute_adopted, 1, __ATOMIC_RELAXED);
	upstream_update(u);
	return 0;
}

/* K6 if the kernel has a request of the client in flight, then the take-over. */
static int kroute_want(struct client *c)
{
	__u32 state = SW_KR_BUSY;

	if (!__atomic_compare_exchange_n(&c->kc->kroute, &state, SW_KR_WANT, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return 0;
	return kroute_adopt(c);
}

int kroute_client_event(struct client *c)
{
	__u32 state;

	if (!c->kc || !c->kroute_used)
		return 0;
	state = kroute_settled(c, 16);
	for (;;) {
		if (state == SW_KR_ROUTING)
			return 1; /* the event comes again (level-triggered) */
		if (state == SW_KR_OPEN) {
			if (__atomic_compare_exchange_n(&c->kc->kroute, &state, SW_KR_CLOSED, false,
							__ATOMIC_ACQ_REL,
							__ATOMIC_ACQUIRE)) /* K2 */
				return 0;
			continue;
		}
		if (state == SW_KR_BUSY) {
			if (__atomic_compare_exchange_n(&c->kc->kroute, &state, SW_KR_WANT, false,
							__ATOMIC_ACQ_REL,
							__ATOMIC_ACQUIRE)) /* K6 */
				return kroute_adopt(c);
			continue;
		}
		return 0;
	}
}

/* ---- lent upstreams --------------------------------------------------------------------- */

/* Is the backend's end of the connection a local socket the kernel can send to? */
static bool lend_backend_local(struct worker *w, const struct sw_conn *e)
{
	struct sw_sock_key peer;

	sw_conn_key_reverse(&peer, &e->self);
	return sw_sock_tracked(w->maps, &peer);
}

static void lend_open(struct worker *w, __u16 b, __u8 r)
{
	const struct sw_backend *be = &w->snap->be[b];
	__u64 now = reactor_now_ms(w->r);
	struct upstream *u;

	if (!(be->flags & SW_F_IN_USE) || r >= be->nr_replicas || r >= SW_MAX_REPLICAS ||
	    w->nr_lent[b][r] >= swd_cfg.lend || w->down_until[b][r] > now ||
	    w->lend_off_until[b][r] > now || w->draining)
		return;
	if (w->nr_deferred_fds >= LEND_DEFERRED_MAX) {
		if (!w->lend_held)
			pr_warn("worker %u: %u closed lent connections wait for a grace period "
				"(a BPF program run held off its CPU?): lending no more until "
				"they close",
				w->id, w->nr_deferred_fds);
		w->lend_held = true;
		return;
	}
	w->lend_held = false;
	u = upstream_connect(w, b, r, &be->replicas[r]);
	if (!u) {
		w->down_until[b][r] = now + swd_cfg.down_ms;
		return;
	}
	u->lending = true;
	w->nr_lent[b][r]++;
	__atomic_fetch_add(&w->stats.lend_opened, 1, __ATOMIC_RELAXED);
	upstream_update(u);
}

void lend_demand(struct worker *w, __u16 b)
{
	const struct sw_backend *be;
	__u32 r;

	if (!w->kroute || b >= SW_MAX_BACKENDS)
		return;
	be = &w->snap->be[b];
	for (r = 0; r < be->nr_replicas && r < SW_MAX_REPLICAS; r++)
		if (!w->nr_lent[b][r])
			lend_open(w, b, (__u8)r);
}

/* The connect of a connection to be lent finished: into its lend set, or closed. */
static void lend_connected(struct upstream *u)
{
	struct worker *w = u->w;
	socklen_t len = sizeof(int);
	struct sw_conn *e;
	int err = 0;

	getsockopt(u->ev.fd, SOL_SOCKET, SO_ERROR, &err, &len);
	if (err || w->draining) {
		if (err)
			w->down_until[u->backend_id][u->replica] =
				reactor_now_ms(w->r) + swd_cfg.down_ms;
		upstream_close(u);
		return;
	}
	u->connecting = false;
	upstream_track(u);
	e = u->kc;
	if (!e || !lend_backend_local(w, e)) {
		w->lend_off_until[u->backend_id][u->replica] = reactor_now_ms(w->r) + LEND_OFF_MS;
		upstream_close(u);
		return;
	}
	u->kidx = sw_conn_index(w->maps, e);
	e->worker = (__u16)w->lend_id;
	e->kx_client = 0;
	e->kx_last_ns = now_us() * 1000;
	e->lend_set = sw_lend_index(u->backend_id, u->replica, w->lend_id);
	__atomic_store_n(&e->lent, 1, __ATOMIC_RELEASE);
	u->lending = false;
	u->lent = true;
	/* The kernel may write the entry until a while after it is given back. */
	u->splice_used = true;
	w->lent_at[u->kidx] = u;
	if (!sw_lend_put(lend_set_of(w, e), u->kidx)) {
		upstream_close(u);
		return;
	}
	upstream_update(u);
}

void lend_forget(struct upstream *u)
{
	struct worker *w = u->w;
	struct sw_lend_set *set;

	if (u->lent) {
		set = lend_set_of(w, u->kc);
		if (set)
			sw_lend_take(set, u->kidx);
		__atomic_store_n(&u->kc->lent, 0, __ATOMIC_RELEASE);
		if (w->lent_at[u->kidx] == u)
			w->lent_at[u->kidx] = NULL;
	}
	if ((u->lent || u->lending) && w->nr_lent[u->backend_id][u->replica])
		w->nr_lent[u->backend_id][u->replica]--;
	u->lent = false;
	u->lending = false;
}

/* The client a lent upstream carries a routed request of, if it is still this worker's. */
static struct client *lend_client(struct upstream *u)
{
	struct worker *w = u->w;
	__u32 v = __atomic_load_n(&u->kc->kx_client, __ATOMIC_ACQUIRE);
	struct client *c = v && v <= SW_CONNS ? w->client_at[v - 1] : NULL;

	/* The client the kernel routed for, not a later one given the same entry (its
	 * cookie: sockwayd's socket to the client, which the kernel wrote with kx_client). */
	if (!c || c->kc != &w->maps->conns[v - 1] ||
	    __atomic_load_n(&u->kc->client_cookie, __ATOMIC_RELAXED) != c->cookie)
		return NULL;
	return c;
}

/* A lent connection whose client is gone: closed, unless a program run is passing a
 * response on over it right now. Returns whether it was. */
static bool lend_close_dangling(struct upstream *u)
{
	__u32 state = __atomic_load_n(&u->kc->splice, __ATOMIC_ACQUIRE);

	/* Armed and not started: taken back, so the kernel will not start it now. */
	if ((state == SW_SPLICE_PREARMED || state == SW_SPLICE_ARMED) &&
	    __atomic_compare_exchange_n(&u->kc->splice, &state, SW_SPLICE_IDLE, false,
					__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		state = SW_SPLICE_IDLE;
	/* TAKING ends within the run that set it (DONE, or STOPPED); the tick looks again.
	 * An ACTIVE or SPLIT splice (a backend that sends its body slowly, or holds it) stops
	 * with the close, which stores IDLE: the kernel leaves those states only by
	 * compare-and-swap, so it moves nothing more, and the backend's next send goes to
	 * sockwayd's socket, read by nobody and closed after a grace period (upstream.c).
	 * Kept open, it would hold the upstream for as long as the backend likes. */
	if (state == SW_SPLICE_TAKING || state == SW_SPLICE_PREARMED || state == SW_SPLICE_ARMED)
		return false;
	upstream_close(u);
	return true;
}

void lend_event(struct upstream *u, __u32 events)
{
	struct worker *w = u->w;
	struct client *c;

	if (u->lending) {
		if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			lend_connected(u);
		return;
	}
	/* Idle in its set: the backend closed it, or spoke out of turn. One that does so
	 * within a second of its last response closes connections after responses without
	 * saying so (no "Connection: close"): a request the kernel sent at that moment would
	 * meet the close, and only sockwayd, which keeps a copy, can send it again. So the
	 * replica gets no lent connections for a while. */
	if (sw_lend_take(lend_set_of(w, u->kc), u->kidx)) {
		__u64 last = __atomic_load_n(&u->kc->kx_last_ns, __ATOMIC_RELAXED);

		if (last && now_us() * 1000 - last < LEND_CLOSE_NS)
			w->lend_off_until[u->backend_id][u->replica] =
				reactor_now_ms(w->r) + LEND_OFF_MS;
		upstream_close(u);
		return;
	}
	if (__atomic_load_n(&u->kc->kx_client, __ATOMIC_ACQUIRE)) {
		c = lend_client(u);
		if (!c) {
			if (!lend_close_dangling(u))
				goto wait;
			return;
		}
		/* The response, or the backend's close, comes to sockwayd: the exchange is
		 * sockwayd's from here (K6). */
		if (kroute_want(c) < 0)
			return;
		if (u->x) {
			exchange_upstream_event(u, events);
			return;
		}
	}
wait:
	/* Taken by the kernel and not filled in yet, or given back and not in the set yet:
	 * the tick looks again. */
	u->lend_wait = true;
	upstream_update(u);
}

void lend_return(struct upstream *u)
{
	struct worker *w = u->w;
	struct sw_conn *e = u->kc;

	u->x = NULL;
	if (u->in.len || u->out.len || !w->kroute || w->draining ||
	    __atomic_load_n(&e->peer_closed, __ATOMIC_RELAXED) ||
	    __atomic_load_n(&e->splice, __ATOMIC_ACQUIRE) != SW_SPLICE_IDLE) {
		upstream_close(u);
		return;
	}
	e->done = 0;
	e->kx_last_ns = now_us() * 1000;
	__atomic_store_n(&e->kx_client, 0, __ATOMIC_RELEASE);
	if (!sw_lend_put(lend_set_of(w, e), u->kidx)) {
		upstream_close(u);
		return;
	}
	upstream_update(u);
}

/* Is the lent upstream in its set now? */
static bool lend_in_set(struct worker *w, struct upstream *u)
{
	struct sw_lend_set *set = lend_set_of(w, u->kc);
	unsigned j;

	for (j = 0; set && j < SW_LEND_SLOTS; j++)
		if (__atomic_load_n(&set->slot[j], __ATOMIC_ACQUIRE) == u->kidx + 1)
			return true;
	return false;
}

/* Should an idle lent upstream go: idle too long, its replica changed, its backend gone? */
static bool lend_stale(struct worker *w, struct upstream *u, __u64 now_ns)
{
	const struct sw_backend *be = &w->snap->be[u->backend_id];
	__u64 last = __atomic_load_n(&u->kc->kx_last_ns, __ATOMIC_RELAXED);

	return !w->kroute || w->draining || !(be->flags & SW_F_IN_USE) ||
	       u->replica >= be->nr_replicas ||
	       memcmp(&be->replicas[u->replica], &u->addr, sizeof(u->addr)) ||
	       __atomic_load_n(&u->kc->peer_closed, __ATOMIC_RELAXED) ||
	       (now_ns > last && now_ns - last > (__u64)swd_cfg.keepalive_timeout_ms * 1000000);
}

/* One lent upstream that carries no exchange of sockwayd's, at the tick. */
static void lend_tick_one(struct worker *w, struct upstream *u, __u64 now_ns)
{
	struct client *c;
	__u64 start;

	if (__atomic_load_n(&u->kc->kx_client, __ATOMIC_ACQUIRE)) {
		u->lend_orphan = false;
		c = lend_client(u);
		if (!c) {
			lend_close_dangling(u);
			return;
		}
		/* No response in time: sockwayd takes it over, and its timer answers 504. */
		start = __atomic_load_n(&u->kc->kx_start_ns, __ATOMIC_RELAXED);
		if (now_ns > start &&
		    now_ns - start > (__u64)swd_cfg.response_timeout_ms * 1000000) {
			if (kroute_want(c) < 0)
				return;
		}
		return;
	}
	if (u->lend_wait) {
		u->lend_wait = false;
		upstream_update(u);
	}
	if (!lend_in_set(w, u)) {
		/* Neither in its set nor carrying a request, twice: the kernel could not give
		 * it back (never so far, as a set holds every connection lent to it). */
		if (u->lend_orphan)
			upstream_close(u);
		else
			u->lend_orphan = true;
		return;
	}
	u->lend_orphan = false;
	if (lend_stale(w, u, now_ns) && sw_lend_take(lend_set_of(w, u->kc), u->kidx))
		upstream_close(u);
}

void lend_tick(struct worker *w)
{
	__u64 now_ns = now_us() * 1000, now_ms = reactor_now_ms(w->r);
	struct upstream *u, *un;
	__u32 b, r;

	if (w->kroute_wait && !w->draining && kroute_claim(w)) {
		w->kroute_wait = false;
		pr_info("worker %u: lender id %u free: kernel routing on", w->id, w->lend_id);
	}
	if (!w->kroute)
		return;
	for (u = w->upstreams; u; u = un) {
		un = u->next;
		if (u->lent && !u->x)
			lend_tick_one(w, u, now_ns);
		else if (u->lending && u->deadline_ms <= now_ms)
			upstream_close(u); /* its connect timed out */
	}
	if (w->draining)
		return;
	/* Where the kernel found no connection, one more for each time it did. */
	for (b = 0; b < SW_MAX_BACKENDS; b++) {
		const struct sw_backend *be = &w->snap->be[b];

		if (!(be->flags & SW_F_IN_USE))
			continue;
		for (r = 0; r < be->nr_replicas && r < SW_MAX_REPLICAS; r++) {
			const struct sw_lend_set *set =
				&w->maps->lend[sw_lend_index(b, r, w->lend_id)];
			__u64 misses = __atomic_load_n(&set->misses, __ATOMIC_RELAXED);
			__u64 want = misses - w->lend_misses[b][r];

			w->lend_misses[b][r] = misses;
			while (want-- && w->nr_lent[b][r] < swd_cfg.lend)
				lend_open(w, (__u16)b, (__u8)r);
		}
	}
}

void kroute_drain(struct worker *w)
{
	struct client *c, *cn;
	struct upstream *u, *un;

	if (!w->kroute)
		return;
	/* Routed requests in flight become sockwayd's, so that draining waits for them. */
	for (c = w->clients; c; c = cn) {
		cn = c->next;
		if (c->kc && c->kroute_used && !c->x)
			kroute_client_event(c);
	}
	for (u = w->upstreams; u; u = un) {
		un = u->next;
		if (u->lent && !u->x && sw_lend_take(lend_set_of(w, u->kc), u->kidx))
			upstream_close(u);
	}
}
