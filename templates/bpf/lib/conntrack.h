/* SPDX-License-Identifier: GPL-2.0 */
/* Connection tracking, keyed from the local pod's point of view so that both directions of a
 * connection share one entry: (local addr, remote addr, local port, remote port, protocol).
 * An entry exists only for connections whose first packet was allowed; while it lives, its
 * packets (replies included) pass without a policy lookup. Lifetimes follow Cilium's defaults:
 * TCP before a reply NETCC_CT_SYN_LIFETIME, established NETCC_CT_TCP_LIFETIME, after RST or FIN
 * from both sides NETCC_CT_CLOSE_LIFETIME; other protocols NETCC_CT_ANY_LIFETIME. Time is the
 * coarse monotonic clock (tick resolution, ~40x cheaper than bpf_ktime_get_ns here), and the
 * expiry is written back at most once a second per entry.
 * A flow a pod sent to a service is tracked under its translated tuple, with the service
 * address in `nat_addr`/`nat_port` for its replies, and under its original tuple with
 * CT_F_SERVICE and the backend there (lb.h). The CT_F_* bits are in maps.h
 * (netcc.contract.constants).
 */
#ifndef NETCC_CONNTRACK_H
#define NETCC_CONNTRACK_H

#include "common.h"
#include "maps.h"
#include "parse.h"

static __always_inline void ct_key_of(struct ct_key *key, const struct flow *f, __u8 dir)
{
	if (dir == DIR_EGRESS) {
		key->local = f->saddr;
		key->remote = f->daddr;
		key->lport = f->sport;
		key->rport = f->dport;
	} else {
		key->local = f->daddr;
		key->remote = f->saddr;
		key->lport = f->dport;
		key->rport = f->sport;
	}
	key->proto = f->proto;
}

static __always_inline __u64 ct_lifetime(__u8 proto, __u8 flags)
{
	if (proto != IPPROTO_TCP)
		return NETCC_CT_ANY_LIFETIME * NS_PER_SEC;
	if ((flags & CT_F_RST) || (flags & (CT_F_FIN_LOCAL | CT_F_FIN_REMOTE)) ==
					  (CT_F_FIN_LOCAL | CT_F_FIN_REMOTE))
		return NETCC_CT_CLOSE_LIFETIME * NS_PER_SEC;
	if (flags & CT_F_REPLY_SEEN)
		return NETCC_CT_TCP_LIFETIME * NS_PER_SEC;
	return NETCC_CT_SYN_LIFETIME * NS_PER_SEC;
}

static __always_inline __u8 ct_flags_after(const struct ct_entry *ct, const struct flow *f,
					   __u8 dir)
{
	__u8 flags = ct->flags;

	if (dir != ct->origin)
		flags |= CT_F_REPLY_SEEN;
	if (f->proto == IPPROTO_TCP) {
		if (f->tcp_flags & TCP_FLAG_RST)
			flags |= CT_F_RST;
		if (f->tcp_flags & TCP_FLAG_FIN)
			flags |= dir == DIR_EGRESS ? CT_F_FIN_LOCAL : CT_F_FIN_REMOTE;
	}
	return flags;
}

/* An ICMP error travels against the packet it quotes: at the pod's ingress the quoted packet
 * was the pod's own (local = its source), at egress the peer's (local = its destination). */
static __always_inline void ct_key_of_inner(struct ct_key *key, const struct tuple *t, __u8 dir)
{
	if (dir == DIR_INGRESS) {
		key->local = t->saddr;
		key->remote = t->daddr;
		key->lport = t->sport;
		key->rport = t->dport;
	} else {
		key->local = t->daddr;
		key->remote = t->saddr;
		key->lport = t->dport;
		key->rport = t->sport;
	}
	key->proto = t->proto;
}

/* Whether an ICMP error is about a live connection of the pod's. */
static __always_inline int ct_related(const struct flow *f, __u8 dir, __u64 now)
{
	struct ct_key key __attribute__((aligned(8))) = {};
	struct ct_entry *ct;

	ct_key_of_inner(&key, &f->inner, dir);
	ct = bpf_map_lookup_elem(&netcc_ct, &key);
	return ct && ct->expires > now;
}

/* Looks the packet's connection up; refreshes it. Returns its entry, or NULL for a new one. */
static __always_inline struct ct_entry *ct_lookup(const struct ct_key *key, const struct flow *f,
						  __u8 dir, __u64 now)
{
	struct ct_entry *ct = bpf_map_lookup_elem(&netcc_ct, key);
	__u64 expires;
	__u8 flags;

	if (!ct)
		return NULL;
	if (ct->expires <= now)
		return NULL;
	/* A fresh SYN on a closing connection opens a new one: judge it again. */
	if ((f->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN &&
	    (ct->flags & (CT_F_RST | CT_F_FIN_LOCAL | CT_F_FIN_REMOTE)))
		return NULL;
	flags = ct_flags_after(ct, f, dir);
	expires = now + ct_lifetime(f->proto, flags);
	if (flags != ct->flags || expires > ct->expires + NS_PER_SEC) {
		ct->flags = flags;
		ct->expires = expires;
	}
	return ct;
}

/* A new entry; `nat_addr`/`nat_port` are a service flow's VIP (or, with CT_F_SERVICE, its
 * backend), `flags` extra CT_F_* bits. */
static __always_inline void ct_create(const struct ct_key *key, const struct flow *f, __u8 dir,
				      __u32 verdict, __u64 now, __be32 nat_addr, __be16 nat_port,
				      __u8 flags)
{
	struct ct_entry ct = {
		.verdict = verdict,
		.origin = dir,
		.flags = flags,
		.nat_addr = nat_addr,
		.nat_port = nat_port,
	};

	ct.flags = ct_flags_after(&ct, f, dir);
	ct.expires = now + ct_lifetime(f->proto, ct.flags);
	bpf_map_update_elem(&netcc_ct, key, &ct, BPF_ANY);
}

#endif /* NETCC_CONNTRACK_H */
