/* SPDX-License-Identifier: GPL-2.0 */
/* Packet parsing: Ethernet + IPv4 + the first bytes of L4 into a struct flow.
 *
 * Ports are read for TCP, UDP and SCTP (all keep them in the first four bytes of their
 * header). ICMP echo uses its identifier as the port of the side that chose it, so that a
 * request and its reply share one conntrack entry. Non-first fragments carry no L4 header:
 * fragments.h restores their ports from the first fragment. ICMP errors (unreachable, time
 * exceeded, parameter problem) carry the header of the packet that caused them: its tuple is
 * parsed into `inner`, so conntrack can recognise the error as related to a connection.
 */
#ifndef NETCC_PARSE_H
#define NETCC_PARSE_H

#include "common.h"

#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF
#ifndef IPPROTO_SCTP
#define IPPROTO_SCTP 132
#endif

enum parse_result {
	PARSE_IPV4 = 0,
	PARSE_NON_IP,
	PARSE_IPV6,
	PARSE_MALFORMED,
};

struct tuple {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
};

struct flow {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 tcp_flags;
	__u8 nonfirst_fragment; /* ports unknown (fragments.h clears it once restored) */
	__u8 first_fragment;	/* offset 0 with more fragments to come */
	__u8 no_l4;		/* a non-first fragment: no L4 header to rewrite (nat.h) */
	__u8 icmpv6_nd;	     /* IPv6 neighbour discovery */
	__u8 icmp_error;     /* `inner` holds the offending packet's tuple */
	__be16 ip_id;
	struct tuple inner;
};

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

static __always_inline int parse_ipv6(void *data, void *end, struct flow *f)
{
	struct ipv6hdr *ip6 = data;
	__u8 *icmp6;

	if ((void *)(ip6 + 1) > end)
		return PARSE_MALFORMED;
	if (ip6->nexthdr == 58 /* ICMPv6 */) {
		icmp6 = (void *)(ip6 + 1);
		if ((void *)(icmp6 + 1) > end)
			return PARSE_MALFORMED;
		/* 133..137: router/neighbour solicitation and advertisement, redirect */
		f->icmpv6_nd = *icmp6 >= 133 && *icmp6 <= 137;
	}
	return PARSE_IPV6;
}

/* The header an ICMP error quotes: IPv4 plus the first 4 bytes (ports) of its L4 header. */
static __always_inline int parse_icmp_error(void *data, void *end, struct flow *f)
{
	struct iphdr *ip = data;
	__be16 *ports;

	if ((void *)(ip + 1) > end || ip->ihl != 5)
		return 0;
	f->inner.saddr = ip->saddr;
	f->inner.daddr = ip->daddr;
	f->inner.proto = ip->protocol;
	if (ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP ||
	    ip->protocol == IPPROTO_SCTP) {
		ports = (void *)(ip + 1);
		if ((void *)(ports + 2) > end)
			return 0;
		f->inner.sport = ports[0];
		f->inner.dport = ports[1];
	}
	return 1;
}

static __always_inline int parse_packet(struct __sk_buff *skb, struct flow *f)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	__u32 ihl;

	if ((void *)(eth + 1) > end)
		return PARSE_MALFORMED;
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(eth + 1, end, f);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return PARSE_NON_IP;

	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return PARSE_MALFORMED;
	ihl = ip->ihl * 4;
	if (ip->version != 4 || ihl < sizeof(*ip))
		return PARSE_MALFORMED;
	f->saddr = ip->saddr;
	f->daddr = ip->daddr;
	f->proto = ip->protocol;
	f->ip_id = ip->id;
	if (ip->frag_off & bpf_htons(IP_OFFSET)) {
		f->nonfirst_fragment = 1;
		f->no_l4 = 1;
		return PARSE_IPV4;
	}
	f->first_fragment = !!(ip->frag_off & bpf_htons(IP_MF));

	data = (void *)ip + ihl;
	switch (f->proto) {
	case IPPROTO_TCP: {
		struct tcphdr *th = data;

		if ((void *)(th + 1) > end)
			return PARSE_MALFORMED;
		f->sport = th->source;
		f->dport = th->dest;
		f->tcp_flags = ((__u8 *)th)[13];
		break;
	}
	case IPPROTO_UDP:
	case IPPROTO_SCTP: {
		__be16 *ports = data;

		if ((void *)(ports + 2) > end)
			return PARSE_MALFORMED;
		f->sport = ports[0];
		f->dport = ports[1];
		break;
	}
	case IPPROTO_ICMP: {
		struct icmphdr *ic = data;

		if ((void *)(ic + 1) > end)
			return PARSE_MALFORMED;
		if (ic->type == ICMP_ECHO)
			f->sport = ic->un.echo.id;
		else if (ic->type == ICMP_ECHOREPLY)
			f->dport = ic->un.echo.id;
		else if (ic->type == ICMP_DEST_UNREACH || ic->type == ICMP_TIME_EXCEEDED ||
			 ic->type == ICMP_PARAMETERPROB)
			f->icmp_error = parse_icmp_error(ic + 1, end, f);
		break;
	}
	default:
		break;
	}
	return PARSE_IPV4;
}

#endif /* NETCC_PARSE_H */
