/* SPDX-License-Identifier: GPL-2.0 */
/* Flow events: a record in the ring buffer netcc_events for each new-flow verdict, each dropped
 * packet and each NodePort translation (netcc.contract.events); the node daemon reads them and
 * names the pods and the rule. The established path (a conntrack or flow cache hit) never gets
 * here, so it costs nothing.
 *
 * A flood must never cost a verdict, so events are budgeted per CPU: a CPU writes at most
 * NETCC_EVENT_BURST events at once and one every NETCC_EVENT_INTERVAL_NS past that. The budget
 * is a GCRA: `tat` is when the CPU's budget is whole again, and an event is written only while
 * that is at most BURST - 1 intervals ahead. The slot is per CPU, so no atomics. An event over
 * budget, or one the ring buffer has no room for, is counted (lost_budget, lost_ring) instead.
 * The budget and the write are one global function (verified once); each place that reports an
 * event only fills the record on its stack.
 * With NETCC_FLOW_EVENTS 0 (spec.observability.flowEvents.enabled: false) nothing is written.
 */
#ifndef NETCC_EVENTS_H
#define NETCC_EVENTS_H

#include "common.h"
#include "maps.h"
#include "parse.h"

#define EVENT_TAU_NS ((__u64)(NETCC_EVENT_BURST - 1) * NETCC_EVENT_INTERVAL_NS)

/* Whether the CPU may write one more event at `now`; counts it as lost when not. */
static __always_inline int event_budget_take(struct event_budget *b, __u64 now)
{
	__u64 tat = b->tat;

	if (tat < now || tat > now + EVENT_TAU_NS + NETCC_EVENT_INTERVAL_NS)
		tat = now; /* idle for a while, or a slot carried from another clock: whole */
	if (tat - now > EVENT_TAU_NS) {
		b->lost_budget++;
		return 0;
	}
	b->tat = tat + NETCC_EVENT_INTERVAL_NS;
	return 1;
}

/* Writes one event if the CPU's budget allows: a global function, so the verifier checks it
 * once rather than at each of the datapath's many places that report an event. */
__attribute__((noinline)) int netcc_event_write(struct flow_event *e)
{
	__u32 zero = 0;
	struct event_budget *b;

	if (!e)
		return 0;
	b = bpf_map_lookup_elem(&netcc_event_budget, &zero);
	if (!b || !event_budget_take(b, e->time_ns))
		return 0;
	if (bpf_ringbuf_output(&netcc_events, e, sizeof(*e), 0)) {
		b->lost_ring++;
		return 0;
	}
	b->sent++;
	return 1;
}

/* One event about the packet `f` judged in direction `dir` (DIR_* or EVENT_DIR_UPLINK).
 * `svc_addr`/`svc_port`: the service address the packet was sent to, 0 if none. */
static __always_inline void flow_event(struct __sk_buff *skb, const struct flow *f, __u8 dir,
				       __u8 kind, __u32 verdict, __be32 svc_addr, __be16 svc_port,
				       __u64 now)
{
	struct flow_event e = {};

	if (!NETCC_FLOW_EVENTS)
		return;
	e.time_ns = now ? now : bpf_ktime_get_coarse_ns();
	e.verdict = verdict;
	e.ifindex = skb->ifindex;
	e.saddr = f->saddr;
	e.daddr = f->daddr;
	e.sport = f->sport;
	e.dport = f->dport;
	e.svc_addr = svc_addr;
	e.svc_port = svc_port;
	e.proto = f->proto;
	e.dir = dir;
	e.kind = kind;
	e.tcp_flags = f->tcp_flags;
	e.len = skb->len;
	netcc_event_write(&e);
}

#endif /* NETCC_EVENTS_H */
