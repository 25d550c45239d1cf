/* SPDX-License-Identifier: GPL-2.0 */
/* Per-verdict counters: every packet the datapath decides is counted under the verdict that
 * decided it (a rule, a reserved allow, or a pod's default deny). `netcc load status` and
 * `bpftool map dump name netcc_stats` read them; verdicts.h names every number.
 */
#ifndef NETCC_STATS_H
#define NETCC_STATS_H

#include "common.h"
#include "maps.h"

static __always_inline void count_verdict(__u32 verdict, struct __sk_buff *skb)
{
	struct verdict_stats *st = bpf_map_lookup_elem(&netcc_stats, &verdict);

	if (st) {
		st->packets++;
		st->bytes += skb->len;
	}
}

#endif /* NETCC_STATS_H */
