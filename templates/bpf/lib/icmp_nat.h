/* SPDX-License-Identifier: GPL-2.0 */
/* ICMP errors about translated flows (services).
 *
 * An ICMP error (unreachable, "fragmentation needed" of path-MTU discovery, time exceeded)
 * quotes the header of the packet that caused it. For a flow a pod sent to a service, that
 * packet was translated: the router or backend quotes client -> backend:targetPort, while the
 * client's socket knows client -> service:port only and would ignore the error (a TCP
 * connection through a smaller MTU black-holes). So, at the client pod's veth, the quote is
 * turned back into what the pod sent (quoted destination: the service address and port), and
 * the outer source too when the backend itself reports; the reverse holds for an error the
 * pod sends about a reply it got from the service address: the quote and the outer
 * destination become the backend. The pod's policy then treats the error as before:
 * ALLOW_RELATED to the connection it quotes (enforce.h). nodeport.h does the same at the
 * uplink for NodePort flows.
 * Checksums: the quoted IP header's checksum is updated with its address, and the ICMP
 * checksum (which covers the quote) with every changed byte. The quoted TCP/UDP checksum is
 * left as it was: the receiving stack never verifies it (the quote is usually truncated, so it
 * could not), it matches the error to a socket by addresses and ports only.
 * Only errors whose quoted flow has a translation pay the lookup: parse.h sets icmp_error.
 */
#ifndef NETCC_ICMP_NAT_H
#define NETCC_ICMP_NAT_H

#include <stddef.h>
#include "common.h"
#include "maps.h"
#include "parse.h"
#include "conntrack.h"
#include "nat.h"

/* Rewrites the source (NAT_SRC) or destination of the packet an ICMP error quotes (parse.h
 * took a 20-byte IPv4 header and the ports) and `f->inner`. Returns 0, or -1. */
static __always_inline int icmp_quote_rewrite(struct __sk_buff *skb, struct flow *f, int src,
					      __be32 addr, __be16 port)
{
	__be32 old_addr = src ? f->inner.saddr : f->inner.daddr;
	__be16 old_port = src ? f->inner.sport : f->inner.dport;
	__u32 icmp, ip, csum;
	__sum16 old_sum, new_sum;
	__u8 vihl;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &vihl, 1) < 0)
		return -1;
	icmp = ETH_HLEN + (vihl & 0x0F) * 4;
	csum = icmp + offsetof(struct icmphdr, checksum);
	ip = icmp + sizeof(struct icmphdr);
	if (old_addr != addr) {
		if (bpf_skb_load_bytes(skb, ip + offsetof(struct iphdr, check), &old_sum, 2) < 0 ||
		    bpf_l3_csum_replace(skb, ip + offsetof(struct iphdr, check), old_addr, addr, 4) < 0 ||
		    bpf_skb_store_bytes(skb, ip + (src ? offsetof(struct iphdr, saddr) :
							 offsetof(struct iphdr, daddr)),
					&addr, 4, 0) < 0 ||
		    bpf_skb_load_bytes(skb, ip + offsetof(struct iphdr, check), &new_sum, 2) < 0)
			return -1;
		/* the ICMP checksum covers the quote: its address and its header checksum */
		if (bpf_l4_csum_replace(skb, csum, old_addr, addr, 4) < 0 ||
		    bpf_l4_csum_replace(skb, csum, old_sum, new_sum, 2) < 0)
			return -1;
	}
	if (old_port != port) {
		if (bpf_l4_csum_replace(skb, csum, old_port, port, 2) < 0 ||
		    bpf_skb_store_bytes(skb, ip + sizeof(struct iphdr) + (src ? 0 : 2), &port, 2, 0) < 0)
			return -1;
	}
	if (src) {
		f->inner.saddr = addr;
		f->inner.sport = port;
	} else {
		f->inner.daddr = addr;
		f->inner.dport = port;
	}
	return 0;
}

/* An ICMP error at a pod's veth about a flow the pod sent to a service (see the top of this
 * file): rewritten to quote the untranslated packet. Returns 0 (rewritten, or not about such
 * a flow), or -1 when the packet could not be written. */
static __always_inline int icmp_error_of_service(struct __sk_buff *skb, struct flow *f, __u8 dir,
						 __u64 now)
{
	struct ct_key key __attribute__((aligned(8))) = {};
	struct ct_entry *ct;
	__be32 backend;

	ct_key_of_inner(&key, &f->inner, dir);
	ct = bpf_map_lookup_elem(&netcc_ct, &key);
	if (!ct || ct->expires <= now || !ct->nat_addr || (ct->flags & CT_F_HAIRPIN))
		return 0;
	if (dir == DIR_INGRESS) {
		/* quoted: client -> backend (the translated tuple's entry holds the service) */
		if (ct->flags & CT_F_SERVICE)
			return 0;
		backend = f->inner.daddr;
		if (icmp_quote_rewrite(skb, f, NAT_DST, ct->nat_addr, ct->nat_port) < 0)
			return -1;
		if (f->saddr == backend && nat_rewrite(skb, f, NAT_SRC, ct->nat_addr, f->sport) < 0)
			return -1;
		return 0;
	}
	/* quoted: service -> client, a reply the pod got (the original tuple's entry: backend) */
	if (!(ct->flags & CT_F_SERVICE))
		return 0;
	if (f->daddr == f->inner.saddr && nat_rewrite(skb, f, NAT_DST, ct->nat_addr, f->dport) < 0)
		return -1;
	return icmp_quote_rewrite(skb, f, NAT_SRC, ct->nat_addr, ct->nat_port);
}

#endif /* NETCC_ICMP_NAT_H */
