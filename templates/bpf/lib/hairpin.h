/* SPDX-License-Identifier: GPL-2.0 */
/* Hairpin: a pod reaching itself through a service (its own cluster IP or nodePort).
 *
 * As kube-proxy does, the flow is masqueraded: after the destination NAT to the pod itself
 * (lb.h) and the pod's egress verdict (ALLOW_SELF), the source becomes the pod's gateway, its
 * node's router address (endpoint_info.router), and the packet is sent back into the pod
 * through its own veth (MAC addresses swapped, redirect to the veth's egress). The pod's
 * ingress policy judges it as coming from its node (the router address is an ipcache entry
 * of this node: ALLOW_FROM_HOST), like kube-proxy's masqueraded hairpin. That judgment is a
 * conntrack entry (pod, router address, ports) with CT_F_HAIRPIN and the pod's own address
 * and port in nat_addr/nat_port: the answer the pod sends to the router address gets its own
 * address back as destination and is sent into the pod again, where the service flow's entry
 * turns its source back into the service address (enforce.h).
 */
#ifndef NETCC_HAIRPIN_H
#define NETCC_HAIRPIN_H

#include "common.h"
#include "maps.h"
#include "verdicts.h"
#include "parse.h"
#include "conntrack.h"
#include "nat.h"

/* Sends the packet back into the pod it came from: out of the same veth, MACs swapped. */
static __always_inline int hairpin_return(struct __sk_buff *skb)
{
	__u8 mac[2 * ETH_ALEN], swapped[2 * ETH_ALEN];

	if (bpf_skb_load_bytes(skb, 0, mac, sizeof(mac)) < 0)
		return TC_ACT_SHOT;
	__builtin_memcpy(swapped, mac + ETH_ALEN, ETH_ALEN);
	__builtin_memcpy(swapped + ETH_ALEN, mac, ETH_ALEN);
	if (bpf_skb_store_bytes(skb, 0, swapped, sizeof(swapped), 0) < 0)
		return TC_ACT_SHOT;
	return bpf_redirect(skb->ifindex, 0);
}

/* Masquerades a hairpin packet (already translated to the pod itself) to the router address
 * and returns the key of its conntrack entry in the pod's ingress direction, or -1. */
static __always_inline int hairpin_masquerade(struct __sk_buff *skb, const struct endpoint_info *ep,
					      struct flow *f, struct ct_key *key)
{
	if (!ep->router || nat_rewrite(skb, f, NAT_SRC, ep->router, f->sport) < 0)
		return -1;
	ct_key_of(key, f, DIR_INGRESS);
	return 0;
}

/* A hairpin flow's answer (the pod to its router address): back to the pod's own address. */
static __always_inline int hairpin_answer(struct __sk_buff *skb, struct flow *f,
					  const struct ct_entry *ct)
{
	if (nat_rewrite(skb, f, NAT_DST, ct->nat_addr, ct->nat_port) < 0)
		return TC_ACT_SHOT;
	return hairpin_return(skb);
}

#endif /* NETCC_HAIRPIN_H */
