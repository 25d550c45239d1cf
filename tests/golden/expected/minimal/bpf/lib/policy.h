/* SPDX-License-Identifier: GPL-2.0 */
/* Policy lookup for a new connection.
 *
 * The compiler expands every rule into allow entries keyed (profile, peer class, direction,
 * protocol, port); named ports are already resolved per destination pod, a rule without peers
 * gives entries for PEER_ANY. Single ports (the common case) sit in a hash map; port ranges
 * become a few prefixes and rules without ports or protocols one wildcard entry, in an LPM
 * trie. A verdict is then: the peer's class in the hash, PEER_ANY in the hash, and only for a
 * profile that has such entries (ENDPOINT_F_*_RANGES), the same two in the trie. Each entry
 * holds the verdict number of its rule.
 */
#ifndef NETCC_POLICY_H
#define NETCC_POLICY_H

#include "common.h"
#include "maps.h"

static __always_inline __u32 policy_lookup_exact(__u32 profile, __u32 peer, __u8 dir,
						 __u8 proto, __be16 port)
{
	struct policy_exact_key key = {
		.profile = profile,
		.peer = peer,
		.dir = dir,
		.proto = proto,
		.port = port,
	};
	struct policy_entry *e = bpf_map_lookup_elem(&netcc_policy_exact, &key);

	return e ? e->verdict : 0;
}

static __always_inline __u32 policy_lookup(__u32 profile, __u32 peer, __u8 dir, __u8 proto,
					   __be16 port)
{
	struct policy_key key = {
		.prefixlen = POLICY_PREFIX_FULL,
		.profile = profile,
		.peer = peer,
		.dir = dir,
		.proto = proto,
		.port = port,
	};
	struct policy_entry *e = bpf_map_lookup_elem(&netcc_policy, &key);

	return e ? e->verdict : 0;
}

/* Returns the allowing verdict, or 0 when no rule of the pod's policies allows the flow. */
static __always_inline __u32 policy_can_access(const struct endpoint_info *ep,
					       const struct ipcache_entry *peer, __u8 dir,
					       __u8 proto, __be16 port)
{
	__u32 any = dir == DIR_INGRESS ? ENDPOINT_F_INGRESS_ANY : ENDPOINT_F_EGRESS_ANY;
	__u32 ranges = dir == DIR_INGRESS ? ENDPOINT_F_INGRESS_RANGES : ENDPOINT_F_EGRESS_RANGES;
	__u32 verdict;

	verdict = policy_lookup_exact(ep->profile, peer->peer, dir, proto, port);
	if (!verdict && (ep->flags & any))
		verdict = policy_lookup_exact(ep->profile, PEER_ANY, dir, proto, port);
	if (verdict || !(ep->flags & ranges))
		return verdict;
	verdict = policy_lookup(ep->profile, peer->peer, dir, proto, port);
	if (!verdict && (ep->flags & any))
		verdict = policy_lookup(ep->profile, PEER_ANY, dir, proto, port);
	return verdict;
}

#endif /* NETCC_POLICY_H */
