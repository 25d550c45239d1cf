/* SPDX-License-Identifier: GPL-2.0 */
/* Services without kube-proxy: the backend of a flow to a service port (services.h lists the
 * Maglev rows, and holds the nodePort range LB_NODE_PORT_MIN..LB_NODE_PORT_MAX).
 *
 * A packet a pod sends to a cluster IP (inside NETCC_SERVICE_NET, a compare, so other traffic
 * pays no lookup) and a service port is translated to a backend before the pod's egress policy
 * is asked, so policy judges the backend pod, and the backend's ingress policy the real client.
 * The choice, for a new flow:
 *   - sessionAffinity ClientIP: the client's entry in netcc_lb_affinity while it lives and its
 *     backend is still one of the service port's (netcc_lb_members: an update keeps every
 *     client whose backend stays, as kube-proxy does), else the Maglev slot of the client
 *     address's hash; the entry is refreshed for `timeout` seconds;
 *   - otherwise the Maglev slot of the flow's hash (client address and ports, protocol).
 * The flow keeps its backend while it lives: a conntrack entry keyed by the original tuple
 * (CT_F_SERVICE) holds the backend, and survives updates that move the backend's slots.
 * A pod reaching a nodePort through a node's address (any node's, its own included: an exact
 * ipcache entry that is no pod) is translated here too, with every backend of the port: as
 * kube-proxy does, pod traffic to a NodePort is "subject to neither form of traffic policy"
 * (externalTrafficPolicy Local applies to external clients only). Only destination ports in
 * the nodePort range pay the two lookups.
 * A service port without a backend drops (DROP_NO_BACKEND). A pod that reaches itself
 * (hairpin) is also masqueraded, as kube-proxy does: see hairpin.h.
 * netcc.semantics.lb is the Python reference of lb_hash and the choice.
 */
#ifndef NETCC_LB_H
#define NETCC_LB_H

#include "common.h"
#include "maps.h"
#include "verdicts.h"
#include "services.h"
#include "parse.h"
#include "conntrack.h"
#include "ipcache.h"
#include "nat.h"

struct lb_target {
	__be32 addr;
	__be16 port;
	__u8 flags; /* LB_BACKEND_F_* */
};

/* A translated flow from a pod: the service address it was sent to and its backend. */
struct lb_xlate {
	__be32 vip;
	__be16 vport;
	__u8 active; /* the packet was translated */
	__u8 fresh;  /* a new choice: remember it once the flow is allowed */
	__u8 hairpin; /* the backend is the client itself (hairpin.h) */
	struct lb_target to;
};

static __always_inline int lb_is_service_addr(__be32 addr)
{
	return (addr & bpf_htonl(NETCC_SERVICE_MASK)) == bpf_htonl(NETCC_SERVICE_NET);
}

/* A destination a pod may reach a NodePort at: a port of the nodePort range on a node's
 * address (an exact ipcache entry that is no pod: any node's address or router address). */
static __always_inline int lb_is_node_port(const struct flow *f)
{
	struct ipcache_key key = { .ip = f->daddr };
	struct ipcache_entry *e;
	__u16 port = bpf_ntohs(f->dport);

	if (port < LB_NODE_PORT_MIN || port > LB_NODE_PORT_MAX ||
	    (f->proto != IPPROTO_TCP && f->proto != IPPROTO_UDP))
		return 0;
	e = bpf_map_lookup_elem(&netcc_ipcache, &key);
	return e && !(e->flags & IPCACHE_F_POD);
}

/* Three words mixed with murmur3's finalizer (netcc.semantics.lb.mix). */
static __always_inline __u32 lb_hash(__u32 a, __u32 b, __u32 c)
{
	__u32 h = a * 0x9E3779B1u;

	h ^= b;
	h *= 0x85EBCA6Bu;
	h ^= c;
	h ^= h >> 16;
	h *= 0x7FEB352Du;
	h ^= h >> 15;
	h *= 0x846CA68Bu;
	h ^= h >> 16;
	return h;
}

static __always_inline struct lb_service *lb_service_lookup(__be32 vip, __be16 port, __u8 proto,
							    __u8 scope)
{
	struct lb_service_key key = { .vip = vip, .port = port, .proto = proto, .scope = scope };

	return bpf_map_lookup_elem(&netcc_lb_services, &key);
}

static __always_inline int lb_maglev_pick(const struct lb_service *svc, __u32 hash,
					  struct lb_target *to)
{
	struct lb_row_key rk = { .id = svc->row };
	struct lb_backend_key bk;
	struct lb_backend *b;
	struct lb_row *row;
	__u32 slot = hash % NETCC_LB_MAGLEV_SIZE;

