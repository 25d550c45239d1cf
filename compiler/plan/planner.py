"""Plan: what every node's datapath maps hold, and the verdict behind every entry.

The planner reads the resolve stage's result (`netcc.resolve.resolution.Resolution`: peer
classes, selection, rule targets, named ports, backends) and only lays out map entries, one
module per concern:
- `verdicts`: the verdict table (a verdict per rule, a default deny per isolated pod);
- `policy`: each node's profiles and policy entries;
- `endpoints`: each node's pods;
- `ipcache`: every remote address's identity and peer class;
- `services`: the load-balancing maps (Maglev rows: `maglev`);
- `sizing`: every capacity, from the contract's registry.
Entries are typed (`netcc.contract.entries`): records with exactly their struct's fields,
every value checked against its encoding here, before anything is emitted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address

from netcc.contract.entries import Entry, EntryError, check_entries
from netcc.contract.maps import MapDef, maps_for
from netcc.contract.verdicts import VerdictEntry
from netcc.model.types import Cluster, IPBlock, Workload
from netcc.plan import maglev
from netcc.plan.endpoints import endpoint_entries
from netcc.plan.ipcache import Ipcache, cidr_entries, plan_ipcache
from netcc.plan.policy import PolicyPlanner
from netcc.plan.services import plan_services
from netcc.plan.sizing import CapacityError, capacities
from netcc.plan.verdicts import plan_verdicts
from netcc.resolve.identity import Identity
from netcc.resolve.peers import PeerClass
from netcc.resolve.resolution import DIRECTIONS, Resolution

__all__ = ["DIRECTIONS", "MAP_ORDER", "ORDER", "CapacityError", "ClusterPlan", "NodePlan", "plan"]

# The maps a plan fills, in the order a node's maps are listed.
MAP_ORDER = (
    "netcc_endpoints",
    "netcc_ipcache",
    "netcc_ipcache_cidr",
    "netcc_policy_exact",
    "netcc_policy",
    "netcc_lb_services",
    "netcc_lb_backends",
    "netcc_lb_maglev",
    "netcc_lb_members",
)


def _ip(text: str) -> int:
    return int(IPv4Address(text))


# How each map's entries are ordered (a node's, and in files those of all nodes).
ORDER: dict[str, Callable[[Entry], tuple]] = {
    "netcc_endpoints": lambda e: (_ip(e.key.ip),),
    "netcc_ipcache": lambda e: (_ip(e.key.ip),),
    "netcc_ipcache_cidr": lambda e: (_ip(e.key.ip), e.key.prefixlen),
    "netcc_policy_exact": lambda e: (e.key.profile, e.key.dir, e.key.peer, e.key.proto, e.key.port),
    "netcc_policy": lambda e: (
        e.key.profile,
        e.key.dir,
        e.key.peer,
        e.key.proto,
        e.key.port,
        e.key.prefixlen,
    ),
    "netcc_lb_services": lambda e: (_ip(e.key.vip), e.key.port, e.key.proto, e.key.scope),
    "netcc_lb_backends": lambda e: (e.key.id,),
    "netcc_lb_maglev": lambda e: (e.key.id,),
    "netcc_lb_members": lambda e: (e.key.row, _ip(e.key.ip), e.key.port),
}


@dataclass(frozen=True)
class NodePlan:
    name: str
    maps: dict[str, tuple[Entry, ...]]  # map name -> entries, sorted, in MAP_ORDER
    profiles: tuple[tuple[int, tuple[str, ...]], ...]  # profile number -> workloads


@dataclass(frozen=True)
class ClusterPlan:
    cluster: Cluster
    identities: dict[str, Identity]
    workload_numbers: dict[str, int]
    blocks: list[IPBlock]
    peers: tuple[PeerClass, ...]
    verdicts: tuple[VerdictEntry, ...]
    nodes: tuple[NodePlan, ...]
    capacities: dict[str, int]
    notes: tuple[str, ...] = ()
    services: tuple[str, ...] = ()  # Maglev rows and the service ports they serve


def plan(r: Resolution) -> ClusterPlan:
    """Plan every node's maps. Raises CapacityError when a table cannot fit."""
    cluster = r.cluster
    verdicts = plan_verdicts(r)
    policy = PolicyPlanner(r, verdicts)
    by_node: dict[str, list[Workload]] = defaultdict(list)
    for w in sorted(cluster.workloads, key=lambda w: w.key):
        by_node[w.node].append(w)
    try:
        lb = plan_services(r)
    except maglev.TableSizeError as e:
        raise CapacityError([(str(e), "spec.services")]) from None

    ipcache = plan_ipcache(r)
    cidrs = cidr_entries(r)
    nodes = []
    for node in sorted(cluster.nodes, key=lambda n: n.name):
        local = by_node[node.name]
        np = policy.node(local)
        maps = {
            "netcc_endpoints": endpoint_entries(r, node, local, np, verdicts),
            "netcc_ipcache": ipcache.for_node(node.name),
            "netcc_ipcache_cidr": cidrs,
            "netcc_policy_exact": np.exact,
            "netcc_policy": np.ranges,
        }
        maps.update((name, tuple(entries)) for name, entries in lb.maps[node.name].items())
        profiles = tuple((p.number, tuple(w.key for w in p.members)) for p in np.profiles)
        nodes.append(NodePlan(node.name, {name: maps[name] for name in MAP_ORDER}, profiles))

    definitions = {m.name: m for m in maps_for(lb.maglev_size)}
    _check(definitions, nodes, ipcache, cidrs)
    sizes = capacities(
        definitions.values(),
        (n.maps for n in nodes),
        {"NETCC_MAX_VERDICTS": verdicts.count, "NETCC_LB_MAGLEV_SIZE": lb.maglev_size},
    )
    return ClusterPlan(
        cluster,
        r.identities,
        r.workload_numbers,
        r.blocks,
        r.classes,
        verdicts.table,
        tuple(nodes),
        sizes,
        r.notes + tuple(lb.notes),
        tuple(lb.comments),
    )


def _check(
    definitions: dict[str, MapDef], nodes: list[NodePlan], ipcache: Ipcache, cidrs: tuple
) -> None:
    """Every entry against its map's layout (`check_entries`, EntryError naming the map, the
    node, the entry's position there and its note). Each entry object is checked once: the
    ipcache's, which nodes share, as made (`Ipcache`), the others node by node."""
    shared = ("netcc_ipcache", "netcc_ipcache_cidr")
    check_entries(definitions["netcc_ipcache_cidr"], cidrs)
    own = [(node, e) for node, entries in ipcache.own.items() for _, e in entries]
    try:
        check_entries(definitions["netcc_ipcache"], ipcache.shared)
        check_entries(definitions["netcc_ipcache"], [e for _, e in own])
    except EntryError:
        for n in nodes:  # the same check where the entry sits, for the message
            check_entries(definitions["netcc_ipcache"], n.maps["netcc_ipcache"], n.name)
        raise
    for n in nodes:
        for name, entries in n.maps.items():
            if name not in shared:
                check_entries(definitions[name], entries, n.name)
