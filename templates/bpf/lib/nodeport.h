/* SPDX-License-Identifier: GPL-2.0 */
/* NodePort at the node's uplink (the interface holding the node's address).
 *
 * From the uplink: a packet of a known flow is rewritten as netcc_lb_nat says; a new flow to
 * (node address, nodePort) gets a backend (lb.h) and two entries, one per direction:
 *   - backend on this node (always so with externalTrafficPolicy Local): destination NAT
 *     only, the client address is kept; the reply, leaving through the uplink, gets the node
 *     address and nodePort back as its source (nodeport_to_uplink);
 *   - backend on another node (externalTrafficPolicy Cluster): the source becomes the node
 *     address too, so the reply comes back here; both directions then leave through the
 *     interface they came in on, by FIB lookup and redirect (the stack would drop a packet
 *     carrying its own address as source).
 * When the source becomes the node address, the source port is allocated too (nat_port), so
 * that two clients using the same port towards the same backend through the same node get two
 * translations: a port of NAT_PORT_MIN..NAT_PORT_MAX picked by hash, or one of its
 * NAT_PORT_PROBES successors when a live reverse entry holds it; none free: dropped
 * (DROP_NODEPORT_NO_PORT). Anything else passes untouched.
 * Policy is applied at the backend pod's veth, as for any packet that reaches a pod.
 * Fragments: the first fragment of a datagram is translated like any packet, its later ones
 * take its ports from netcc_frags and get the same addresses (fragments.h); a later fragment
 * that overtook its first one passes untouched. ICMP errors about a NodePort flow, in either
 * direction, are made to quote the packet as its sender knows it (nodeport_icmp_error).
 */
#ifndef NETCC_NODEPORT_H
#define NETCC_NODEPORT_H

#include "common.h"
#include "maps.h"
#include "verdicts.h"
#include "parse.h"
#include "nat.h"
#include "lb.h"
#include "stats.h"
#include "fragments.h"
#include "icmp_nat.h"
#include "events.h"

#ifndef AF_INET
#define AF_INET 2
#endif

/* Source ports of NodePort flows masqueraded to the node's address: NAT_PORT_MIN..NAT_PORT_MAX
 * (services.h, from netcc.contract.constants), above Linux's default ephemeral range
 * (ip_local_port_range 32768-60999, the node's own connections) and the nodePort range, so no
 * socket of the node and no NodePort uses them. netcc.semantics.lb.nat_ports is the Python
 * reference of the choice. */

static __always_inline void nat_key_of(struct ct_key *key, const struct flow *f)
{
	key->local = f->saddr;
	key->remote = f->daddr;
	key->lport = f->sport;
	key->rport = f->dport;
	key->proto = f->proto;
}

static __always_inline __u64 nat_lifetime(__u8 proto)
{
	return (proto == IPPROTO_TCP ? NETCC_CT_TCP_LIFETIME : NETCC_CT_ANY_LIFETIME) * NS_PER_SEC;
}

/* Sends the packet out of the interface the FIB routes its destination through. */
static __always_inline int nat_redirect(struct __sk_buff *skb, const struct flow *f)
{
	struct bpf_fib_lookup fib = {
		.family = AF_INET,
		.l4_protocol = f->proto,
		.sport = f->sport,
		.dport = f->dport,
		.ipv4_src = f->saddr,
		.ipv4_dst = f->daddr,
		.ifindex = skb->ingress_ifindex,
	};
	struct bpf_redir_neigh nh = { .nh_family = AF_INET };
	long rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);

	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		if (bpf_skb_store_bytes(skb, 0, fib.dmac, ETH_ALEN, 0) < 0 ||
		    bpf_skb_store_bytes(skb, ETH_ALEN, fib.smac, ETH_ALEN, 0) < 0)
			return TC_ACT_SHOT;
		return bpf_redirect(fib.ifindex, 0);
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		nh.ipv4_nh = fib.ipv4_dst;
		return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
	}
	return TC_ACT_OK;
}

/* Rewrites the packet to the entry's tuple; redirects when the entry says so. */
static __always_inline int nat_apply(struct __sk_buff *skb, struct flow *f, const struct lb_nat *n)
{
	if ((n->saddr != f->saddr || n->sport != f->sport) &&
	    nat_rewrite(skb, f, NAT_SRC, n->saddr, n->sport) < 0)
		return TC_ACT_SHOT;
	if ((n->daddr != f->daddr || n->dport != f->dport) &&
	    nat_rewrite(skb, f, NAT_DST, n->daddr, n->dport) < 0)
		return TC_ACT_SHOT;
	if (n->flags & LB_NAT_F_REDIRECT)
		return nat_redirect(skb, f);
	return TC_ACT_OK;
}

