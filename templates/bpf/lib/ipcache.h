/* SPDX-License-Identifier: GPL-2.0 */
/* IP -> identity. Pod and node addresses match exactly (hash); everything else falls through
 * to an LPM trie whose regions are cut along the policies' ipBlocks, with 0.0.0.0/0 as world.
 * The entry's `peer` is the peer class the policy map is keyed on.
 *
 * With workload classes (maps.h defines IPCACHE_F_CLASS_BLOCKS), each node's podCIDR is an
 * LPM entry flagged IPCACHE_F_CLASS_BLOCKS, and a class pod's address is known by its offset
 * inside it: netcc_class_blocks, an LPM trie on the offset, holds every class's block (the
 * same offset on every node, design: classes-and-cni.md section 3). An offset no block holds
 * keeps the podCIDR entry's own values.
 */
#ifndef NETCC_IPCACHE_H
#define NETCC_IPCACHE_H

#include "common.h"
#include "maps.h"

#ifdef IPCACHE_F_CLASS_BLOCKS
/* The class block holding `addr` inside the podCIDR of `cidr`, else `cidr` itself. The
 * podCIDR's prefix length sits in the entry's flags (IPCACHE_PODCIDR_SHIFT). */
static __always_inline struct ipcache_entry *class_block_lookup(__be32 addr,
								struct ipcache_entry *cidr)
{
	__u32 bits = (cidr->flags >> IPCACHE_PODCIDR_SHIFT) & 0x3f;
	__u32 host = bits >= 32 ? 0 : 0xffffffffu >> bits;
	struct class_block_key key = {
		.prefixlen = 32,
		.offset = bpf_htonl(bpf_ntohl(addr) & host),
	};
	struct ipcache_entry *e = bpf_map_lookup_elem(&netcc_class_blocks, &key);

	return e ? e : cidr;
}
#endif

static __always_inline struct ipcache_entry *ipcache_lookup(__be32 addr)
{
	struct ipcache_key key = { .ip = addr };
	struct ipcache_lpm_key lpm = { .prefixlen = 32, .ip = addr };
	struct ipcache_entry *e;

	e = bpf_map_lookup_elem(&netcc_ipcache, &key);
	if (e)
		return e;
	e = bpf_map_lookup_elem(&netcc_ipcache_cidr, &lpm);
#ifdef IPCACHE_F_CLASS_BLOCKS
	if (e && (e->flags & IPCACHE_F_CLASS_BLOCKS))
		return class_block_lookup(addr, e);
#endif
	return e;
}

#endif /* NETCC_IPCACHE_H */
