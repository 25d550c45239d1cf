// SPDX-License-Identifier: GPL-2.0
/* Test program for netcc.loader: a tc classifier with one map of every kind netcc uses.
 *
 * Drops IPv4 packets whose source is in deny_cidr (LPM) or whose (proto, dport) is in
 * deny_port (hash); records each source in seen (LRU hash) and counts packets per verdict in
 * stats (per-CPU array). Everything else (and non-IP) passes.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define VERDICT_PASS 1
#define VERDICT_NON_IP 2
#define MAX_VERDICTS 64

struct lpm_key {
	__u32 prefixlen;
	__be32 ip;
};

struct port_key {
	__be16 port;
	__u8 proto;
	__u8 pad;
};

struct deny_entry {
	__u32 verdict;
	__be32 mark;
	__u16 weight;
	__u8 class;
	__u8 pad;
};

struct seen_key {
	__be32 src;
};

struct seen_entry {
	__u64 packets;
};

struct stats_entry {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 64);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_key);
	__type(value, struct deny_entry);
} deny_cidr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct port_key);
	__type(value, struct deny_entry);
} deny_port SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 128);
	__type(key, struct seen_key);
	__type(value, struct seen_entry);
} seen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_VERDICTS);
	__type(key, __u32);
	__type(value, struct stats_entry);
} stats SEC(".maps");

static __always_inline void count(__u32 verdict, __u32 len)
{
	struct stats_entry *s = bpf_map_lookup_elem(&stats, &verdict);

	if (s) {
		s->packets++;
		s->bytes += len;
	}
}

SEC("tc")
int netcc_test(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct deny_entry *deny;

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP)) {
		count(VERDICT_NON_IP, skb->len);
		return TC_ACT_OK;
	}

	struct seen_key sk = { .src = ip->saddr };
	struct seen_entry *se = bpf_map_lookup_elem(&seen, &sk);
	if (se) {
		__sync_fetch_and_add(&se->packets, 1);
	} else {
		struct seen_entry first = { .packets = 1 };
		bpf_map_update_elem(&seen, &sk, &first, BPF_NOEXIST);
	}

	struct lpm_key lk = { .prefixlen = 32, .ip = ip->saddr };
	deny = bpf_map_lookup_elem(&deny_cidr, &lk);
	if (deny) {
		count(deny->verdict, skb->len);
		return TC_ACT_SHOT;
	}

	if (ip->ihl == 5 && (ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP)) {
		__be16 *ports = (void *)(ip + 1);

		if ((void *)(ports + 2) > data_end)
			return TC_ACT_SHOT;
		struct port_key pk = { .port = ports[1], .proto = ip->protocol };
		deny = bpf_map_lookup_elem(&deny_port, &pk);
		if (deny) {
			count(deny->verdict, skb->len);
			return TC_ACT_SHOT;
		}
	}
	count(VERDICT_PASS, skb->len);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