/* A known flow's entry, refreshed; NULL if none or expired. */
static __always_inline struct lb_nat *nat_lookup(const struct flow *f, __u64 now)
{
	struct ct_key key __attribute__((aligned(8))) = {};
	struct lb_nat *n;
	__u64 expires;

	nat_key_of(&key, f);
	n = bpf_map_lookup_elem(&netcc_lb_nat, &key);
	if (!n || n->expires <= now)
		return NULL;
	expires = now + nat_lifetime(f->proto);
	if (expires > n->expires + NS_PER_SEC)
		n->expires = expires;
	return n;
}

/* Allocates the node's source port of a new masqueraded flow to `to` and stores its reverse
 * entry `rev` under `key` (backend, node address, backend port, the port). Returns the port
 * (network order), or 0 when every probed port is held by a live flow. */
static __always_inline __be16 nat_port(const struct flow *f, const struct lb_target *to,
				       struct ct_key *key, const struct lb_nat *rev, __u64 now)
{
	__u32 h = lb_hash(f->saddr, ((__u32)f->sport << 16) | f->dport, to->addr);
	struct lb_nat *n;
	__u32 i;

	key->local = to->addr;
	key->remote = f->daddr;
	key->lport = to->port;
	key->proto = f->proto;
	for (i = 0; i < NAT_PORT_PROBES; i++) {
		key->rport = bpf_htons(NAT_PORT_MIN + (h + i) % (NAT_PORT_MAX - NAT_PORT_MIN + 1));
		n = bpf_map_lookup_elem(&netcc_lb_nat, key);
		if (n && n->expires > now)
			continue;
		/* An expired entry is removed first, so that the insert is always NOEXIST: a
		 * flow of another CPU that took the port since the lookup makes it fail. */
		if (n)
			bpf_map_delete_elem(&netcc_lb_nat, key);
		if (!bpf_map_update_elem(&netcc_lb_nat, key, rev, BPF_NOEXIST))
			return key->rport;
	}
	return 0;
}

/* An ICMP error at the uplink about a NodePort flow. The packet it quotes is one direction of
 * the flow after translation, so netcc_lb_nat holds the entry of the other direction under
 * the quote reversed; that entry's tuple, reversed, is the quoted packet as its sender knew
 * it: the quote becomes that, and the outer destination (the quoted sender) and source (its
 * peer: a backend reporting) follow. Examples: "fragmentation needed" from a router about a
 * reply node:nodePort -> client reaches the backend as about backend -> client; a backend's
 * "port unreachable" to an external client quotes client -> node:nodePort and comes from the
 * node. Errors about anything else pass untouched. */
static __always_inline int nodeport_icmp_error(struct __sk_buff *skb, struct flow *f, int ingress)
{
	struct ct_key key __attribute__((aligned(8))) = {
		.local = f->inner.daddr,
		.remote = f->inner.saddr,
		.lport = f->inner.dport,
		.rport = f->inner.sport,
		.proto = f->inner.proto,
	};
	__be32 sender = f->inner.saddr, peer = f->inner.daddr;
	struct lb_nat *n = bpf_map_lookup_elem(&netcc_lb_nat, &key);

	if (!n || n->expires <= bpf_ktime_get_coarse_ns())
		return TC_ACT_OK;
	/* leaving: the flows redirected at the uplink's ingress never reach the stack */
	if (!ingress && (n->flags & LB_NAT_F_REDIRECT))
		return TC_ACT_OK;
	if (icmp_quote_rewrite(skb, f, NAT_SRC, n->daddr, n->dport) < 0 ||
	    icmp_quote_rewrite(skb, f, NAT_DST, n->saddr, n->sport) < 0)
		return TC_ACT_SHOT;
	if (f->daddr == sender && n->daddr != sender &&
	    nat_rewrite(skb, f, NAT_DST, n->daddr, f->dport) < 0)
		return TC_ACT_SHOT;
	if (f->saddr == peer && n->saddr != peer && nat_rewrite(skb, f, NAT_SRC, n->saddr, f->sport) < 0)
		return TC_ACT_SHOT;
	if (n->flags & LB_NAT_F_REDIRECT)
		return nat_redirect(skb, f);
	return TC_ACT_OK;
}

