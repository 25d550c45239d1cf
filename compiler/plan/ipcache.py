"""`netcc_ipcache` and `netcc_ipcache_cidr`: what a node knows about every remote address.

- The exact ipcache holds every pod address (its identity, peer class and workload number)
  and every node's address and router address (identity remote-node; on the node itself,
  identity host with `IPCACHE_F_HOST`).
- The LPM ipcache holds the address space outside the pods, cut into regions along the
  policies' ipBlocks, each with its peer class (identity world). With workload classes, each
  node's podCIDR is an entry too, flagged `IPCACHE_F_CLASS_BLOCKS` (its prefix length in the
  flags): the datapath looks the address's offset up in `netcc_class_blocks`, which holds
  every class's block (its identity and peer class), and keeps the podCIDR entry's own values
  (world, the podCIDR's peer class) for offsets no block holds. A podCIDR that ipBlocks cut
  gets entries per class block instead (`netcc.resolve.class_addresses`).

All nodes hold the same entries but for their own two addresses, so the entries are built and
sorted once, as remote nodes see them, and each node's copy swaps its own in place: nodes
share the entry objects (and the emitter renders each once).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from netcc.contract import constants
from netcc.contract.entries import ClassBlockKey, Entry, IpcacheEntry, IpcacheKey, IpcacheLpmKey
from netcc.resolve.resolution import Resolution

POD = constants.IPCACHE_FLAGS["IPCACHE_F_POD"]
HOST = constants.IPCACHE_FLAGS["IPCACHE_F_HOST"]
CLASS_BLOCKS = constants.IPCACHE_F_CLASS_BLOCKS


@dataclass(frozen=True)
class Ipcache:
    """Every node's exact ipcache: one list of entries, but for each node's own addresses."""

    shared: tuple[Entry, ...]  # sorted by address, every node address as seen remotely
    own: dict[str, list[tuple[int, Entry]]]  # node -> (position in shared, its own entry)

    def for_node(self, name: str) -> tuple[Entry, ...]:
        """The ipcache of node `name`, sorted by address."""
        entries = list(self.shared)
        for position, entry in self.own.get(name, ()):
            entries[position] = entry
        return tuple(entries)


def plan_ipcache(r: Resolution) -> Ipcache:
    """Every node's exact ipcache (see `Ipcache`)."""
    addr_class = r.peers.of_address
    rows: list[tuple[int, Entry]] = []  # (address, entry), in spec order
    for w in r.cluster.workloads:
        identity, number = r.identities[w.key].number, r.workload_numbers[w.key]
        for ip in w.ips:
            value = IpcacheEntry(identity, addr_class[ip], number, POD)
            rows.append((int(ip), Entry(IpcacheKey(str(ip)), value, w.key)))
    own_rows: dict[str, list[tuple[int, Entry]]] = defaultdict(list)  # node -> (row, entry)
    for n in r.cluster.nodes:
        for ip, what in ((n.address, "address"), (n.router_ip, "router address")):
            own_rows[n.name].append((len(rows), _node_address(r, ip, what, n.name, True)))
            rows.append((int(ip), _node_address(r, ip, what, n.name, False)))
    order = sorted(range(len(rows)), key=lambda i: rows[i][0])  # stable, as sorting entries
    position = {row: pos for pos, row in enumerate(order)}
    own = {
        name: [(position[row], entry) for row, entry in entries]
        for name, entries in own_rows.items()
    }
    return Ipcache(tuple(rows[i][1] for i in order), own)


def _node_address(r: Resolution, ip: IPv4Address, what: str, node: str, own: bool) -> Entry:
    """The ipcache entry of a node's address, on that node (`own`) or on another."""
    value = IpcacheEntry(
        identity=constants.IDENTITY_HOST if own else constants.IDENTITY_REMOTE_NODE,
        peer=r.peers.of_address[ip],
        workload=0,
        flags=HOST if own else 0,
    )
    note = "this node" if own else f"node {node}"
    return Entry(IpcacheKey(str(ip)), value, f"{note}: {what}")


def cidr_entries(r: Resolution) -> tuple[Entry, ...]:
    """The ipcache LPM entries (the same on every node), sorted by address and length."""
    region_class: dict[IPv4Network, int] = r.peers.of_region
    by_network = {
        n: Entry(
            IpcacheLpmKey(prefixlen=n.prefixlen, ip=str(n.network_address)),
            IpcacheEntry(constants.IDENTITY_WORLD, region_class[n], 0, 0),
            str(n),
        )
        for n in region_class
    }
    by_network.update(_class_cidr_entries(r))  # a region that is a podCIDR or block: replaced
    return tuple(
        by_network[n]
        for n in sorted(by_network, key=lambda n: (int(n.network_address), n.prefixlen))
    )


def _class_cidr_entries(r: Resolution) -> dict[IPv4Network, Entry]:
    """The LPM entries of the classes' addresses: plain nodes' podCIDRs, cut nodes' blocks."""
    out: dict[IPv4Network, Entry] = {}
    peers = r.peers
    for node in peers.addresses.plain:
        n = r.cluster.node(node).pod_cidr
        flags = CLASS_BLOCKS | n.prefixlen << constants.IPCACHE_PODCIDR_SHIFT
        value = IpcacheEntry(constants.IDENTITY_WORLD, peers.of_pod_cidr[node], 0, flags)
        note = f"node {node}: podCIDR, class blocks by offset"
        out[n] = Entry(IpcacheLpmKey(prefixlen=n.prefixlen, ip=str(n.network_address)), value, note)
    for node, regions in peers.addresses.cut.items():
        for region in regions:
            n = region.network
            value = IpcacheEntry(
                r.identities[region.cls].number, peers.of_class_region[(node, n)], 0, POD
            )
            note = f"node {node}: class {region.cls} (an ipBlock cuts its podCIDR)"
            key = IpcacheLpmKey(prefixlen=n.prefixlen, ip=str(n.network_address))
            out[n] = Entry(key, value, note)
    return out


def class_block_entries(r: Resolution) -> tuple[Entry, ...]:
    """`netcc_class_blocks`: every class's block by offset (the same on every node), with the
    class's identity and its peer class on plain nodes; sorted by offset."""
    peers = r.peers
    if not peers.addresses.plain:
        return ()  # every podCIDR is cut: no lookup reaches the map
    rows = []
    for key, block in peers.addresses.blocks.items():
        value = IpcacheEntry(r.identities[key].number, peers.of_class[key], 0, POD)
        rows.append(Entry(ClassBlockKey(block.prefixlen, block.offset), value, f"class {key}"))
    return tuple(sorted(rows, key=lambda e: (e.key.offset, e.key.prefixlen)))
