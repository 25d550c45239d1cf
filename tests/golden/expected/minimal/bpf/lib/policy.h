/* SPDX-License-Identifier: GPL-2.0 */
/* Policy lookup for a new connection.
 *
 * The compiler expands every rule into allow entries keyed (profile, peer class, direction,
 * protocol, port prefix); a port range becomes a few prefixes, a rule without ports one entry
 * at the all-protocols prefix, a rule without peers an entry for PEER_ANY. Named ports are
 * already resolved to numbers per destination pod. So a verdict is at most two LPM lookups:
 * the peer's own class, then PEER_ANY. Each entry holds the verdict number of its rule.
 */
#ifndef NETCC_POLICY_H
#define NETCC_POLICY_H

#include "common.h"
#include "maps.h"

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
	__u32 verdict;

	verdict = policy_lookup(ep->profile, peer->peer, dir, proto, port);
	if (verdict)
		return verdict;
	if (ep->flags & any)
		return policy_lookup(ep->profile, PEER_ANY, dir, proto, port);
	return 0;
}

#endif /* NETCC_POLICY_H */
