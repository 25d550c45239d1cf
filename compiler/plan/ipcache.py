"""`netcc_ipcache` and `netcc_ipcache_cidr`: what a node knows about every remote address.

- The exact ipcache holds every pod address (its identity, peer class and workload number)
  and every node's address and router address (identity remote-node; on the node itself,
  identity host with `IPCACHE_F_HOST`).
- The LPM ipcache holds the address space outside the pods, cut into regions along the
  policies' ipBlocks, each with its peer class (identity world).

All nodes hold the same entries but for their own two addresses, so the entries are built and
sorted once, as remote nodes see them, and each node's copy swaps its own in place: nodes
share the entry objects (and the emitter renders each once).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from netcc.contract import constants
from netcc.contract.entries import Entry, IpcacheEntry, IpcacheKey, IpcacheLpmKey
from netcc.resolve.resolution import Resolution

POD = constants.IPCACHE_FLAGS["IPCACHE_F_POD"]
HOST = constants.IPCACHE_FLAGS["IPCACHE_F_HOST"]


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
    regions = sorted(region_class, key=lambda n: (int(n.network_address), n.prefixlen))
    return tuple(
        Entry(
            IpcacheLpmKey(prefixlen=n.prefixlen, ip=str(n.network_address)),
            IpcacheEntry(constants.IDENTITY_WORLD, region_class[n], 0, 0),
            str(n),
        )
        for n in regions
    )