	row = bpf_map_lookup_elem(&netcc_lb_maglev, &rk);
	if (!row)
		return -1;
	asm volatile("" : "+r"(slot)); /* keep the bound check the verifier needs */
	if (slot >= NETCC_LB_MAGLEV_SIZE)
		return -1;
	bk.id = row->backends[slot];
	b = bpf_map_lookup_elem(&netcc_lb_backends, &bk);
	if (!b)
		return -1;
	to->addr = b->ip;
	to->port = b->port;
	to->flags = b->flags;
	return 0;
}

/* The backend of a new flow from `client` (see the top of this file). 0, or -1: none. */
static __always_inline int lb_select(const struct lb_service *svc, const struct flow *f,
				     __be32 client, __u64 now, struct lb_target *to)
{
	struct lb_affinity_key ak = { .row = svc->row, .client = client };
	struct lb_affinity *a, fresh = {};
	struct lb_member_key mk = { .row = svc->row };
	struct lb_member *m;

	if (!(svc->flags & LB_F_AFFINITY))
		return lb_maglev_pick(svc, lb_hash(client, ((__u32)f->sport << 16) | f->dport,
						   f->proto), to);
	a = bpf_map_lookup_elem(&netcc_lb_affinity, &ak);
	if (a && a->expires > now) {
		mk.ip = a->ip;
		mk.port = a->port;
		m = bpf_map_lookup_elem(&netcc_lb_members, &mk);
		if (m) { /* the remembered backend still serves this port */
			to->addr = a->ip;
			to->port = a->port;
			to->flags = m->flags;
			a->expires = now + (__u64)svc->timeout * NS_PER_SEC;
			return 0;
		}
	}
	if (lb_maglev_pick(svc, lb_hash(client, 0, 0), to) < 0)
		return -1;
	fresh.expires = now + (__u64)svc->timeout * NS_PER_SEC;
	fresh.ip = to->addr;
	fresh.port = to->port;
	bpf_map_update_elem(&netcc_lb_affinity, &ak, &fresh, BPF_ANY);
	return 0;
}

/* A packet a pod sends to a service port, a cluster IP's or (`node_port`) a nodePort on a
 * node's address: translated to the flow's backend. Returns 0 (not a service port, or
 * translated: `x->active`), or the drop verdict. */
static __always_inline __u32 lb_from_pod(struct __sk_buff *skb, struct flow *f,
					 struct lb_xlate *x, __u64 now, int node_port)
{
	struct ct_key key __attribute__((aligned(8))) = {};
	struct lb_service *svc;
	struct ct_entry *ct;

	if (node_port)
		svc = lb_service_lookup(0, f->dport, f->proto, LB_SCOPE_NODEPORT_POD);
	else
		svc = lb_service_lookup(f->daddr, f->dport, f->proto, LB_SCOPE_CLUSTER_IP);
	if (!svc)
		return 0;
	if (!svc->count)
		return VERDICT_DROP_NO_BACKEND;
	ct_key_of(&key, f, DIR_EGRESS);
	ct = ct_lookup(&key, f, DIR_EGRESS, now);
	if (ct && (ct->flags & CT_F_SERVICE)) {
		x->to.addr = ct->nat_addr;
		x->to.port = ct->nat_port;
	} else {
		if (f->no_l4 || lb_select(svc, f, f->saddr, now, &x->to) < 0)
			return VERDICT_DROP_NO_BACKEND;
		x->fresh = 1;
	}
	x->hairpin = x->to.addr == f->saddr;
	x->vip = f->daddr;
	x->vport = f->dport;
	if (nat_rewrite(skb, f, NAT_DST, x->to.addr, x->to.port) < 0)
		return VERDICT_DROP_MALFORMED;
	x->active = 1;
	return 0;
}

/* Remembers an allowed new flow's backend under its original tuple (client, VIP, ports). */
static __always_inline void lb_remember(const struct flow *f, const struct lb_xlate *x,
					__u32 verdict, __u64 now)
{
	struct ct_key key __attribute__((aligned(8))) = {
		.local = f->saddr,
		.remote = x->vip,
		.lport = f->sport,
		.rport = x->vport,
		.proto = f->proto,
	};

	ct_create(&key, f, DIR_EGRESS, verdict, now, x->to.addr, x->to.port,
		  CT_F_SERVICE | CT_F_REPLY_SEEN);
}

#endif /* NETCC_LB_H */
