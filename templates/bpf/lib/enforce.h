/* SPDX-License-Identifier: GPL-2.0 */
/* The verdict for one packet at a pod's host-side veth.
 *
 * DIR_EGRESS runs on packets the pod sends (tc ingress of the veth), DIR_INGRESS on packets
 * delivered to it (tc egress). Order of checks, as Kubernetes NetworkPolicy requires:
 *   1. tracked connection        -> pass (replies of allowed connections included); a per-CPU
 *                                   flow cache answers most of these without a hash lookup;
 *                                   an ICMP error about a tracked connection -> ALLOW_RELATED
 *   2. the pod itself            -> ALLOW_SELF (a static workload's addresses; a class pod's own)
 *   3. ingress from its own node -> ALLOW_FROM_HOST
 *   4. direction not isolated    -> ALLOW_UNISOLATED_*
 *   5. policy map                -> the allowing rule's verdict, else the pod's default deny
 * A pod-to-pod flow passes step 1-5 twice: the sender's egress, then the receiver's ingress.
 * Before step 1, a packet the pod sends to a service port (a cluster IP's, or a nodePort on a
 * node's address) is translated to its backend (lb.h), so every step judges the backend;
 * replies are translated back after step 1 on the way in. A pod reaching itself that way
 * (hairpin) is masqueraded to its router address and sent back into it (hairpin.h).
 * Translated flows bypass the flow cache. An ICMP error about a translated flow is first made
 * to quote the packet the pod knows (icmp_nat.h), then judged like any ICMP error; a later
 * fragment of a translated datagram is translated like its first (fragments.h).
 * Every drop, and every new connection allowed (steps 2-5), writes a flow event (events.h);
 * a tracked connection (step 1) writes none.
 */
#ifndef NETCC_ENFORCE_H
#define NETCC_ENFORCE_H

#include "common.h"
#include "maps.h"
#include "verdicts.h"
#include "parse.h"
#include "conntrack.h"
#include "flowcache.h"
#include "fragments.h"
#include "ipcache.h"
#include "policy.h"
#include "stats.h"
#include "lb.h"
#include "hairpin.h"
#include "icmp_nat.h"
#include "events.h"

static __always_inline int verdict_action(__u32 verdict, struct __sk_buff *skb)
{
	count_verdict(verdict, skb);
	return verdict_is_drop(verdict) ? TC_ACT_SHOT : TC_ACT_OK;
}

/* What a packet reports as a flow event once its verdict is known (enforce() writes it). */
struct event_note {
	__u64 now;
	__u32 verdict;
	__be32 svc_addr;
	__be16 svc_port;
	__u8 kind; /* 0: nothing to report (a tracked connection) */
	__u8 dir;
};

static __always_inline void note_event(struct event_note *ev, __u8 kind, __u32 verdict, __u8 dir,
				       const struct lb_xlate *x, __u64 now)
{
	ev->kind = kind;
	ev->verdict = verdict;
	ev->dir = dir;
	ev->svc_addr = x->vip;
	ev->svc_port = x->vport;
	ev->now = now;
}

/* A dropped packet: counted under its verdict, reported as a flow event. */
static __always_inline int drop_action(struct event_note *ev, __u32 verdict, struct __sk_buff *skb,
				       __u8 dir, const struct lb_xlate *x, __u64 now)
{
	note_event(ev, EVENT_DROP, verdict, dir, x, now);
	count_verdict(verdict, skb);
	return TC_ACT_SHOT;
}

/* The first packet of a connection the policy allowed: reported as a flow event. */
static __always_inline void new_flow_event(struct event_note *ev, __u8 dir,
					   const struct lb_xlate *x, __u32 verdict, __u64 now)
{
	note_event(ev, EVENT_NEW, verdict, dir, x, now);
}