static __always_inline int nodeport_from_uplink(struct __sk_buff *skb)
{
	struct ct_key key __attribute__((aligned(8))) = {};
	struct lb_nat fwd = {}, rev = {};
	struct lb_target to = {};
	struct lb_service *svc;
	struct flow f = {};
	struct lb_nat *n;
	__u64 now;

	if (parse_packet(skb, &f) != PARSE_IPV4)
		return TC_ACT_OK;
	if (unlikely(f.icmp_error))
		return nodeport_icmp_error(skb, &f, 1);
	if (unlikely(f.first_fragment || f.nonfirst_fragment))
		fragment_track(&f);
	if (f.nonfirst_fragment || (f.proto != IPPROTO_TCP && f.proto != IPPROTO_UDP))
		return TC_ACT_OK;
	now = bpf_ktime_get_coarse_ns();
	n = nat_lookup(&f, now);
	if (n)
		return nat_apply(skb, &f, n);
	if (f.no_l4) /* a later fragment: only its first fragment starts a flow */
		return TC_ACT_OK;
	svc = lb_service_lookup(f.daddr, f.dport, f.proto, LB_SCOPE_NODEPORT);
	if (!svc)
		return TC_ACT_OK;
	if (!svc->count || lb_select(svc, &f, f.saddr, now, &to) < 0) {
		flow_event(skb, &f, EVENT_DIR_UPLINK, EVENT_DROP, VERDICT_DROP_NO_BACKEND, f.daddr,
			   f.dport, now);
		count_verdict(VERDICT_DROP_NO_BACKEND, skb);
		return TC_ACT_SHOT;
	}
	fwd.expires = rev.expires = now + nat_lifetime(f.proto);
	/* forward: client -> node:nodePort becomes client (or node) -> backend */
	fwd.saddr = f.saddr;
	fwd.sport = f.sport;
	fwd.daddr = to.addr;
	fwd.dport = to.port;
	/* reverse: backend -> client (or node) becomes node:nodePort -> client */
	rev.saddr = f.daddr;
	rev.sport = f.dport;
	rev.daddr = f.saddr;
	rev.dport = f.sport;
	if (to.flags & LB_BACKEND_F_LOCAL) {
		key.local = to.addr;
		key.remote = f.saddr;
		key.lport = to.port;
		key.rport = f.sport;
		key.proto = f.proto;
		bpf_map_update_elem(&netcc_lb_nat, &key, &rev, BPF_ANY);
	} else {
		fwd.saddr = f.daddr;
		fwd.flags = rev.flags = LB_NAT_F_REDIRECT;
		fwd.sport = nat_port(&f, &to, &key, &rev, now);
		if (!fwd.sport) {
			flow_event(skb, &f, EVENT_DIR_UPLINK, EVENT_DROP, VERDICT_DROP_NODEPORT_NO_PORT,
				   f.daddr, f.dport, now);
			count_verdict(VERDICT_DROP_NODEPORT_NO_PORT, skb);
			return TC_ACT_SHOT;
		}
	}
	nat_key_of(&key, &f);
	bpf_map_update_elem(&netcc_lb_nat, &key, &fwd, BPF_ANY);
	count_verdict(VERDICT_ALLOW_NODEPORT, skb);
	{
		/* the client and the backend it was sent to */
		struct flow out = f;

		out.daddr = fwd.daddr;
		out.dport = fwd.dport;
		flow_event(skb, &out, EVENT_DIR_UPLINK, EVENT_NODEPORT, VERDICT_ALLOW_NODEPORT,
			   f.daddr, f.dport, now);
	}
	return nat_apply(skb, &f, &fwd);
}

static __always_inline int nodeport_to_uplink(struct __sk_buff *skb)
{
	struct flow f = {};
	struct lb_nat *n;

	if (parse_packet(skb, &f) != PARSE_IPV4)
		return TC_ACT_OK;
	if (unlikely(f.icmp_error))
		return nodeport_icmp_error(skb, &f, 0);
	if (unlikely(f.first_fragment || f.nonfirst_fragment))
		fragment_track(&f);
	if (f.nonfirst_fragment || (f.proto != IPPROTO_TCP && f.proto != IPPROTO_UDP))
		return TC_ACT_OK;
	n = nat_lookup(&f, bpf_ktime_get_coarse_ns());
	if (!n || (n->flags & LB_NAT_F_REDIRECT))
		return TC_ACT_OK;
	return nat_apply(skb, &f, n);
}

#endif /* NETCC_NODEPORT_H */
