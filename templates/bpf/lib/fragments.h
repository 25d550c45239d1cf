/* SPDX-License-Identifier: GPL-2.0 */
/* IPv4 fragments. Only the first fragment of a datagram carries the L4 ports policy needs; it
 * leaves them in netcc_frags under (addresses, IP id, protocol), and every later fragment of
 * the datagram takes them from there and is judged exactly like the first (in practice: as an
 * established packet of the same connection). A later fragment that overtook its first one
 * has no ports to be judged by and is dropped (DROP_FRAGMENT) unless a rule allows every port.
 * The datagram's translation follows from the restored ports too: a later fragment of a
 * datagram to a service, of a service's reply, or of a NodePort flow finds the flow's
 * conntrack or netcc_lb_nat entry as its first fragment did and gets the same addresses; its
 * ports and L4 checksum live in the first fragment only, so nothing else changes (nat.h).
 * Every hook keeps its own entries: a key is the datagram as that hook sees it.
 */
#ifndef NETCC_FRAGMENTS_H
#define NETCC_FRAGMENTS_H

#include "common.h"
#include "maps.h"
#include "parse.h"

static __always_inline void fragment_track(struct flow *f)
{
	struct frag_key key = {
		.saddr = f->saddr,
		.daddr = f->daddr,
		.id = f->ip_id,
		.proto = f->proto,
	};
	struct frag_ports ports, *found;

	if (f->first_fragment) {
		ports.sport = f->sport;
		ports.dport = f->dport;
		bpf_map_update_elem(&netcc_frags, &key, &ports, BPF_ANY);
	} else if (f->nonfirst_fragment) {
		found = bpf_map_lookup_elem(&netcc_frags, &key);
		if (found) {
			f->sport = found->sport;
			f->dport = found->dport;
			f->nonfirst_fragment = 0;
		}
	}
}

#endif /* NETCC_FRAGMENTS_H */
