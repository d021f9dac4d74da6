// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Upstream connections (proxy.h): connect, the idle pool of each replica, the replica pick,
 * and each connection's conns entry (the kernel fast path). What an upstream carries is an
 * exchange's business (exchange.c); this file keeps the connections.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "conns.h"
#include "grace.h"
#include "proxy.h"
#include "sockway.skel.h"

void upstream_update(struct upstream *u)
{
	__u32 mask = 0;

	/* (A batched write is epoll's EPOLLOUT already: it ends in one.) */
	if (u->connecting || (u->out.len && !u->ev.send_queued))
		mask |= EPOLLOUT;
	if (u->idle || u->s || (u->lent && !u->x && !u->lend_wait) ||
	    (u->x && u->x->resp != RESP_DONE && u->x->c && u->x->c->out.len < HIGH_WATER &&
	     (!u->x->pipe || pipe_wants_upstream(u->x))))
		mask |= EPOLLIN;
	reactor_mod(u->w->r, &u->ev, mask);
}

/* A conns entry whose splice is over, waiting to be freed; with the socket of a lent
 * upstream, which waits with it. */
struct deferred_entry {
	struct sw_conn *e;
	__u64 free_at_ms;
	__u64 grace; /* grace.h ticket */
	int fd;	     /* or -1 */
	struct deferred_entry *next;
};

/*
 * A lent connection's entry, before it is freed: out of its lend set, every slot of it. A
 * run held off its CPU may have put it back (kroute_untake) after sockwayd took it out;
 * a slot left naming a free entry would name the next connection lent from it too.
 */
static void lend_slots_clear(struct worker *w, struct sw_conn *e)
{
	__u32 set = __atomic_load_n(&e->lend_set, __ATOMIC_RELAXED), idx;

	if (set >= SW_LEND_SETS) /* SW_LEND_OWNERS holds the lender ids (abi.h) */
		return;
	idx = sw_conn_index(w->maps, e);
	while (sw_lend_take(&w->maps->lend[set], idx))
		;
}

/*
 * Frees a conns entry once no sk_msg run can be at work on it. One that had a splice armed
 * may still be written by a run that started before (its done and left counts, its head
 * scan), and one lent to the kernel may be in the middle of a run that took it from its
 * lend set: freed now, the way could be claimed and armed by another connection in
 * between. So, as RCU has it, the entry is unpublished first and freed once every run that
 * may have found it has ended: its splice stopped (the kernel leaves ACTIVE by
 * compare-and-swap only, and starts only from an armed state), its key retired (family 0
 * matches no socket, as sockops retires keys: no new run finds it by key, and kernel
 * routing's look-ups by index compare the key or need it lent, which lend_forget undid),
 * and then it is freed at the second tick from now (100-200 ms) and not before a grace
 * period has passed since (grace.h): a run can be held off its CPU for longer than any
 * delay. A lent upstream's socket (fd, else -1) stays open as long, so that its address
 * and port, by which such a run would send a request on to the backend, name no other
 * connection meanwhile. Returns whether it took fd, which is then closed with the entry.
 */
static bool conn_entry_defer(struct worker *w, struct sw_conn *e, bool later, int fd)
{
	struct deferred_entry *d = later ? malloc(sizeof(*d)) : NULL;

	if (!d) {
		if (fd >= 0)
			lend_slots_clear(w, e);
		sw_conn_release(w->maps, e);
		return false;
	}
	__atomic_store_n(&e->self.family, 0, __ATOMIC_RELEASE);
	d->e = e;
	d->free_at_ms = reactor_now_ms(w->r) + 100;
	d->grace = grace_ticket();
	d->fd = fd;
	d->next = w->deferred;
	w->deferred = d;
	w->nr_deferred_fds += fd >= 0;
	return fd >= 0;
}

void conn_entry_release(struct worker *w, struct sw_conn *e, bool later)
{
	conn_entry_defer(w, e, later, -1);
}

/* Frees the deferred entries whose time has come (at exit, sw_conns_release_mine frees
 * what is left, after a grace period, and the sockets close with the process). */
static void deferred_entries_free(struct worker *w)
{
	__u64 now = reactor_now_ms(w->r);
	struct deferred_entry **p = &w->deferred, *d;

	while ((d = *p)) {
		if (d->free_at_ms > now || !grace_passed(d->grace)) {
			p = &d->next;
			continue;
		}
		if (d->fd >= 0)
			lend_slots_clear(w, d->e);
		sw_conn_release(w->maps, d->e);
		if (d->fd >= 0) {
			close(d->fd);
			w->nr_deferred_fds--;
		}
		*p = d->next;
		free(d);
	}
}