/* Steps 2-5 for the first packet of a connection. */
static __always_inline __u32 judge(const struct endpoint_info *ep, const struct flow *f, __u8 dir)
{
	__be32 remote = dir == DIR_EGRESS ? f->daddr : f->saddr;
	__be32 local = dir == DIR_EGRESS ? f->saddr : f->daddr;
	__u32 isolated = dir == DIR_EGRESS ? ENDPOINT_F_EGRESS_ISOLATED : ENDPOINT_F_INGRESS_ISOLATED;
	struct ipcache_entry *peer = ipcache_lookup(remote);
	__u32 verdict;

	if (!peer)
		return VERDICT_DROP_UNKNOWN_ENDPOINT; /* unreachable: 0.0.0.0/0 is always present */
	/* A static workload by its number (it may have several addresses); a class pod, which
	 * has none (workload 0), by its address. */
	if (ep->workload ? peer->workload == ep->workload : remote == local)
		return VERDICT_ALLOW_SELF;
	if (dir == DIR_INGRESS && (peer->flags & IPCACHE_F_HOST))
		return VERDICT_ALLOW_FROM_HOST;
	if (!(ep->flags & isolated))
		return dir == DIR_EGRESS ? VERDICT_ALLOW_UNISOLATED_EGRESS :
					   VERDICT_ALLOW_UNISOLATED_INGRESS;
	verdict = policy_can_access(ep, peer, dir, f->proto, f->dport);
	if (verdict)
		return verdict;
	if (f->nonfirst_fragment)
		return VERDICT_DROP_FRAGMENT;
	return dir == DIR_EGRESS ? ep->egress_deny : ep->ingress_deny;
}

/* A hairpin packet the pod's egress allowed: masqueraded, judged by the pod's ingress policy
 * (as coming from its node) and sent back into the pod (hairpin.h). */
static __always_inline int enforce_hairpin(struct __sk_buff *skb, const struct endpoint_info *ep,
					   struct flow *f, const struct lb_xlate *x, __u32 verdict,
					   __u64 now, struct event_note *ev)
{
	struct ct_key key __attribute__((aligned(8))) = {};
	__be32 client = f->saddr;
	__be16 port = f->sport;

	count_verdict(verdict, skb);
	if (hairpin_masquerade(skb, ep, f, &key) < 0)
		return drop_action(ev, VERDICT_DROP_SERVICE_HAIRPIN, skb, DIR_EGRESS, x, now);
	if (!ct_lookup(&key, f, DIR_INGRESS, now)) {
		verdict = judge(ep, f, DIR_INGRESS);
		if (verdict_is_drop(verdict))
			return drop_action(ev, verdict, skb, DIR_INGRESS, x, now);
		new_flow_event(ev, DIR_INGRESS, x, verdict, now);
		ct_create(&key, f, DIR_INGRESS, verdict, now, client, port, CT_F_HAIRPIN);
		flow_cache_invalidate(&key);
	}
	return hairpin_return(skb);
}

/* Steps 1-5 for one packet; `ev` says what it reports as a flow event. */
static __always_inline int enforce_packet(struct __sk_buff *skb, __u8 dir, struct flow *f,
					  struct event_note *ev)
{
	struct flow_cache_entry *fc;
	struct endpoint_info *ep;
	struct endpoint_key ek;
	struct ct_key key __attribute__((aligned(8))) = {};
	struct ct_entry *ct;
	struct lb_xlate x = {};
	__u32 verdict;
	__u64 now = 0;
	__u16 gen = 0;

	switch (parse_packet(skb, f)) {
	case PARSE_IPV4:
		break;
	case PARSE_NON_IP:
		return verdict_action(VERDICT_ALLOW_NON_IP, skb);
	case PARSE_IPV6:
		if (f->icmpv6_nd)
			return verdict_action(VERDICT_ALLOW_NON_IP, skb);
		return drop_action(ev, VERDICT_DROP_IPV6, skb, dir, &x, 0);
	default:
		return drop_action(ev, VERDICT_DROP_MALFORMED, skb, dir, &x, 0);
	}

