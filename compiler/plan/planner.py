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
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from netcc.contract import services as dyn
from netcc.contract.entries import Entry, EntryError, check_entries
from netcc.contract.maps import CLASS_MAPS, MapDef, maps_for
from netcc.contract.verdicts import VerdictEntry
from netcc.model.types import Cluster, IPBlock, Workload
from netcc.plan import maglev
from netcc.plan.blocks import Block
from netcc.plan.endpoints import endpoint_entries
from netcc.plan.ipcache import Ipcache, cidr_entries, class_block_entries, plan_ipcache
from netcc.plan.policy import NodePolicy, PolicyPlanner, Profile
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
    "netcc_class_blocks",  # only with workload classes (`CLASS_MAPS`)
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
    "netcc_class_blocks": lambda e: (e.key.offset, e.key.prefixlen),
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
class ClassPlan:
    """A workload class as the node daemon needs it (`classes.json`)."""

    key: str  # namespace/name
    number: int  # from 1, by key; also its profile's number
    identity: int
    peer: int  # its blocks' peer class (where no ipBlock cuts the podCIDR)
    profile: Profile
    deny: tuple[int, int]  # the ingress and egress default-deny verdicts (0: not isolated)
    block: Block


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
    classes: tuple[ClassPlan, ...] = ()  # workload classes, by number
    map_names: tuple[str, ...] = ()  # the maps of the plan's nodes, in MAP_ORDER
    # map name -> the entries every node holds by construction, at the start of each node's
    # entries of that map (the class profiles' policy, the class blocks, the CIDR entries):
    # checked and counted once, not once per node
    common: dict[str, tuple[Entry, ...]] = field(default_factory=dict)
    # the service ports runtime pods may back (`services.json`), None without any
    dynamic: dyn.Services | None = None


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
    has_classes = bool(cluster.classes)
    names = tuple(m for m in MAP_ORDER if has_classes or m not in CLASS_MAPS)
    classes = sorted(cluster.classes, key=lambda c: c.key)
    shared = policy.classes(classes)  # every node holds every class profile's entries
    blocks = class_block_entries(r)
    nodes = []
    for node in sorted(cluster.nodes, key=lambda n: n.name):
        local = by_node[node.name]
        np = _joined(shared, policy.node(local, first=len(classes) + 1))
        maps = {
            "netcc_endpoints": endpoint_entries(r, node, local, np, verdicts),
            "netcc_ipcache": ipcache.for_node(node.name),
            "netcc_ipcache_cidr": cidrs,
            "netcc_class_blocks": blocks,
            "netcc_policy_exact": np.exact,
            "netcc_policy": np.ranges,
        }
        maps.update((name, tuple(entries)) for name, entries in lb.maps[node.name].items())
        profiles = tuple((p.number, tuple(w.key for w in p.members)) for p in np.profiles)
        nodes.append(NodePlan(node.name, {name: maps[name] for name in names}, profiles))

    common = {
        "netcc_ipcache_cidr": cidrs,
        "netcc_class_blocks": blocks,
        "netcc_policy_exact": shared.exact,
        "netcc_policy": shared.ranges,
    }
    common = {name: entries for name, entries in common.items() if name in names and entries}
    definitions = {m.name: m for m in maps_for(lb.maglev_size, has_classes)}
    _check(definitions, nodes, ipcache, common)
    sizes = capacities(
        definitions.values(),
        (n.maps for n in nodes),
        {"NETCC_MAX_VERDICTS": verdicts.count, "NETCC_LB_MAGLEV_SIZE": lb.maglev_size},
        frozenset({"classes"}) if has_classes else frozenset(),
        lb.reserve,
    )
    if lb.dynamic is not None:
        _check_id_space(lb.dynamic)
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
        common=common,
        classes=tuple(
            ClassPlan(
                cls.key,
                number,
                r.identities[cls.key].number,
                r.peers.of_class[cls.key],
                profile,
                (
                    verdicts.deny.get((cls.key, "ingress"), 0),
                    verdicts.deny.get((cls.key, "egress"), 0),
                ),
                r.peers.addresses.blocks[cls.key],
            )
            for number, (cls, profile) in enumerate(zip(classes, shared.profiles, strict=True), 1)
        ),
        map_names=names,
        dynamic=lb.dynamic,
    )


def _check_id_space(d: dyn.Services) -> None:
    """Runtime backend numbers (`services.Services.backend_id`) must fit in 32 bits."""
    space = dyn.id_space(((n.node, n.pod_cidr) for n in d.nodes), len(d.target_ports))
    if d.backend_base + space > dyn.BACKEND_LIMIT:
        raise CapacityError(
            [
                (
                    f"runtime service backends need {space:,} numbers ({len(d.target_ports)} "
                    "target ports of classes times the addresses of every podCIDR); at most "
                    f"{dyn.BACKEND_LIMIT - d.backend_base:,} fit",
                    "spec.services",
                )
            ]
        )


def _joined(classes: NodePolicy, node: NodePolicy) -> NodePolicy:
    """A node's policy: the class profiles' (numbered first) and then its own."""
    if not classes.profiles:
        return node
    return NodePolicy(
        classes.profiles + node.profiles,
        classes.exact + node.exact,
        classes.ranges + node.ranges,
    )


def own_entries(n: NodePlan, name: str, common: dict[str, tuple[Entry, ...]]) -> tuple:
    """The node's entries of map `name` past those every node holds (`ClusterPlan.common`)."""
    entries = n.maps[name]
    k = len(common.get(name, ()))
    if k:
        assert entries[:k] == common[name], f"{n.name}: {name} does not start with the common"
    return entries[k:]


def _check(
    definitions: dict[str, MapDef],
    nodes: list[NodePlan],
    ipcache: Ipcache,
    common: dict[str, tuple[Entry, ...]],
) -> None:
    """Every entry against its map's layout (`check_entries`, EntryError naming the map, the
    node, the entry's position there and its note). Each entry object is checked once: the
    ipcache's, which nodes share, as made (`Ipcache`), those every node holds (`common`)
    once, the others node by node."""
    shared = ("netcc_ipcache",)
    for name, entries in common.items():
        check_entries(definitions[name], entries)
    own = [(node, e) for node, entries in ipcache.own.items() for _, e in entries]
    try:
        check_entries(definitions["netcc_ipcache"], ipcache.shared)
        check_entries(definitions["netcc_ipcache"], [e for _, e in own])
    except EntryError:
        for n in nodes:  # the same check where the entry sits, for the message
            check_entries(definitions["netcc_ipcache"], n.maps["netcc_ipcache"], n.name)
        raise
    for n in nodes:
        for name in n.maps:
            if name not in shared:
                check_entries(definitions[name], own_entries(n, name, common), n.name)
