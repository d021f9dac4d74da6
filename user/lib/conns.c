// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "conns.h"
#include "sockway.skel.h"
#include "sockway/hash.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

__u64 sw_netns_cookie(int fd)
{
	__u64 cookie = 0;
	socklen_t len = sizeof(cookie);

	if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len))
		return 0;
	return cookie;
}

/* One address into the key's form: network byte order words, port in host order. */
static int put_addr(const struct sockaddr_storage *ss, __u32 ip[4], __u32 *port)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

		memset(ip, 0, 16);
		ip[0] = s4->sin_addr.s_addr;
		*port = ntohs(s4->sin_port);
		return AF_INET;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

		memcpy(ip, &s6->sin6_addr, 16);
		*port = ntohs(s6->sin6_port);
		return AF_INET6;
	}
	return -EAFNOSUPPORT;
}

int sw_conn_key(struct sw_sock_key *k, __u64 netns, int fd)
{
	struct sockaddr_storage local, remote;
	socklen_t llen = sizeof(local), rlen = sizeof(remote);
	int fam;

	if (getsockname(fd, (struct sockaddr *)&local, &llen) ||
	    getpeername(fd, (struct sockaddr *)&remote, &rlen))
		return -errno;
	memset(k, 0, sizeof(*k));
	k->netns = netns;
	fam = put_addr(&local, k->local_ip, &k->local_port);
	if (fam < 0 || put_addr(&remote, k->remote_ip, &k->remote_port) != fam)
		return -EAFNOSUPPORT;
	k->family = fam;
	return 0;
}

void sw_conn_key_reverse(struct sw_sock_key *out, const struct sw_sock_key *k)
{
	memset(out, 0, sizeof(*out));
	out->netns = k->netns;
	out->family = k->family;
	memcpy(out->local_ip, k->remote_ip, sizeof(out->local_ip));
	memcpy(out->remote_ip, k->local_ip, sizeof(out->remote_ip));
	out->local_port = k->remote_port;
	out->remote_port = k->local_port;
}

bool sw_sock_tracked(struct sw_maps *m, const struct sw_sock_key *k)
{
	__u64 addr;

	return !bpf_map_lookup_elem(bpf_map__fd(m->skel->maps.sock_addr), k, &addr);
}

bool sw_sock_egress(struct sw_maps *m, const struct sw_sock_key *k)
{
	__u64 addr;

	return !bpf_map_lookup_elem(bpf_map__fd(m->skel->maps.egress_addr), k, &addr);
}

/* Out of a socket map, then its address out of the map beside it. */
static int untrack(int hash_fd, int addr_fd, const struct sw_sock_key *k)
{
	if (bpf_map_delete_elem(hash_fd, k))
		return -errno;
	bpf_map_delete_elem(addr_fd, k);
	return 0;
}

int sw_sock_untrack(struct sw_maps *m, const struct sw_sock_key *k)
{
	return untrack(bpf_map__fd(m->skel->maps.sock_hash), bpf_map__fd(m->skel->maps.sock_addr),
		       k);
}

int sw_egress_untrack(struct sw_maps *m, const struct sw_sock_key *k)
{
	return untrack(bpf_map__fd(m->skel->maps.egress_hash),
		       bpf_map__fd(m->skel->maps.egress_addr), k);
}

/* What a free entry holds: no splice, no kernel routing on either side (S15, K10). */
static void entry_reset(struct sw_conn *e)
{
	__atomic_store_n(&e->splice, SW_SPLICE_IDLE, __ATOMIC_RELAXED);
	__atomic_store_n(&e->peer_closed, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&e->kroute, SW_KR_CLOSED, __ATOMIC_RELAXED);
	__atomic_store_n(&e->handoff, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&e->lent, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&e->kx_client, 0, __ATOMIC_RELAXED);
}

/* Who marked an entry for reclaim (SW_CONN_RECLAIMING | pid), or who owns it. */
static pid_t owner_pid(__u32 owner)
{
	return (pid_t)(owner & ~SW_CONN_RECLAIMING);
}