	if (unlikely(f->first_fragment || f->nonfirst_fragment))
		fragment_track(f);
	if (unlikely(f->icmp_error)) {
		now = bpf_ktime_get_coarse_ns();
		if (icmp_error_of_service(skb, f, dir, now) < 0)
			return drop_action(ev, VERDICT_DROP_MALFORMED, skb, dir, &x, now);
	}
	if (dir == DIR_EGRESS && (lb_is_service_addr(f->daddr) || lb_is_node_port(f))) {
		now = bpf_ktime_get_coarse_ns();
		verdict = lb_from_pod(skb, f, &x, now, !lb_is_service_addr(f->daddr));
		if (verdict)
			return drop_action(ev, verdict, skb, dir, &x, now);
	}
	ct_key_of(&key, f, dir);
	fc = x.active ? NULL : flow_cache_slot(&key, dir, &gen);
	if (fc && flow_cache_hit(fc, &key, dir, gen, f, skb))
		return verdict_action(fc->verdict, skb);

	ek.ip = key.local;
	ep = bpf_map_lookup_elem(&netcc_endpoints, &ek);
	if (!ep)
		return drop_action(ev,
				   dir == DIR_EGRESS ? VERDICT_DROP_SPOOFED :
						       VERDICT_DROP_UNKNOWN_ENDPOINT,
				   skb, dir, &x, now);
	if (ep->ifindex && ep->ifindex != skb->ifindex)
		return drop_action(ev, VERDICT_DROP_SPOOFED, skb, dir, &x, now);

	if (!now)
		now = bpf_ktime_get_coarse_ns();
	ct = ct_lookup(&key, f, dir, now);
	if (!ct && f->icmp_error && ct_related(f, dir, now))
		return verdict_action(VERDICT_ALLOW_RELATED, skb);
	if (ct) {
		verdict = ct->verdict;
		if (x.active && ct->nat_addr != x.vip) {
			ct->nat_addr = x.vip;
			ct->nat_port = x.vport;
			flow_cache_invalidate(&key);
		} else if (!x.active && dir == DIR_EGRESS && ct->nat_addr &&
			   !(ct->flags & CT_F_HAIRPIN)) {
			/* The pod now sends straight to the backend on a tuple a service flow
			 * used: the entry is this flow's from now on, and its replies must come
			 * from the backend, not the service address. */
			ct->nat_addr = 0;
			ct->nat_port = 0;
		}
		/* A reply of a flow the pod sent to a service: from the service address again. */
		if (dir == DIR_INGRESS && ct->nat_addr && !(ct->flags & CT_F_HAIRPIN)) {
			if (nat_rewrite(skb, f, NAT_SRC, ct->nat_addr, ct->nat_port) < 0)
				return drop_action(ev, VERDICT_DROP_MALFORMED, skb, dir, &x, now);
			return verdict_action(verdict, skb);
		}
		/* The pod answering its own hairpin flow: back into the pod (hairpin.h). */
		if (dir == DIR_EGRESS && (ct->flags & CT_F_HAIRPIN)) {
			count_verdict(verdict, skb);
			return hairpin_answer(skb, f, ct);
		}
	} else {
		verdict = judge(ep, f, dir);
		if (verdict_is_drop(verdict))
			return drop_action(ev, verdict, skb, dir, &x, now);
		new_flow_event(ev, dir, &x, verdict, now);
		ct_create(&key, f, dir, verdict, now, x.vip, x.vport, 0);
		if (x.active)
			flow_cache_invalidate(&key);
	}
	/* A new backend choice (also when only the original tuple's entry had expired). */
	if (x.fresh)
		lb_remember(f, &x, verdict, now);
	if (x.hairpin)
		return enforce_hairpin(skb, ep, f, &x, verdict, now, ev);
	if (fc && !x.active)
		flow_cache_fill(fc, &key, dir, gen, ep->ifindex, verdict);
	return verdict_action(verdict, skb);
}

static __always_inline int enforce(struct __sk_buff *skb, __u8 dir)
{
	struct event_note ev = {};
	struct flow f = {};
	int ret = enforce_packet(skb, dir, &f, &ev);

	if (ev.kind)
		flow_event(skb, &f, ev.dir, ev.kind, ev.verdict, ev.svc_addr, ev.svc_port, ev.now);
	return ret;
}

#endif /* NETCC_ENFORCE_H */
