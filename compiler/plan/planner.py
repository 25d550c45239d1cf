"""Plan: what every node's datapath maps hold, and the verdict behind every entry.

Three ideas keep the tables exact and small:
- *Peer classes.* Two remote addresses are interchangeable for every rule when they have the
  same identity, the same named ports and the same set of containing ipBlocks. The ipcache maps
  each address to its class; the policy map is keyed on classes, not addresses.
- *Profiles.* Local pods with the same identity and container ports are judged by the same
  entries, so they share a profile.
- *Expansion.* Each rule becomes entries (profile, peer class or ANY, direction, protocol, port
  prefix), named ports resolved on the destination pod, each entry citing its rule's verdict.
The predicates come from `netcc.semantics.policy`, so plan and reference model cannot drift apart.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import NamedTuple

from netcc.contract import capacity, constants
from netcc.contract.verdicts import FIRST_RULE_VERDICT, VerdictEntry, reserved_entries
from netcc.model.types import (
    PROTOCOL_NUMBERS,
    Cluster,
    ContainerPort,
    IPBlock,
    Peer,
    Rule,
    Workload,
)
from netcc.plan import maglev
from netcc.plan.cidr import BlockIndex, port_range_prefixes, regions
from netcc.plan.services import plan_services
from netcc.resolve.identity import Identity, workload_identities
from netcc.semantics.policy import Endpoint, peer_matches, policies_selecting

DIRECTIONS = ("ingress", "egress")
DIR_NUMBER = {"ingress": constants.DIR_INGRESS, "egress": constants.DIR_EGRESS}
PROTO_NAME = {v: k for k, v in PROTOCOL_NUMBERS.items()}


@dataclass(frozen=True)
class PeerClass:
    number: int
    kind: str  # pod | external
    identity: int  # label identity for pods, 0 for external classes
    ports: tuple[ContainerPort, ...]
    blocks: frozenset[int]  # indices into ClusterPlan.blocks
    representative: Workload | None = field(default=None, compare=False)

    def describe(self, blocks: list[IPBlock]) -> str:
        inside = ", ".join(_block_text(blocks[i]) for i in sorted(self.blocks)) or "no ipBlock"
        if self.kind == "pod":
            w = self.representative
            return f"pods like {w.key} (identity {self.identity}); in {inside}"
        return f"addresses outside the pods; in {inside}"


class MapEntry(NamedTuple):
    """One map entry as the loader packs it: field values by name, and a note for reviewers."""

    key: dict
    value: dict
    note: str = ""


@dataclass(frozen=True)
class NodePlan:
    name: str
    maps: dict[str, tuple[MapEntry, ...]]  # map name -> entries, sorted
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


class CapacityError(Exception):
    """A table does not fit the datapath; carries (message, spec path) pairs."""

    def __init__(self, problems: list[tuple[str, str]]):
        super().__init__("; ".join(m for m, _ in problems))
        self.problems = problems


# The capacity registry's hard limits of the maps the plan sizes (tests lower them), and the
# capacities that are the same for every cluster.
LIMITS = capacity.limits()
FIXED = capacity.fixed()
CT_ENTRIES = FIXED["NETCC_MAX_CT"]


def _block_text(b: IPBlock) -> str:
    exc = f" except {', '.join(map(str, b.excepts))}" if b.excepts else ""
    return f"{b.cidr}{exc}"


def _ipv4_blocks(cluster: Cluster) -> list[IPBlock]:
    found = {
        peer.ip_block
        for p in cluster.policies
        for r in p.ingress + p.egress
        for peer in r.peers
        if peer.ip_block is not None and isinstance(peer.ip_block.cidr, IPv4Network)
    }
    return sorted(found, key=lambda b: _block_text(b))


def block_index(blocks: list[IPBlock]) -> BlockIndex:
    """The index of `blocks` (IPv4 cidrs) that tells which hold an address or a region."""
    return BlockIndex((b.cidr, b.excepts) for b in blocks)  # type: ignore[misc]


def _verdicts(cluster: Cluster) -> tuple[list[VerdictEntry], dict, dict]:
    out = reserved_entries()
    rule_verdict: dict[tuple[str, str, int], int] = {}
    number = FIRST_RULE_VERDICT
    for p in sorted(cluster.policies, key=lambda p: (p.namespace, p.name)):
        for direction in DIRECTIONS:
            for r in p.rules(direction):
                doc = f"{p.key} {direction} rule {r.index} ({r.path}): {_rule_text(r)}"
                out.append(
                    VerdictEntry(
                        number, f"RULE_{number}", "allow", doc, p.key, direction, r.index, r.path
                    )
                )
                rule_verdict[(p.key, direction, r.index)] = number
                number += 1
    number = max(number, FIRST_RULE_VERDICT)
    deny_verdict: dict[tuple[str, str], int] = {}
    for w in sorted(cluster.workloads, key=lambda w: w.key):
        for direction in DIRECTIONS:
            selecting = policies_selecting(cluster, w, direction)
            if selecting:
                names = ", ".join(p.key for p in selecting)
                doc = f"{w.key} {direction}: isolated by {names}; no rule allows"
                out.append(
                    VerdictEntry(
                        number,
                        f"DENY_{number}",
                        "drop",
                        doc,
                        direction=direction,
                        path=w.path,
                        pod=w.key,
                    )
                )
                deny_verdict[(w.key, direction)] = number
                number += 1
    return out, rule_verdict, deny_verdict


def _rule_text(r: Rule) -> str:
    peers = f"{len(r.peers)} peer(s)" if r.peers else "any peer"
    if not r.ports:
        return f"{peers}; all ports and protocols"
    ports = []
    for pp in r.ports:
        if pp.port is None:
            ports.append(f"{pp.protocol}/any")
        elif pp.end_port is not None:
            ports.append(f"{pp.protocol}/{pp.port}-{pp.end_port}")
        else:
            ports.append(f"{pp.protocol}/{pp.port}")
    return f"{peers}; {', '.join(ports)}"


def _peer_classes(
    cluster: Cluster, identities: dict[str, Identity], blocks: list[IPBlock]
) -> tuple[list[PeerClass], dict[IPv4Address, int], dict[IPv4Network, int]]:
    """Classes, the class of every exact address, and the class of every LPM region."""
    index = block_index(blocks)
    keys: dict[tuple, Workload | None] = {}
    addr_key: dict[IPv4Address, tuple] = {}
    for w in sorted(cluster.workloads, key=lambda w: w.key):
        ports = tuple(sorted(w.ports, key=lambda p: (p.protocol, p.port, p.name or "")))
        for ip in w.ips:
            k = ("pod", identities[w.key].number, ports, tuple(sorted(index.of_address(ip))))
            keys.setdefault(k, w)
            addr_key[ip] = k
    for n in cluster.nodes:
        for ip in (n.address, n.router_ip):
            k = ("external", 0, (), tuple(sorted(index.of_address(ip))))
            keys.setdefault(k, None)
            addr_key[ip] = k
    region_key: dict[IPv4Network, tuple] = {}
    prefixes = {b.cidr for b in blocks} | {e for b in blocks for e in b.excepts}
    for region in regions({p for p in prefixes if isinstance(p, IPv4Network)}):
        k = ("external", 0, (), tuple(sorted(index.of_region(region))))
        keys.setdefault(k, None)
        region_key[region] = k

    def order(k: tuple) -> tuple:
        kind, ident, ports, blk = k
        return (kind != "pod", ident, repr(ports), blk)

    classes, number_of = [], {}
    for number, k in enumerate(sorted(keys, key=order), start=1):
        classes.append(PeerClass(number, k[0], k[1], k[2], frozenset(k[3]), keys[k]))
        number_of[k] = number
    return (
        classes,
        {ip: number_of[k] for ip, k in addr_key.items()},
        {r: number_of[k] for r, k in region_key.items()},
    )


def _selects_class(cluster: Cluster, policy, selector_peers: list[Peer], cls: PeerClass) -> bool:
    """Whether any selector peer (no ipBlock) matches the pod class `cls`."""
    remote = Endpoint(IPv4Address(0), workload=cls.representative)
    return any(peer_matches(cluster, policy, peer, remote) for peer in selector_peers)


def _block_index(block: IPBlock, cluster: Cluster) -> int:
    index = cluster._index.get("blocks")
    if index is None:
        index = cluster._index["blocks"] = {b: i for i, b in enumerate(_ipv4_blocks(cluster))}
    return index[block]


def _port_keys(pp, destination: Workload | None) -> list[tuple[int, int, int]]:
    """(proto, port, prefix bits) entries for one NetworkPolicyPort and destination pod."""
    proto = PROTOCOL_NUMBERS[pp.protocol]
    full = constants.POLICY_PREFIX_FULL - 16
    if pp.port is None:
        return [(proto, 0, constants.POLICY_PREFIX_ALL_PORTS)]
    if isinstance(pp.port, str):
        number = destination.resolve_port(pp.port, pp.protocol) if destination else None
        return [(proto, number, constants.POLICY_PREFIX_FULL)] if number else []
    last = pp.end_port if pp.end_port is not None else pp.port
    return [(proto, port, full + bits) for port, bits in port_range_prefixes(pp.port, last)]


class _Expander:
    """Expands rules into policy entries; caches what does not depend on the profile."""

    def __init__(self, cluster: Cluster, classes: list[PeerClass], rule_verdict: dict):
        self.cluster = cluster
        self.classes = classes
        self.pod_classes = [c for c in classes if c.kind == "pod"]
        self.by_namespace: dict[str, list[PeerClass]] = defaultdict(list)
        for c in self.pod_classes:
            self.by_namespace[c.representative.namespace].append(c)
        assert all(c.number == i for i, c in enumerate(classes, start=1))  # classes[n - 1]
        self.by_block: dict[int, list[int]] = defaultdict(list)  # block -> class numbers
        for c in classes:
            for b in c.blocks:
                self.by_block[b].append(c.number)
        self.rule_verdict = rule_verdict
        self._peers: dict[tuple[str, str, int], list[PeerClass] | None] = {}

    def peer_targets(self, policy, rule: Rule) -> list[PeerClass] | None:
        """Classes a rule's peers match; None means any peer."""
        k = (policy.key, rule.direction, rule.index)
        if k not in self._peers:
            self._peers[k] = None if not rule.peers else self._match(policy, rule)
        return self._peers[k]

    def _match(self, policy, rule: Rule) -> list[PeerClass]:
        """Classes any peer of the rule matches, in class order.

        An ipBlock peer matches the classes inside its block (looked up, not searched); a
        selector peer is tried on the pod classes only, and only on those of the policy's
        namespace when no peer has a namespaceSelector or an ipBlock.
        """
        numbers: set[int] = set()
        for peer in rule.peers:
            block = peer.ip_block
            if block is not None and isinstance(block.cidr, IPv4Network):
                numbers.update(self.by_block.get(_block_index(block, self.cluster), ()))
        selectors = [p for p in rule.peers if p.ip_block is None]
        if selectors:
            local_only = all(
                p.namespace_selector is None and p.ip_block is None for p in rule.peers
            )
            pods = self.by_namespace.get(policy.namespace, []) if local_only else self.pod_classes
            numbers.update(
                c.number
                for c in pods
                if c.number not in numbers and _selects_class(self.cluster, policy, selectors, c)
            )
        return [self.classes[n - 1] for n in sorted(numbers)]

    def entries(self, profile: int, subject: Workload, direction: str):
        """Yields (key, verdict, note) for every allow of `subject` in `direction`."""
        d = DIR_NUMBER[direction]
        for policy in policies_selecting(self.cluster, subject, direction):
            for rule in policy.rules(direction):
                verdict = self.rule_verdict[(policy.key, direction, rule.index)]
                note = f"{policy.key} {direction}[{rule.index}]"
                targets = self.peer_targets(policy, rule)
                if not rule.ports:
                    for peer in (
                        [constants.PEER_ANY] if targets is None else [c.number for c in targets]
                    ):
                        yield (
                            _key(profile, peer, d, 0, 0, constants.POLICY_PREFIX_ALL_PROTOCOLS),
                            verdict,
                            note,
                        )
                    continue
                for pp in rule.ports:
                    named_egress = isinstance(pp.port, str) and direction == "egress"
                    if named_egress:
                        # Resolved on each destination pod: no PEER_ANY entry can stand for it.
                        for c in self.pod_classes if targets is None else targets:
                            for proto, port, bits in _port_keys(pp, c.representative):
                                yield _key(profile, c.number, d, proto, port, bits), verdict, note
                        continue
                    dest = subject if direction == "ingress" else None
                    for proto, port, bits in _port_keys(pp, dest):
                        peers = (
                            [constants.PEER_ANY] if targets is None else [c.number for c in targets]
                        )
                        for peer in peers:
                            yield _key(profile, peer, d, proto, port, bits), verdict, note


