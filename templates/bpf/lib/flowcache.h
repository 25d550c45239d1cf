/* SPDX-License-Identifier: GPL-2.0 */
/* A per-CPU, direct-mapped cache of established connections in front of conntrack.
 *
 * A hit costs an inlined array access and a compare instead of a hash lookup. It is only a
 * shortcut, never the state: an entry is made from a live conntrack entry, is keyed by the
 * connection and the direction (so the first reply still reaches conntrack and marks it
 * answered), and sends the packet to the slow path when it is older than
 * FLOW_CACHE_REFRESH_JIFFIES (which keeps conntrack's expiry current), when the packet carries
 * SYN, FIN or RST (which change conntrack's state), or when it arrives on another interface
 * than the pod's (spoofing). Age is counted in jiffies, which cost nothing to read: 256 of
 * them are 0.26 s at HZ=1000 and 2.6 s at HZ=100, always far below the shortest conntrack
 * lifetime (NETCC_CT_CLOSE_LIFETIME), so a connection that went idle never hits the cache.
 *
 * A tuple can change hands within that time: a pod that just closed a connection straight to a
 * backend may open one with the same ports through a service, which DNAT turns into the same
 * tuple. The replies of the new connection must be translated back, which only the slow path
 * does. So each slot has a generation in netcc_flow_cache_gen, an array every CPU shares; an
 * entry is good only while its generation is the slot's, and a translated connection bumps
 * the generation of its tuple's slots when it is created (flow_cache_invalidate): every CPU's
 * shortcut for the old connection is gone at once.
 */
#ifndef NETCC_FLOWCACHE_H
#define NETCC_FLOWCACHE_H

#include "common.h"
#include "maps.h"
#include "parse.h"

#define FLOW_CACHE_REFRESH_JIFFIES 256
#define TCP_STATE_FLAGS (TCP_FLAG_SYN | TCP_FLAG_FIN | TCP_FLAG_RST)

static __always_inline __u32 flow_cache_index(const struct ct_key *key, __u8 dir)
{
	__u32 h = key->local ^ (key->remote * 0x9E3779B1u) ^
		  (((__u32)key->lport << 16 | key->rport) * 0x85EBCA6Bu) ^ key->proto ^
		  ((__u32)dir << 8);

	return (h ^ (h >> 15)) & (NETCC_FLOW_CACHE_SLOTS - 1);
}

/* This CPU's entry for the connection and direction, and the slot's current generation. */
static __always_inline struct flow_cache_entry *flow_cache_slot(const struct ct_key *key, __u8 dir,
								__u16 *gen)
{
	__u32 slot = flow_cache_index(key, dir);
	struct flow_cache_gen *g = bpf_map_lookup_elem(&netcc_flow_cache_gen, &slot);

	if (!g)
		return NULL;
	*gen = (__u16)g->gen;
	return bpf_map_lookup_elem(&netcc_flow_cache, &slot);
}

/* A translated connection now owns `key`: no CPU may use a shortcut made for its tuple. */
static __always_inline void flow_cache_invalidate(const struct ct_key *key)
{
	__u32 slot = flow_cache_index(key, DIR_INGRESS);
	struct flow_cache_gen *g = bpf_map_lookup_elem(&netcc_flow_cache_gen, &slot);

	if (g)
		__sync_fetch_and_add(&g->gen, 1);
	slot = flow_cache_index(key, DIR_EGRESS);
	g = bpf_map_lookup_elem(&netcc_flow_cache_gen, &slot);
	if (g)
		__sync_fetch_and_add(&g->gen, 1);
}

/* The cache entry's first 16 bytes are the ct_key's, with `dir` in the key's first pad byte and
 * `gen` in the next two. */
static __always_inline int flow_cache_hit(const struct flow_cache_entry *fc,
					  const struct ct_key *key, __u8 dir, __u16 gen,
					  const struct flow *f, struct __sk_buff *skb)
{
	const __u64 *want = (const __u64 *)key, *have = (const __u64 *)fc;

	return have[0] == want[0] &&
	       have[1] == (want[1] | (__u64)dir << 40 | (__u64)gen << 48) &&
	       bpf_jiffies64() < fc->refresh_at && !(f->tcp_flags & TCP_STATE_FLAGS) &&
	       (!fc->ifindex || fc->ifindex == skb->ifindex);
}

static __always_inline void flow_cache_fill(struct flow_cache_entry *fc, const struct ct_key *key,
					    __u8 dir, __u16 gen, __u32 ifindex, __u32 verdict)
{
	fc->local = key->local;
	fc->remote = key->remote;
	fc->lport = key->lport;
	fc->rport = key->rport;
	fc->proto = key->proto;
	fc->dir = dir;
	fc->ifindex = ifindex;
	fc->verdict = verdict;
	fc->gen = gen;
	fc->refresh_at = bpf_jiffies64() + FLOW_CACHE_REFRESH_JIFFIES;
}

#endif /* NETCC_FLOWCACHE_H */