void upstream_close(struct upstream *u)
{
	struct worker *w = u->w;
	bool lent = u->lent, fd_kept = false;

	if (u->x)
		u->x->u = NULL;
	if (u->lent || u->lending)
		lend_forget(u);
	reactor_del(w->r, &u->ev);
	if (u->kc) {
		__atomic_store_n(&u->kc->splice, SW_SPLICE_IDLE, __ATOMIC_RELEASE);
		fd_kept = conn_entry_defer(w, u->kc, u->splice_used, lent ? u->ev.fd : -1);
	}
	if (!fd_kept)
		close(u->ev.fd);
	if (u->prev)
		u->prev->next = u->next;
	else
		w->upstreams = u->next;
	if (u->next)
		u->next->prev = u->prev;
	buf_free(&u->in);
	buf_free(&u->out);
	free(u);
}

/* Removes u from its replica's idle pool. */
void pool_remove(struct upstream *u)
{
	struct worker *w = u->w;
	struct upstream **p = &w->idle[u->backend_id][u->replica];

	for (; *p; p = &(*p)->pool_next) {
		if (*p == u) {
			*p = u->pool_next;
			w->nr_idle[u->backend_id][u->replica]--;
			break;
		}
	}
	u->idle = false;
	u->pool_next = NULL;
}

/* Did the backend close the connection (its FIN, seen by sockops, may be unread yet)? */
static bool upstream_peer_closed(const struct upstream *u)
{
	return u->kc && __atomic_load_n(&u->kc->peer_closed, __ATOMIC_RELAXED);
}

void pool_put(struct upstream *u)
{
	struct worker *w = u->w;

	u->x = NULL;
	u->s = NULL;
	/* Bytes of the request still unsent (a backend that answered before it read the
	 * whole request, the rest waiting for room or for the round's batched writes): the
	 * connection is not in a state to carry another request. */
	if (w->draining || w->nr_idle[u->backend_id][u->replica] >= swd_cfg.pool_size ||
	    upstream_peer_closed(u) || u->out.len) {
		upstream_close(u);
		return;
	}
	u->idle = true;
	u->deadline_ms = reactor_now_ms(w->r) + swd_cfg.keepalive_timeout_ms;
	u->pool_next = w->idle[u->backend_id][u->replica];
	w->idle[u->backend_id][u->replica] = u;
	w->nr_idle[u->backend_id][u->replica]++;
	upstream_update(u);
}

/*
 * Has an idle connection been closed (or spoken) by the backend, with sockwayd not told yet?
 * A request that must not be retried (exchange_retry) asks before it goes: the backend's
 * FIN is often there already, and a request sent into it fails for sure. One syscall.
 */
