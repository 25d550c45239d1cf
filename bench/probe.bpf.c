/* SPDX-License-Identifier: GPL-2.0 */
/* Probes for bench/datapath_parts.py: each program does one step of netcc's datapath on the
 * real, filled maps of a loaded node (the maps are shared through bpffs pins), so that its
 * cost minus probe_empty's is the cost of that step alone.
 *
 * Built with -I OUT/bpf against the generated maps.h, with the keys given by -D:
 *   LOCAL_IP, REMOTE_IP (__be32 as stored), DIR, ALLOW_PROFILE, ALLOW_PEER, ALLOW_PORT,
 *   DENY_PROFILE, DENY_PEER, DENY_PORT (host order); HAVE_POLICY_EXACT when the output has
 *   the exact-port hash map netcc_policy_exact.
 */
#include "maps.h"

static __always_inline int keep(const void *p)
{
	return p ? TC_ACT_OK : TC_ACT_OK; /* the helper call itself cannot be dropped */
}

static __always_inline struct policy_key policy_key(__u32 profile, __u32 peer, __u16 port)
{
	struct policy_key k = {
		.prefixlen = POLICY_PREFIX_FULL,
		.profile = profile,
		.peer = peer,
		.dir = DIR,
		.proto = IPPROTO_TCP,
		.port = bpf_htons(port),
	};
	return k;
}

SEC("tc")
int probe_empty(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

SEC("tc")
int probe_endpoint(struct __sk_buff *skb)
{
	struct endpoint_key k = { .ip = LOCAL_IP };

	return keep(bpf_map_lookup_elem(&netcc_endpoints, &k));
}

SEC("tc")
int probe_ct_miss(struct __sk_buff *skb)
{
	struct ct_key k = {
		.local = LOCAL_IP,
		.remote = REMOTE_IP,
		.lport = bpf_htons(1),
		.rport = bpf_htons(2),
		.proto = IPPROTO_TCP,
	};

	return keep(bpf_map_lookup_elem(&netcc_ct, &k));
}

SEC("tc")
int probe_prandom(struct __sk_buff *skb)
{
	return bpf_get_prandom_u32() ? TC_ACT_OK : TC_ACT_OK;
}

/* A new connection each run (random ports): the LRU update of ct_create, evictions included
 * once the map is full. Subtract probe_prandom for the update alone. */
SEC("tc")
int probe_ct_create(struct __sk_buff *skb)
{
	__u32 r = bpf_get_prandom_u32();
	struct ct_key k = {
		.local = LOCAL_IP,
		.remote = REMOTE_IP,
		.lport = r >> 16,
		.rport = r,
		.proto = IPPROTO_TCP,
	};
	struct ct_entry v = { .expires = 1, .verdict = 1 };

	bpf_map_update_elem(&netcc_ct, &k, &v, BPF_ANY);
	return TC_ACT_OK;
}

SEC("tc")
int probe_ktime_coarse(struct __sk_buff *skb)
{
	return bpf_ktime_get_coarse_ns() ? TC_ACT_OK : TC_ACT_OK;
}

SEC("tc")
int probe_ipcache(struct __sk_buff *skb)
{
	struct ipcache_key k = { .ip = REMOTE_IP };

	return keep(bpf_map_lookup_elem(&netcc_ipcache, &k));
}

SEC("tc")
int probe_ipcache_cidr(struct __sk_buff *skb)
{
	struct ipcache_lpm_key k = { .prefixlen = 32, .ip = 0x08080808 };

	return keep(bpf_map_lookup_elem(&netcc_ipcache_cidr, &k));
}

#ifdef HAVE_POLICY_EXACT
static __always_inline struct policy_exact_key exact_key(__u32 profile, __u32 peer, __u16 port)
{
	struct policy_exact_key k = {
		.profile = profile,
		.peer = peer,
		.dir = DIR,
		.proto = IPPROTO_TCP,
		.port = bpf_htons(port),
	};
	return k;
}

SEC("tc")
int probe_exact_hit(struct __sk_buff *skb)
{
	struct policy_exact_key k = exact_key(ALLOW_PROFILE, ALLOW_PEER, ALLOW_PORT);

	return keep(bpf_map_lookup_elem(&netcc_policy_exact, &k));
}

SEC("tc")
int probe_exact_miss_peer(struct __sk_buff *skb)
{
	struct policy_exact_key k = exact_key(DENY_PROFILE, DENY_PEER, DENY_PORT);

	return keep(bpf_map_lookup_elem(&netcc_policy_exact, &k));
}

SEC("tc")
int probe_exact_miss_any(struct __sk_buff *skb)
{
	struct policy_exact_key k = exact_key(DENY_PROFILE, PEER_ANY, DENY_PORT);

	return keep(bpf_map_lookup_elem(&netcc_policy_exact, &k));
}
#endif

SEC("tc")
int probe_policy_hit(struct __sk_buff *skb)
{
	struct policy_key k = policy_key(ALLOW_PROFILE, ALLOW_PEER, ALLOW_PORT);

	return keep(bpf_map_lookup_elem(&netcc_policy, &k));
}

SEC("tc")
int probe_policy_miss_peer(struct __sk_buff *skb)
{
	struct policy_key k = policy_key(DENY_PROFILE, DENY_PEER, DENY_PORT);

	return keep(bpf_map_lookup_elem(&netcc_policy, &k));
}

SEC("tc")
int probe_policy_miss_any(struct __sk_buff *skb)
{
	struct policy_key k = policy_key(DENY_PROFILE, PEER_ANY, DENY_PORT);

	return keep(bpf_map_lookup_elem(&netcc_policy, &k));
}

SEC("tc")
int probe_stats(struct __sk_buff *skb)
{
	__u32 verdict = 1;
	struct verdict_stats *st = bpf_map_lookup_elem(&netcc_stats, &verdict);

	if (st) {
		st->packets++;
		st->bytes += skb->len;
	}
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