/*
 * Marks way i of bucket for reclaim if its owner is gone (or the sockwayd that marked it
 * is): true if it did. Its owner is then SW_CONN_RECLAIMING | our pid, and its key is
 * retired (family 0, as sockops and conn_entry_defer retire keys), so that no run of
 * sk_msg that begins after this finds it by key: a run on the other end of one of its
 * connections (a backend, a local client, both alive) would otherwise still act on it
 * (stop its splice, close its kernel routing). It is freed only after a grace period begun
 * after this, for a run that found it before may still be at work on it (grace.h in
 * sockwayd). An entry's owner is 0 whenever its tag is 0 or just claimed (every free path
 * zeroes the owner before the tag, and a claim writes its pid after taking the tag), so
 * only a dead owner's claim, or a dead sockwayd's mark, can match here; taking the owner
 * from it (compare-and-swap) makes the mark exclusive. (Liveness is by pid: sockwayds
 * sharing pins across pid namespaces would take each other's entries; do not do that. A
 * way whose sockwayd died in the middle of a claim or a free, tag set and owner 0, is
 * never freed.)
 */
static bool mark_dead(struct sw_maps *m, __u32 bucket, unsigned i, bool startup)
{
	struct sw_conn *e = &m->conns[bucket * SW_CONN_WAYS + i];
	__u64 tag = __atomic_load_n(&m->conn_tags[bucket].tag[i], __ATOMIC_ACQUIRE);
	__u32 owner = __atomic_load_n(&e->owner, __ATOMIC_ACQUIRE);
	pid_t pid = owner_pid(owner);

	if (!tag || pid <= 0)
		return false;
	/* Our pid: ours, or marked by us, unless we hold none yet (at start-up): then it
	 * is an earlier process's that had our pid (a restart as pid 1 of a container). */
	if (pid == getpid() ? !startup : kill(pid, 0) == 0 || errno != ESRCH)
		return false;
	if (!__atomic_compare_exchange_n(&e->owner, &owner, SW_CONN_RECLAIMING | (__u32)getpid(),
					 false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
		return false;
	__atomic_store_n(&e->self.family, 0, __ATOMIC_RELEASE);
	return true;
}

static bool marked_by_me(const struct sw_conn *e)
{
	return __atomic_load_n(&e->owner, __ATOMIC_ACQUIRE) ==
	       (SW_CONN_RECLAIMING | (__u32)getpid());
}

static struct sw_conn *claim_free(struct sw_maps *m, __u32 bucket, __u64 tag,
				  const struct sw_sock_key *k)
{
	struct sw_conn_bucket *b = &m->conn_tags[bucket];
	unsigned i;

	for (i = 0; i < SW_CONN_WAYS; i++) {
		struct sw_conn *e = &m->conns[bucket * SW_CONN_WAYS + i];
		__u64 free_tag = 0;

		if (__atomic_load_n(&b->tag[i], __ATOMIC_RELAXED))
			continue;
		/* A free way's entry is idle already (sw_conn_release). The tag takes the way;
		 * the kernel matches the entry only once owner is set, and owner is stored
		 * after self (release), so no lookup sees a claim with another socket's key. */
		if (__atomic_compare_exchange_n(&b->tag[i], &free_tag, tag, false, __ATOMIC_ACQ_REL,
						__ATOMIC_RELAXED)) {
			e->self = *k;
			__atomic_store_n(&e->owner, (__u32)getpid(), __ATOMIC_RELEASE);
			return e;
		}
	}
	return NULL;
}

struct sw_conn *sw_conn_claim(struct sw_maps *m, const struct sw_sock_key *k, struct sw_reclaims *r)
{
	__u64 tag = sw_sock_key_hash(k);
	__u32 bucket = tag % SW_CONN_BUCKETS;
	struct sw_conn *e = claim_free(m, bucket, tag, k);
	unsigned i, first;

	if (e || !r || !r->ticket)
		return e;
	/* A full bucket: entries of a killed sockwayd may be taking it. They are marked now
	 * and freed after a grace period begun after this (sw_reclaims_tick). */
	first = r->n;
	for (i = 0; i < SW_CONN_WAYS && r->n < SW_RECLAIMS_MAX; i++)
		if (mark_dead(m, bucket, i, false))
			r->idx[r->n++] = bucket * SW_CONN_WAYS + i;
	if (r->n > first) {
		__u64 ticket = r->ticket();

		for (i = first; i < r->n; i++)
			r->grace[i] = ticket;
	}
	return NULL;
}

void sw_reclaims_tick(struct sw_maps *m, struct sw_reclaims *r)
{
	unsigned i, n = 0;

	for (i = 0; i < r->n; i++) {
		if (!r->passed(r->grace[i])) {
			r->idx[n] = r->idx[i];
			r->grace[n++] = r->grace[i];
			continue;
		}
		if (marked_by_me(&m->conns[r->idx[i]]))
			sw_conn_release(m, &m->conns[r->idx[i]]);
	}
	r->n = n;
}

void sw_conns_release_mine(struct sw_maps *m)
{
	__u32 me = (__u32)getpid();
	unsigned idx;

	for (idx = 0; idx < SW_CONNS; idx++) {
		__u32 owner = __atomic_load_n(&m->conns[idx].owner, __ATOMIC_ACQUIRE);

		if ((owner == me || owner == (SW_CONN_RECLAIMING | me)) &&
		    __atomic_load_n(&m->conn_tags[idx / SW_CONN_WAYS].tag[idx % SW_CONN_WAYS],
				    __ATOMIC_ACQUIRE))
			sw_conn_release(m, &m->conns[idx]);
	}
}

unsigned sw_conns_mark_dead(struct sw_maps *m)
{
	unsigned bucket, i, n = 0;

	for (bucket = 0; bucket < SW_CONN_BUCKETS; bucket++)
		for (i = 0; i < SW_CONN_WAYS; i++)
			n += mark_dead(m, bucket, i, true);
	return n;
}

void sw_conns_free_marked(struct sw_maps *m)
{
	unsigned idx;

	for (idx = 0; idx < SW_CONNS; idx++)
		if (marked_by_me(&m->conns[idx]))
			sw_conn_release(m, &m->conns[idx]);
}

/* S15 (abi.h): the entry goes back to free, its splice idle. */
void sw_conn_release(struct sw_maps *m, struct sw_conn *e)
{
	size_t idx = (size_t)(e - m->conns);

	entry_reset(e);
	__atomic_store_n(&e->owner, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&m->conn_tags[idx / SW_CONN_WAYS].tag[idx % SW_CONN_WAYS], 0,
			 __ATOMIC_RELEASE);
}

void sw_conn_splice_arm(struct sw_conn *e, const struct sw_sock_key *client, __u64 left,
			bool egress, __u64 cookie)
{
	e->client = *client;
	e->egress = egress;
	e->client_cookie = cookie;
	e->left = left;
	e->done = 0;
	/* Release: the kernel sees client, egress, its cookie, left and done before it sees
	 * ARMED (S2, abi.h). */
	__atomic_store_n(&e->splice, SW_SPLICE_ARMED, __ATOMIC_RELEASE);
}

void sw_conn_splice_prearm(struct sw_conn *e, const struct sw_sock_key *client, bool egress,
			   __u64 cookie)
{
	e->client = *client;
	e->egress = egress;
	e->client_cookie = cookie;
	e->left = 0;
	e->done = 0;
	/* Release: the kernel sees client, egress, its cookie and done before it sees
	 * PREARMED (S1, abi.h). */
	__atomic_store_n(&e->splice, SW_SPLICE_PREARMED, __ATOMIC_RELEASE);
}

long long sw_conn_splice_settle(struct sw_conn *e, __u32 *seen)
{
	__u32 state = __atomic_load_n(&e->splice, __ATOMIC_ACQUIRE);

	/* Not started: take it back (S3, abi.h), unless the kernel starts it in between
	 * (then state holds what it is now). */
	if ((state == SW_SPLICE_ARMED || state == SW_SPLICE_PREARMED) &&
	    __atomic_compare_exchange_n(&e->splice, &state, SW_SPLICE_IDLE, false, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE)) {
		*seen = SW_SPLICE_IDLE;
		return 0;
	}
	*seen = state;
	if (state == SW_SPLICE_ACTIVE || state == SW_SPLICE_SPLIT || state == SW_SPLICE_TAKING)
		return -1;
	if (state == SW_SPLICE_STOPPED || state == SW_SPLICE_DONE) {
		/* The kernel wrote done (and e->head) before STOPPED or DONE; nothing writes
		 * them after. */
		long long done = (long long)__atomic_load_n(&e->done, __ATOMIC_RELAXED);

		__atomic_store_n(&e->splice, SW_SPLICE_IDLE, __ATOMIC_RELAXED); /* S13 */
		return done;
	}
	/* IDLE: the kernel declined a PREARMED response (not a head it passes on). */
	return 0;
}

__u32 sw_conn_index(const struct sw_maps *m, const struct sw_conn *e)
{
	return (__u32)(e - m->conns);
}

/* ---- lend sets (abi.h, struct sw_lend_set) -------------------------------------------- */

bool sw_lend_put(struct sw_lend_set *set, __u32 idx)
{
	unsigned j;

	for (j = 0; j < SW_LEND_SLOTS; j++) {
		__u32 free_slot = 0;

		if (!__atomic_load_n(&set->slot[j], __ATOMIC_RELAXED) &&
		    __atomic_compare_exchange_n(&set->slot[j], &free_slot, idx + 1, false,
						__ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			return true;
	}
	return false;
}

bool sw_lend_take(struct sw_lend_set *set, __u32 idx)
{
	unsigned j;

	for (j = 0; j < SW_LEND_SLOTS; j++) {
		__u32 v = idx + 1;

		if (__atomic_load_n(&set->slot[j], __ATOMIC_RELAXED) == v &&
		    __atomic_compare_exchange_n(&set->slot[j], &v, 0, false, __ATOMIC_ACQ_REL,
						__ATOMIC_RELAXED))
			return true;
	}
	return false;
}

int sw_lend_claim(struct sw_maps *m)
{
	__u32 *owner = m->lend[SW_LEND_OWNERS].slot, me = (__u32)getpid();
	unsigned i;

	for (i = 0; i < SW_LEND_WORKERS; i++) {
		__u32 v = __atomic_load_n(&owner[i], __ATOMIC_ACQUIRE);

		/* A gone sockwayd's connections left its sets at the sweep (sw_lend_sweep). */
		if (v && v != me && (kill((pid_t)v, 0) == 0 || errno != ESRCH))
			continue;
		if (v == me)
			continue;
		if (__atomic_compare_exchange_n(&owner[i], &v, me, false, __ATOMIC_ACQ_REL,
						__ATOMIC_RELAXED))
			return (int)i;
	}
	return -1;
}

void sw_lend_release_mine(struct sw_maps *m)
{
	__u32 *owner = m->lend[SW_LEND_OWNERS].slot, me = (__u32)getpid();
	unsigned i;

	for (i = 0; i < SW_LEND_WORKERS; i++) {
		__u32 v = me;

		__atomic_compare_exchange_n(&owner[i], &v, 0, false, __ATOMIC_ACQ_REL,
					    __ATOMIC_RELAXED);
	}
}

unsigned sw_lend_sweep(struct sw_maps *m)
{
	unsigned s, j, n = 0;

	for (s = 0; s < SW_LEND_SETS; s++) {
		struct sw_lend_set *set = &m->lend[s];

		for (j = 0; j < SW_LEND_SLOTS; j++) {
			__u32 v = __atomic_load_n(&set->slot[j], __ATOMIC_ACQUIRE);
			struct sw_conn *e;
			__u32 owner;

			if (!v)
				continue;
			e = v <= SW_CONNS ? &m->conns[v - 1] : NULL;
			owner = e ? __atomic_load_n(&e->owner, __ATOMIC_ACQUIRE) : 0;
			/* A marked entry's owner is gone (mark_dead): its slot goes too. */
			if (e && owner && !(owner & SW_CONN_RECLAIMING) &&
			    __atomic_load_n(&e->lent, __ATOMIC_ACQUIRE) &&
			    __atomic_load_n(&e->lend_set, __ATOMIC_RELAXED) == s &&
			    (kill((pid_t)owner, 0) == 0 || errno != ESRCH))
				continue;
			n += __atomic_compare_exchange_n(&set->slot[j], &v, 0, false,
							 __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
		}
	}
	return n;
}