def _key(profile: int, peer: int, d: int, proto: int, port: int, bits: int) -> tuple:
    """Policy LPM key with the bits past the prefix zeroed."""
    if bits <= constants.POLICY_PREFIX_ALL_PROTOCOLS:
        proto, port = 0, 0
    elif bits < constants.POLICY_PREFIX_FULL:
        keep = bits - constants.POLICY_PREFIX_ALL_PORTS
        port &= (0xFFFF << (16 - keep)) & 0xFFFF
    return (bits, profile, peer, d, proto, port)


def _pow2(n: int, floor: int = 64) -> int:
    n = max(n + n // 4, floor)
    return 1 << (n - 1).bit_length()


def plan(cluster: Cluster) -> ClusterPlan:
    """Plan every node's maps. Raises CapacityError when a table cannot fit."""
    identities, notes = workload_identities(cluster)
    workload_numbers = {
        w.key: i for i, w in enumerate(sorted(cluster.workloads, key=lambda w: w.key), start=1)
    }
    blocks = _ipv4_blocks(cluster)
    classes, addr_class, region_class = _peer_classes(cluster, identities, blocks)
    verdicts, rule_verdict, deny_verdict = _verdicts(cluster)
    expander = _Expander(cluster, classes, rule_verdict)
    by_node: dict[str, list[Workload]] = defaultdict(list)
    for w in cluster.workloads:
        by_node[w.node].append(w)

    ipcache = _ipcache(cluster, identities, workload_numbers, addr_class)
    cidrs = _cidr_entries(region_class)
    nodes = []
    for node in sorted(cluster.nodes, key=lambda n: n.name):
        local = sorted(by_node[node.name], key=lambda w: w.key)
        maps, profiles = _plan_node(
            cluster, node, local, identities, workload_numbers, expander, deny_verdict
        )
        maps["netcc_ipcache"] = ipcache.for_node(node.name)
        maps["netcc_ipcache_cidr"] = cidrs
        nodes.append(NodePlan(node.name, _map_order(maps), profiles))

    try:
        lb = plan_services(cluster)
    except maglev.TableSizeError as e:
        raise CapacityError([(str(e), "spec.services")]) from None
    for n in nodes:
        for name, entries in lb.maps[n.name].items():
            n.maps[name] = tuple(MapEntry(*e) for e in entries)

    need = {
        "NETCC_MAX_ENDPOINTS": max(len(n.maps["netcc_endpoints"]) for n in nodes),
        "NETCC_MAX_IPCACHE": len(nodes[0].maps["netcc_ipcache"]),
        "NETCC_MAX_CIDRS": len(nodes[0].maps["netcc_ipcache_cidr"]),
        "NETCC_MAX_POLICY_EXACT": max(len(n.maps["netcc_policy_exact"]) for n in nodes),
        "NETCC_MAX_POLICY": max(len(n.maps["netcc_policy"]) for n in nodes),
        "NETCC_MAX_VERDICTS": verdicts[-1].number + 1,
        "NETCC_MAX_LB_SERVICES": max(len(n.maps["netcc_lb_services"]) for n in nodes),
        "NETCC_MAX_LB_BACKENDS": len(nodes[0].maps["netcc_lb_backends"]),
        "NETCC_MAX_LB_ROWS": max(len(n.maps["netcc_lb_maglev"]) for n in nodes),
        "NETCC_MAX_LB_MEMBERS": max(len(n.maps["netcc_lb_members"]) for n in nodes),
    }
    problems = []
    for name, n in need.items():
        if n > LIMITS[name]:
            problems.append(
                (
                    f"needs {n:,} entries in {name}; the datapath holds at most {LIMITS[name]:,}",
                    "spec",
                )
            )
    if problems:
        raise CapacityError(problems)
    capacities = {k: min(_pow2(v), LIMITS[k]) for k, v in need.items()}
    capacities["NETCC_MAX_VERDICTS"] = need["NETCC_MAX_VERDICTS"]
    capacities |= FIXED
    capacities["NETCC_LB_MAGLEV_SIZE"] = lb.maglev_size
    return ClusterPlan(
        cluster,
        identities,
        workload_numbers,
        blocks,
        tuple(classes),
        tuple(verdicts),
        tuple(nodes),
        capacities,
        tuple(notes) + tuple(lb.notes),
        tuple(lb.comments),
    )


# Maps whose entries are the same objects on every node (emit renders each entry once).
SHARED_MAPS = ("netcc_ipcache", "netcc_ipcache_cidr")
MAP_ORDER = (
    "netcc_endpoints",
    "netcc_ipcache",
    "netcc_ipcache_cidr",
    "netcc_policy_exact",
    "netcc_policy",
)


def _map_order(maps: dict[str, tuple[MapEntry, ...]]) -> dict[str, tuple[MapEntry, ...]]:
    """A node's policy maps in the order the emitter lists them."""
    return {name: maps[name] for name in MAP_ORDER}


@dataclass(frozen=True)
class _Ipcache:
    """Every node's ipcache: one list of entries, but for each node's own addresses.

    All nodes hold every pod and node address; only a node's own two addresses (address and
    router address) read differently there (identity host). So the entries are built and
    sorted once, as remote nodes see them, and each node's copy swaps its own in place.
    """

    shared: tuple[MapEntry, ...]  # sorted by address, every node address as seen remotely
    own: dict[str, list[tuple[int, MapEntry]]]  # node -> (position in shared, its own entry)

    def for_node(self, name: str) -> tuple[MapEntry, ...]:
        """The ipcache of node `name`, sorted by address."""
        entries = list(self.shared)
        for position, entry in self.own.get(name, ()):
            entries[position] = entry
        return tuple(entries)


def _ipcache(cluster: Cluster, identities, workload_numbers, addr_class) -> _Ipcache:
    """Every node's ipcache (see `_Ipcache`)."""
    rows: list[tuple[int, MapEntry]] = []  # (address, entry), in spec order
    for w in cluster.workloads:
        for ip in w.ips:
            value = {
                "identity": identities[w.key].number,
                "peer": addr_class[ip],
                "workload": workload_numbers[w.key],
                "flags": constants.IPCACHE_FLAGS["IPCACHE_F_POD"],
            }
            rows.append((int(ip), MapEntry({"ip": str(ip)}, value, w.key)))
    own_rows: dict[str, list[tuple[int, MapEntry]]] = defaultdict(list)  # node -> (row, entry)
    for n in cluster.nodes:
        for ip, what in ((n.address, "address"), (n.router_ip, "router address")):
            own_rows[n.name].append((len(rows), _node_address(ip, what, n.name, addr_class, True)))
            rows.append((int(ip), _node_address(ip, what, n.name, addr_class, False)))
    order = sorted(range(len(rows)), key=lambda i: rows[i][0])  # stable, as sorting entries
    position = {row: pos for pos, row in enumerate(order)}
    own = {
        name: [(position[row], entry) for row, entry in entries]
        for name, entries in own_rows.items()
    }
    return _Ipcache(tuple(rows[i][1] for i in order), own)


def _node_address(ip: IPv4Address, what: str, node: str, addr_class, own: bool) -> MapEntry:
    """The ipcache entry of a node's address, on that node (`own`) or on another."""
    return MapEntry(
        {"ip": str(ip)},
        {
            "identity": constants.IDENTITY_HOST if own else constants.IDENTITY_REMOTE_NODE,
            "peer": addr_class[ip],
            "workload": 0,
            "flags": constants.IPCACHE_FLAGS["IPCACHE_F_HOST"] if own else 0,
        },
        f"{'this node' if own else 'node ' + node}: {what}",
    )


def _cidr_entries(region_class: dict[IPv4Network, int]) -> tuple[MapEntry, ...]:
    """The ipcache LPM entries (the same on every node), sorted by address and length."""
    regions = sorted(region_class, key=lambda r: (int(r.network_address), r.prefixlen))
    return tuple(
        MapEntry(
            {"prefixlen": r.prefixlen, "ip": str(r.network_address)},
            {
                "identity": constants.IDENTITY_WORLD,
                "peer": region_class[r],
                "workload": 0,
                "flags": 0,
            },
            str(r),
        )
        for r in regions
    )


def _plan_node(
    cluster: Cluster,
    node,
    local: list[Workload],
    identities: dict[str, Identity],
    workload_numbers: dict[str, int],
    expander: _Expander,
    deny_verdict: dict[tuple[str, str], int],
) -> tuple[dict[str, tuple[MapEntry, ...]], tuple[tuple[int, tuple[str, ...]], ...]]:
    """A node's endpoints and policy maps, and its profiles (what depends on its pods)."""
    profiles: dict[tuple, list[Workload]] = {}
    for w in local:
        ports = tuple(sorted(w.ports, key=lambda p: (p.protocol, p.port, p.name or "")))
        profiles.setdefault((identities[w.key].number, ports), []).append(w)
    profile_of: dict[str, int] = {}
    policy: dict[tuple, tuple[int, str]] = {}
    flags_of: dict[int, int] = {}
    for number, members in enumerate(profiles.values(), start=1):
        flags_of[number] = _expand_profile(cluster, number, members[0], expander, policy)
        for w in members:
            profile_of[w.key] = number

    endpoints = []
    for w in local:
        number = profile_of[w.key]
        for ip in w.ips:
            endpoints.append(
                MapEntry(
                    {"ip": str(ip)},
                    {
                        "workload": workload_numbers[w.key],
                        "profile": number,
                        "identity": identities[w.key].number,
                        "flags": flags_of[number],
                        "ingress_deny": deny_verdict.get((w.key, "ingress"), 0),
                        "egress_deny": deny_verdict.get((w.key, "egress"), 0),
                        "router": str(node.router_ip),
                    },
                    w.key,
                )
            )
    maps = {"netcc_endpoints": tuple(sorted(endpoints, key=_ip_order))}
    maps.update(_policy_maps(policy))
    return maps, tuple(
        (number, tuple(w.key for w in members))
        for number, members in enumerate(profiles.values(), start=1)
    )


def _expand_profile(
    cluster: Cluster,
    number: int,
    subject: Workload,
    expander: _Expander,
    policy: dict[tuple, tuple[int, str]],
) -> int:
    """Adds profile `number`'s entries to `policy` (lowest verdict wins); returns its flags."""
    flags = 0
    for direction in DIRECTIONS:
        if policies_selecting(cluster, subject, direction):
            flags |= constants.ENDPOINT_FLAGS[f"ENDPOINT_F_{direction.upper()}_ISOLATED"]
        for key, verdict, note in expander.entries(number, subject, direction):
            if key in policy and policy[key][0] <= verdict:
                continue
            policy[key] = (verdict, note)
            if key[2] == constants.PEER_ANY:
                flags |= constants.ENDPOINT_FLAGS[f"ENDPOINT_F_{direction.upper()}_ANY"]
            if key[0] < constants.POLICY_PREFIX_FULL:
                flags |= constants.ENDPOINT_FLAGS[f"ENDPOINT_F_{direction.upper()}_RANGES"]
    return flags


def _policy_maps(policy: dict[tuple, tuple[int, str]]) -> dict[str, tuple[MapEntry, ...]]:
    """Single ports to the hash map, ranges and wildcards to the LPM trie; both sorted by
    (profile, dir, peer, proto, port, prefixlen), on the key tuples themselves."""
    order = sorted(policy, key=lambda k: (k[1], k[3], k[2], k[4], k[5], k[0]))
    exact = tuple(
        MapEntry(
            {"profile": k[1], "peer": k[2], "dir": k[3], "proto": k[4], "port": k[5]},
            {"verdict": policy[k][0]},
            policy[k][1],
        )
        for k in order
        if k[0] == constants.POLICY_PREFIX_FULL
    )
    ranges = tuple(
        MapEntry(
            {
                "prefixlen": k[0],
                "profile": k[1],
                "peer": k[2],
                "dir": k[3],
                "proto": k[4],
                "port": k[5],
            },
            {"verdict": policy[k][0]},
            policy[k][1],
        )
        for k in order
        if k[0] < constants.POLICY_PREFIX_FULL
    )
    return {"netcc_policy_exact": exact, "netcc_policy": ranges}


def _ip_order(e: MapEntry) -> tuple:
    return (int(IPv4Address(e.key["ip"])), e.key.get("prefixlen", 32))
