/* SPDX-License-Identifier: GPL-2.0 */
/* Baseline for bench/datapath_cost.py: the least a tc program that looks at a packet does.
 *
 * Parses Ethernet, then IPv4 (version and IHL checked, options skipped by IHL), then the first
 * four bytes of a TCP, UDP or SCTP header (the ports), each read behind a bounds check, and
 * stores addresses ^ protocol ^ ports in skb->cb[0] (so the compiler cannot drop the parse).
 * Returns TC_ACT_OK for every packet. No map lookups, no helpers, no counters.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int passthrough(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	__be16 *ports;
	__u32 ihl;

	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return TC_ACT_OK;
	ihl = ip->ihl * 4;
	if (ip->version != 4 || ihl < sizeof(*ip))
		return TC_ACT_OK;
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP &&
	    ip->protocol != IPPROTO_SCTP)
		return TC_ACT_OK;
	ports = (void *)ip + ihl;
	if ((void *)(ports + 2) > end)
		return TC_ACT_OK;
	skb->cb[0] = ((__u32)ports[0] << 16 | ports[1]) ^ ip->protocol ^ ip->saddr ^ ip->daddr;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
