/* SPDX-License-Identifier: GPL-2.0 */
/* IP -> identity. Pod and node addresses match exactly (hash); everything else falls through
 * to an LPM trie whose regions are cut along the policies' ipBlocks, with 0.0.0.0/0 as world.
 * The entry's `peer` is the peer class the policy map is keyed on.
 */
#ifndef NETCC_IPCACHE_H
#define NETCC_IPCACHE_H

#include "common.h"
#include "maps.h"

static __always_inline struct ipcache_entry *ipcache_lookup(__be32 addr)
{
	struct ipcache_key key = { .ip = addr };
	struct ipcache_lpm_key lpm = { .prefixlen = 32, .ip = addr };
	struct ipcache_entry *e;

	e = bpf_map_lookup_elem(&netcc_ipcache, &key);
	if (e)
		return e;
	return bpf_map_lookup_elem(&netcc_ipcache_cidr, &lpm);
}

#endif /* NETCC_IPCACHE_H */