bool upstream_stale(const struct upstream *u)
{
	char b;
	ssize_t n = recv(u->ev.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

	return !(n < 0 && (errno == EAGAIN || errno == EINTR));
}

/* An idle connection to exactly this address, or NULL. check: make sure the backend did
 * not close it (upstream_stale). */
struct upstream *pool_get(struct worker *w, __u16 backend, __u8 replica, const struct sw_addr *addr,
			  bool check)
{
	struct upstream *u;

	while ((u = w->idle[backend][replica])) {
		pool_remove(u);
		if (!memcmp(&u->addr, addr, sizeof(*addr)) && !upstream_peer_closed(u) &&
		    !(check && upstream_stale(u)))
			return u;
		/* The backend's replicas changed since this connection was pooled, or the
		 * backend closed it. */
		upstream_close(u);
	}
	return NULL;
}

/* Bytes the kernel moved on a connection since *seen, which moves on. */
__u64 accel_delta(struct sw_conn *kc, __u64 *seen)
{
	__u64 now = __atomic_load_n(&kc->accel_bytes, __ATOMIC_RELAXED), d = now - *seen;

	*seen = now;
	return d;
}

/*
 * Batched writes (reactor.h) to upstreams, on the kernel path or off it. The request
 * direction is not the kernel's to splice: the response splice (splice.c) looks at what the
 * backend sent and at the client's side only, and a request queued for the round's end
 * reaches the backend as one sent in place would, a little later (a splice armed before
 * it, as upstream_begin does, is armed when the backend answers). A request whose body came
 * after its head is armed for later still, at the batch's EPOLLOUT (exchange_upstream_event
 * ends with splice_arm): the backend may have answered by then, and its bytes, unread in
 * sockwayd's socket, keep the kernel from starting the splice (splice_can_start) until
 * sockwayd takes the arming back to read them (splice_settle). A backend that answers
 * before the rest of its request body, queued in the same round, went out loses its
 * connection (pool_put keeps none with bytes still to send). Left out: a connection still
 * connecting (its bytes wait for EPOLLOUT), and those lent to the kernel, which are the
 * kernel's to write to (kroute.c never writes to one).
 */
static bool upstream_batches(const struct upstream *u)
{
	return !u->connecting && !u->lent && !u->lending && reactor_batching(u->w->r);
}

/* Batched reads: of upstreams the kernel cannot reach, whose bytes only sockwayd reads
 * (no fast path at all, or found off it: a backend on another host, or outside the
 * accelerated cgroups). */
static bool upstream_reads_batched(const struct upstream *u)
{
	return (!u->w->netns || u->off_path) && upstream_batches(u);
}

/*
 * May the reactor read this upstream with the round's other reads (reactor.h)? When
 * upstream_read would, with nothing but it reading the socket next: an exchange's response
 * still to come, by recv (no pipe, whose splice(2) would overtake bytes already read, nor
 * a body that could take one now: upstream_read chooses it before it reads; no kernel
 * splice), and room in the client's buffer.
 */
static bool upstream_read_ok(struct reactor_ev *ev)
{
	struct upstream *u = ev->owner;
	struct exchange *x = u->x;

	return upstream_reads_batched(u) && x && !u->s && x->resp != RESP_DONE && !x->pipe &&
	       x->splice == SPLICE_OFF && x->c && x->c->out.len < HIGH_WATER &&
	       !pipe_eligible_but_buffered(x);
}

/* Sends bytes to the upstream, buffering what the socket does not take now (or all of them,
 * for the round's end, with the round's other writes). */
int upstream_send(struct upstream *u, const char *p, size_t n)
{
	bool later = upstream_batches(u), was_empty = !u->out.len;
	ssize_t sent = 0;

	if (!u->out.len && !u->connecting && !later) {
		sent = send(u->ev.fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (sent < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (sent < 0)
			sent = 0;
	}
	if ((size_t)sent < n && buf_append(&u->out, p + sent, n - sent))
		return -ENOMEM;
	/* Bytes were waiting already: queued, or waiting for room (EPOLLOUT, which flushes
	 * them all). */
	return later && was_empty ? upstream_flush(u) : 0;
}

int upstream_flush(struct upstream *u)
{
	ssize_t n;

	if (u->out.len && upstream_batches(u) && reactor_send_later(u->w->r, &u->ev))
		return 0;
	/* Written now, all of it: no write stays queued (upstream_update asks for EPOLLOUT
	 * again if bytes are left). */
	reactor_send_cancel(u->w->r, &u->ev);
	while (u->out.len) {
		n = send(u->ev.fd, buf_head(&u->out), u->out.len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return n < 0 ? -errno : -EPIPE;
		buf_consume(&u->out, n);
	}
	return 0;
}

/* Whoever the connection carries takes its events; one nobody holds is closing. */
static void upstream_event(struct reactor *r, struct reactor_ev *ev, __u32 events)
{
	struct upstream *u = ev->owner;

	(void)r;
	if (u->x) {
		exchange_upstream_event(u, events);
		return;
	}
	if (u->s) {
		shadow_upstream_event(u, events);
		return;
	}
	if (u->lent || u->lending) {
		lend_event(u, events);
		return;
	}
	/* An idle connection that speaks is closing (or broken): drop it. */
	if (u->idle)
		pool_remove(u);
	upstream_close(u);
}

int pick_replica(struct worker *w, __u16 backend_id, const struct sw_backend *be, int tries,
		 __u8 failed)
{
	__u64 now = reactor_now_ms(w->r);
	__u32 i, idx, nr = be->nr_replicas;

	for (i = 0; i < nr; i++) {
		idx = w->rr[backend_id]++ % nr;
		/* A retry goes elsewhere when there is an elsewhere. */
		if (tries && idx == failed && nr > 1)
			continue;
		if (w->down_until[backend_id][idx] > now)
			continue;
		return idx;
	}
	return -1;
}

struct upstream *upstream_connect(struct worker *w, __u16 backend, __u8 replica,
				  const struct sw_addr *addr)
{
	struct upstream *u;
	int fd, err;

	fd = tcp_connect_start(addr);
	if (fd < 0) {
		errno = -fd;
		return NULL;
	}
	u = calloc(1, sizeof(*u));
	if (!u) {
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	u->w = w;
	u->ev.fd = fd;
	u->ev.fn = upstream_event;
	u->ev.owner = u;
	u->ev.out = &u->out;
	u->ev.in = &u->in;
	u->ev.read_ok = upstream_read_ok;
	u->backend_id = backend;
	u->replica = replica;
	u->addr = *addr;
	u->connecting = true;
	u->deadline_ms = reactor_now_ms(w->r) + swd_cfg.connect_timeout_ms;
	err = reactor_add(w->r, &u->ev, EPOLLOUT);
	if (err) {
		close(fd);
		free(u);
		errno = -err;
		return NULL;
	}
	u->next = w->upstreams;
	if (u->next)
		u->next->prev = u;
	w->upstreams = u;
	return u;
}

/* ---- the response-body splice (abi.h, struct sw_conn) ------------------------------------ */

/* Files a connected upstream in the conns map, so that the kernel can find it. */
void upstream_track(struct upstream *u)
{
	struct sw_sock_key key;

	if (u->w->netns && !u->kc && !sw_conn_key(&key, u->w->netns, u->ev.fd))
		u->kc = sw_conn_claim(u->w->maps, &key, &u->w->reclaims);
	if (u->kc) {
		u->accel_seen = __atomic_load_n(&u->kc->accel_bytes, __ATOMIC_RELAXED);
		u->accel_base = u->accel_seen;
	}
}

/*
 * sockops put the upstream's socket into sock_hash because its route is local, before the
 * backend's end was established; if that end never joined (a local backend outside the
 * accelerated cgroups), nothing can be redirected either way, and each send of ours would
 * still run sk_msg for nothing: take it out. Called at the first response bytes, when the
 * backend's end is surely ESTABLISHED, and so in sock_addr if it ever will be (sockops
 * files it before the backend can accept it). Only the peer could have redirected bytes
 * into this socket's queue, which leaving the map would drop; an untracked peer never did.
 * A peer that is not in sock_addr now may still have been tracked: it closed (sockops
 * deletes its address at TCP_CLOSE, which it reaches only after this socket saw its FIN:
 * peer_closed) or the LRU dropped its address. Then bytes were redirected on this
 * connection (accel_bytes moved since it was filed: the request to a tracked peer, its
 * redirected response), or could still come in: the socket stays in.
 */
static void upstream_check_peer_once(struct upstream *u)
{
	struct sw_sock_key key, peer;
	int err;

	if (!u->kc)
		return;
	/* The key upstream_track filed the entry under (no need to ask the socket again). */
	key = u->kc->self;
	if (__atomic_load_n(&u->kc->accel_bytes, __ATOMIC_ACQUIRE) != u->accel_base ||
	    __atomic_load_n(&u->kc->peer_closed, __ATOMIC_ACQUIRE))
		return;
	sw_conn_key_reverse(&peer, &key);
	if (sw_sock_tracked(u->w->maps, &peer))
		return;
	/* Out of sock_hash, or never in it: splice(2) may read it from now on (pipe.c).
	 * ENOENT: sockops had left it out already (a backend on another host), or the kill
	 * switch was on at connect. */
	err = sw_sock_untrack(u->w->maps, &key);
	u->off_path = !err || err == -ENOENT;
	u->pipe_ok = u->off_path ? PIPE_YES : PIPE_NO;
	if (!err)
		__atomic_fetch_add(&u->w->stats.untracked, 1, __ATOMIC_RELAXED);
}

void upstream_check_peer(struct upstream *u)
{
	if (!u->peer_checked) {
		u->peer_checked = true;
		upstream_check_peer_once(u);
	}
	/* The first response bytes of an upstream off the kernel path: its client, if remote,
	 * sends to such backends, and its socket leaves egress_hash. sockwayd settled any
	 * splice armed on this exchange before it read them (upstream_read). A pooled one
	 * found off the path before drops its next clients at once (upstream_start). */
	if (u->off_path && u->x)
		client_egress_drop(u->x->c);
}

void upstream_tick(struct worker *w)
{
	__u64 now = reactor_now_ms(w->r);
	struct upstream *u, *un;

	deferred_entries_free(w);
	for (u = w->upstreams; u; u = un) {
		un = u->next;
		if (u->idle && u->deadline_ms <= now) {
			pool_remove(u);
			upstream_close(u);
		}
	}
}

void upstream_close_idle(struct worker *w)
{
	__u32 b, i;

	for (b = 0; b < SW_MAX_BACKENDS; b++)
		for (i = 0; i < SW_MAX_REPLICAS; i++)
			while (w->idle[b][i]) {
				struct upstream *u = w->idle[b][i];

				pool_remove(u);
				upstream_close(u);
			}
}
