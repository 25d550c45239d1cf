// SPDX-License-Identifier: GPL-2.0
/* Rejected by the verifier: reads a map value without checking the lookup for NULL.
 * (A hash map: recent kernels prove constant-key array lookups non-NULL.)
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

SEC("tc")
int netcc_bad(struct __sk_buff *skb)
{
	__u32 key = 0;
	__u64 *value = bpf_map_lookup_elem(&counters, &key);

	return *value ? 2 : 0; /* no NULL check: "invalid mem access 'map_value_or_null'" */
}

char LICENSE[] SEC("license") = "GPL";
