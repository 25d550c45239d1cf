/* SPDX-License-Identifier: GPL-2.0 */
/* Address and port translation of IPv4 TCP and UDP packets, checksums kept right.
 *
 * The IP header checksum changes with the address; the L4 checksum with the port and, through
 * the pseudo-header, with the address (BPF_F_PSEUDO_HDR). A UDP checksum of 0 (none) stays 0
 * (BPF_F_MARK_MANGLED_0). A non-first fragment has no L4 header: only its address changes.
 */
#ifndef NETCC_NAT_H
#define NETCC_NAT_H

#include <stddef.h>
#include "common.h"
#include "parse.h"

#define NAT_SRC 1
#define NAT_DST 0
#define IP_CSUM_OFF (ETH_HLEN + offsetof(struct iphdr, check))
#define IP_SADDR_OFF (ETH_HLEN + offsetof(struct iphdr, saddr))
#define IP_DADDR_OFF (ETH_HLEN + offsetof(struct iphdr, daddr))

/* Offset of the L4 checksum and the csum_replace flags; 0 when there is none to update. */
static __always_inline __u32 nat_l4_csum(struct __sk_buff *skb, __u8 proto, __u32 *l4,
					 __u64 *flags)
{
	__u8 vihl;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &vihl, 1) < 0)
		return 0;
	*l4 = ETH_HLEN + (vihl & 0x0F) * 4;
	if (proto == IPPROTO_TCP) {
		*flags = 0;
		return *l4 + offsetof(struct tcphdr, check);
	}
	if (proto == IPPROTO_UDP) {
		*flags = BPF_F_MARK_MANGLED_0;
		return *l4 + offsetof(struct udphdr, check);
	}
	return 0;
}

/* Rewrites the source (NAT_SRC) or destination address and port of the packet and of `f`.
 * Returns 0, or -1 when the packet could not be written. */
static __always_inline int nat_rewrite(struct __sk_buff *skb, struct flow *f, int src,
				       __be32 addr, __be16 port)
{
	__be32 old_addr = src ? f->saddr : f->daddr;
	__be16 old_port = src ? f->sport : f->dport;
	__u32 l4 = 0, csum;
	__u64 flags = 0;

	csum = nat_l4_csum(skb, f->proto, &l4, &flags);
	if (csum && !f->no_l4) {
		if (old_port != port) {
			if (bpf_l4_csum_replace(skb, csum, old_port, port, flags | 2) < 0 ||
			    bpf_skb_store_bytes(skb, l4 + (src ? 0 : 2), &port, 2, 0) < 0)
				return -1;
		}
		if (old_addr != addr &&
		    bpf_l4_csum_replace(skb, csum, old_addr, addr, flags | BPF_F_PSEUDO_HDR | 4) < 0)
			return -1;
	}
	if (old_addr != addr) {
		if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, old_addr, addr, 4) < 0 ||
		    bpf_skb_store_bytes(skb, src ? IP_SADDR_OFF : IP_DADDR_OFF, &addr, 4, 0) < 0)
			return -1;
	}
	if (src) {
		f->saddr = addr;
		f->sport = port;
	} else {
		f->daddr = addr;
		f->dport = port;
	}
	return 0;
}

#endif /* NETCC_NAT_H */
