"""Exact connectivity of a cluster: for every source and destination, the set of allowed
(protocol, port), with the rules behind each side.

Sources and destinations are *parties*: each workload (split, in the rare case it has several
addresses that fall in different ipBlocks), each workload class (its pods on every node, as one
party named `NS/CLASS (class)`: its block on each node; split likewise where an ipBlock cuts a
block), each node (its address and router address), and each
class of addresses outside the cluster. The address space outside the pods is cut along every
ipBlock cidr and except, as `netcc.plan.planner` does, so that every address of a class lies in
exactly the same ipBlocks; a class is then judged like any of its addresses. Rules are evaluated
symbolically with the predicates of `netcc.semantics.policy` (peers) and port sets built from the
same port rules (`port_matches`), so the result agrees with `semantics.evaluate` on every single
(source, destination, protocol, port), which the tests check.

A class party stands for every pod of the class: two of its pods are different pods, so the
flow from a class to itself is judged by policy (a pod always reaches itself, and the node a
class pod runs on always reaches it: `allows` answers those addresses as the model does)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from ipaddress import IPv4Address, IPv4Network

from netcc.model.types import Cluster, IPBlock, NetworkPolicy, Node, Rule, Workload, WorkloadClass
from netcc.plan.blocks import layout
from netcc.resolve.cidr import BlockIndex, regions
from netcc.resolve.peers import ipv4_blocks
from netcc.review.portset import ALL, EMPTY, PortSet
from netcc.semantics.policy import (
    Endpoint,
    RuleRef,
    peer_matches,
    policies_selecting,
)

Signature = frozenset[int]  # indices of the IPv4 ipBlocks an address lies in


def block_text(b: IPBlock) -> str:
    """`10.0.0.0/8 except 10.1.0.0/16`."""
    exc = f" except {', '.join(map(str, b.excepts))}" if b.excepts else ""
    return f"{b.cidr}{exc}"


def block_prefixes(cluster: Cluster) -> set[IPv4Network]:
    """Every IPv4 cidr and except of the policies' ipBlocks."""
    out: set[IPv4Network] = set()
    for b in ipv4_blocks(cluster):
        out.add(b.cidr)  # type: ignore[arg-type]
        out.update(e for e in b.excepts if isinstance(e, IPv4Network))
    return out


@dataclass(frozen=True)
class Region:
    """An LPM region: `prefix` minus the more specific regions inside it (`holes`)."""

    prefix: IPv4Network
    holes: tuple[IPv4Network, ...] = ()

    def __str__(self) -> str:
        return (
            f"{self.prefix} except {', '.join(map(str, self.holes))}"
            if self.holes
            else (str(self.prefix))
        )

    def networks(self) -> list[IPv4Network]:
        """The region as the fewest CIDRs."""
        parts = [self.prefix]
        for hole in self.holes:
            nxt = []
            for p in parts:
                if hole.subnet_of(p):
                    nxt.extend(p.address_exclude(hole))
                elif not p.subnet_of(hole):
                    nxt.append(p)
            parts = nxt
        return sorted(ipaddress.collapse_addresses(parts))

    def __contains__(self, ip: object) -> bool:
        return ip in self.prefix and not any(ip in h for h in self.holes)


def split_regions(prefixes: set[IPv4Network]) -> list[Region]:
    """The address space cut along `prefixes`: disjoint regions covering all of IPv4."""
    nets = regions(prefixes)  # sorted by address, then length: each after its ancestors
    holes: dict[IPv4Network, list[IPv4Network]] = {n: [] for n in nets}
    chain: list[IPv4Network] = []  # the prefixes holding the current one, outermost first
    for n in nets:
        while chain and not n.subnet_of(chain[-1]):
            chain.pop()
        if chain:
            holes[chain[-1]].append(n)  # the most specific prefix holding n: a hole of it
        chain.append(n)
    return [Region(n, tuple(sorted(holes[n]))) for n in nets]


@dataclass(frozen=True)
class Party:
    """A source or destination of flows: pod addresses of a workload, a node, or external."""

    kind: str  # pod | node | external
    name: str  # namespace/workload, node NAME, or the addresses in CIDR form
    signature: Signature
    ips: tuple[IPv4Address, ...] = ()
    workload: Workload | None = None
    node: Node | None = None
    regions: tuple[Region, ...] = ()
    cls: WorkloadClass | None = None  # class parties: the class (`workload` is its stand-in)
    blocks: tuple[IPv4Network, ...] = ()  # class parties: its blocks (or their parts), by node

    @property
    def is_pod(self) -> bool:
        return self.kind == "pod"

    @property
    def is_class(self) -> bool:
        return self.cls is not None

    def endpoint(self) -> Endpoint:
        """An endpoint of the model standing for this party (peer selectors look at it)."""
        ip = self.ips[0] if self.ips else IPv4Address(0)
        return Endpoint(ip, workload=self.workload, node=self.node)

    def networks(self) -> list[IPv4Network]:
        """External parties: their addresses as CIDRs (pods and nodes inside are not meant)."""
        return sorted(ipaddress.collapse_addresses(n for r in self.regions for n in r.networks()))

    def sample_ips(self, taken: set[IPv4Address], count: int = 3) -> list[IPv4Address]:
        """Some addresses of the party (external: outside `taken`, the pod and node addresses)."""
        if self.cls is not None:
            return [net.network_address for net in self.blocks[:count]]
        if self.kind != "external":
            return list(self.ips[:count])
        out: list[IPv4Address] = []
        for net in self.networks():
            for candidate in (
                net.network_address,
                net.broadcast_address,
                net.network_address + net.num_addresses // 2,
            ):
                if candidate not in taken and candidate not in out:
                    out.append(candidate)
                if len(out) >= count:
                    return out
        return out


@dataclass(frozen=True)
class Grant:
    """One rule's share of a side: what it allows towards this remote party."""

    rule: RuleRef
    ports: PortSet


@dataclass(frozen=True)
class Side:
    """One side of a flow: the sender's egress or the receiver's ingress, for every port."""

    direction: str
    pod: str  # namespace/workload whose policy applies
    reason: str  # self | host | unisolated | rules (isolated: allowed by grants, else denied)
    grants: tuple[Grant, ...] = ()
    isolated_by: tuple[str, ...] = ()

    @cached_property
    def allowed(self) -> PortSet:
        if self.reason != "rules":
            return ALL
        out = EMPTY
        for g in self.grants:
            out = out | g.ports
        return out


@dataclass(frozen=True)
class Flow:
    """Everything from `src` to `dst`: both sides and what passes both."""

    src: Party
    dst: Party
    egress: Side | None
    ingress: Side | None
    allowed: PortSet = field(default=EMPTY)

    def grants(self, side: Side | None) -> list[Grant]:
        """The side's grants cut down to what the flow allows (those that matter)."""
        if side is None:
            return []
        out = []
        for g in side.grants:
            share = g.ports & self.allowed
            if share:
                out.append(Grant(g.rule, share))
        return out


def rule_ports(rule: Rule, destination: Workload | None) -> PortSet:
    """What a rule's ports allow towards `destination` (named ports resolve on it)."""
    if not rule.ports:
        return ALL
    out = EMPTY
    for pp in rule.ports:
        if pp.port is None:
            out = out | PortSet.of(pp.protocol)
        elif isinstance(pp.port, str):
            number = destination.resolve_port(pp.port, pp.protocol) if destination else None
            if number is not None:
                out = out | PortSet.of(pp.protocol, number)
        else:
            out = out | PortSet.of(pp.protocol, pp.port, pp.end_port)
    return out


def cut(net: IPv4Network, prefixes: Iterable[IPv4Network]) -> list[IPv4Network]:
    """`net` split where a prefix lies strictly inside it: every part is then inside or outside
    each prefix as a whole (CIDRs either nest or are disjoint)."""
    inside = [p for p in prefixes if p != net and p.subnet_of(net)]
    if not inside:
        return [net]
    low, high = net.subnets(1)
    return cut(low, inside) + cut(high, inside)


class Taken(set):
    """Addresses of pods and nodes, and (by lookup) every address of a class's block."""

    def __init__(self, ips: Iterable[IPv4Address], c: Connectivity) -> None:
        super().__init__(ips)
        self._c = c

    def __contains__(self, ip: object) -> bool:
        return super().__contains__(ip) or (
            isinstance(ip, IPv4Address) and self._c.class_party_of(ip) is not None
        )


class Connectivity:
    """The exact connectivity of a cluster; sides are cached per class of subject and remote."""

    def __init__(self, cluster: Cluster, extra_prefixes: Iterable[IPv4Network] = ()):
        self.cluster = cluster
        self.blocks = ipv4_blocks(cluster)
        self._block_index = {b: i for i, b in enumerate(self.blocks)}
        self._containing = BlockIndex((b.cidr, b.excepts) for b in self.blocks)  # type: ignore[misc]
        self.regions = split_regions(block_prefixes(cluster) | set(extra_prefixes))
        self.pods: list[Party] = []
        self.nodes: list[Party] = []
        self.externals: list[Party] = []
        for w in sorted(cluster.workloads, key=lambda w: w.key):
            groups = self._group(w.ips)
            for sig, ips in groups.items():
                name = w.key if len(groups) == 1 else f"{w.key}[{','.join(map(str, ips))}]"
                self.pods.append(Party("pod", name, sig, tuple(ips), workload=w))
        self.class_blocks = layout(cluster) if cluster.classes else {}
        self._class_nets: dict[IPv4Network, Party] = {}
        prefixes = block_prefixes(cluster) | set(extra_prefixes)
        for cls in sorted(cluster.classes, key=lambda c: c.key):
            self.pods.extend(self._class_parties(cls, prefixes))
        for n in sorted(cluster.nodes, key=lambda n: n.name):
            groups = self._group((n.address, n.router_ip))
            for sig, ips in groups.items():
                name = f"node {n.name}" if len(groups) == 1 else f"node {n.name} ({ips[0]})"
                self.nodes.append(Party("node", name, sig, tuple(ips), node=n))
        by_sig: dict[Signature, list[Region]] = {}
        for r in self.regions:
            by_sig.setdefault(self._region_signature(r), []).append(r)
        for sig, rs in by_sig.items():
            self.externals.append(
                Party("external", "; ".join(map(str, rs)), sig, regions=tuple(rs))
            )
        self.externals.sort(key=lambda p: (p.regions[0].prefix.prefixlen, p.regions[0].prefix))
        self._region_party = {r.prefix: p for p in self.externals for r in p.regions}
        self._ip_party = {ip: p for p in self.nodes + self.pods for ip in p.ips}
        self._sides: dict[tuple, Side] = {}
        self._flows: dict[tuple[str, str], Flow] = {}
        self._selecting: dict[tuple, list[NetworkPolicy]] = {}
        self._peers: dict[tuple, bool] = {}
        self._ports: dict[tuple, PortSet] = {}

    # -- parties -----------------------------------------------------------------------------

    def _class_parties(self, cls: WorkloadClass, prefixes: set[IPv4Network]) -> list[Party]:
        """The class as parties: its block on every node, grouped by the ipBlocks holding it
        (one party unless an ipBlock cuts inside a block)."""
        block = self.class_blocks[cls.key]
        groups: dict[Signature, list[IPv4Network]] = {}
        for n in sorted(self.cluster.nodes, key=lambda n: n.name):
            for net in cut(block.on(n.pod_cidr), prefixes):
                groups.setdefault(self._containing.of_region(net), []).append(net)
        out = []
        for sig, nets in groups.items():
            name = f"{cls.key} (class)"
            if len(groups) > 1:
                name += f"[{','.join(map(str, nets))}]"
            party = Party("pod", name, sig, workload=cls.pod(), cls=cls, blocks=tuple(nets))
            out.append(party)
            self._class_nets.update((net, party) for net in nets)
        return out

    def class_party_of(self, ip: IPv4Address) -> Party | None:
        """The class party whose block holds `ip`, if any."""
        for plen in {net.prefixlen for net in self._class_nets}:
            found = self._class_nets.get(IPv4Network((ip, plen), strict=False))
            if found is not None:
                return found
        return None

    def class_parties(self, key: str) -> list[Party]:
        """The parties of class `namespace/name` (one, unless an ipBlock cuts its blocks)."""
        return [p for p in self.pods if p.cls is not None and p.cls.key == key]

    def _signature(self, ip: IPv4Address) -> Signature:
        """The blocks holding `ip` (as `ip_in_block`), looked up in the block index."""
        return self._containing.of_address(ip)

    def _region_signature(self, region: Region) -> Signature:
        """The blocks holding all of `region` (as `region_inside`), looked up likewise."""
        return self._containing.of_region(region.prefix)

    def _group(self, ips: Iterable[IPv4Address]) -> dict[Signature, list[IPv4Address]]:
        groups: dict[Signature, list[IPv4Address]] = {}
        for ip in ips:
            groups.setdefault(self._signature(ip), []).append(ip)
        return groups

    @property
    def parties(self) -> list[Party]:
        return self.pods + self.nodes + self.externals

    def taken(self) -> set[IPv4Address]:
        """Addresses of pods and nodes, class blocks included (external parties stand for
        everything else)."""
        return Taken((ip for p in self.pods + self.nodes for ip in p.ips), self)

    def region_of(self, ip: IPv4Address) -> Region:
        """The region holding `ip` (longest matching prefix)."""
        best = None
        for r in self.regions:
            if ip in r.prefix and (best is None or r.prefix.prefixlen > best.prefix.prefixlen):
                best = r
        assert best is not None  # 0.0.0.0/0 is always a region
        return best

    def party_of(self, ip: IPv4Address) -> Party:
        """The party an address belongs to."""
        found = self._ip_party.get(ip)
        if found is None and self._class_nets:
            found = self.class_party_of(ip)
        return found if found is not None else self._region_party[self.region_of(ip).prefix]

    def party_named(self, name: str) -> Party | None:
        return next((p for p in self.parties if p.name == name), None)

    # -- sides and flows -----------------------------------------------------------------------

    @staticmethod
    def _remote_key(remote: Party) -> tuple:
        w = remote.workload
        if w is None:
            return ("addr", remote.signature)
        return ("pod", w.namespace, w.labels, w.ports, remote.signature)

    def side(self, subject: Workload, direction: str, remote: Party) -> Side:
        """`subject`'s side (its ingress or egress policy) of every flow with `remote`."""
        if (
            remote.workload is not None
            and remote.cls is None
            and remote.workload.key == subject.key
        ):
            return Side(direction, subject.key, "self")  # a class's pods are different pods
        if direction == "ingress" and remote.node is not None and remote.node.name == subject.node:
            return Side(direction, subject.key, "host")
        key = (
            subject.namespace,
            subject.labels,
            subject.ports,
            direction,
            self._remote_key(remote),
        )
        cached = self._sides.get(key)
        if cached is None:
            cached = self._sides[key] = self._side(subject, direction, remote)
        if cached.pod != subject.key:
            cached = Side(direction, subject.key, cached.reason, cached.grants, cached.isolated_by)
        return cached

    def selecting(self, subject: Workload, direction: str) -> list[NetworkPolicy]:
        """The policies isolating `subject` in `direction` (cached per namespace and labels)."""
        key = (subject.namespace, subject.labels, direction)
        found = self._selecting.get(key)
        if found is None:
            found = self._selecting[key] = policies_selecting(self.cluster, subject, direction)
        return found

    def _side(self, subject: Workload, direction: str, remote: Party) -> Side:
        selecting = self.selecting(subject, direction)
        if not selecting:
            return Side(direction, subject.key, "unisolated")
        destination = subject if direction == "ingress" else remote.workload
        grants = []
        for policy in selecting:
            for rule in policy.rules(direction):
                if not self.peers_match(policy, rule, remote):
                    continue
                key = (
                    policy.key,
                    direction,
                    rule.index,
                    destination.ports if destination else None,
                )
                ports = self._ports.get(key)
                if ports is None:
                    ports = self._ports[key] = rule_ports(rule, destination)
                if ports:
                    ref = RuleRef(policy.key, direction, rule.index, rule.path)
                    grants.append(Grant(ref, ports))
        return Side(direction, subject.key, "rules", tuple(grants), tuple(p.key for p in selecting))

    def peers_match(self, policy: NetworkPolicy, rule: Rule, remote: Party) -> bool:
        """Whether any of the rule's peers (or its missing `from`/`to`) matches the party."""
        if not rule.peers:
            return True
        w = remote.workload
        key = (
            policy.key,
            rule.direction,
            rule.index,
            remote.signature,
            (w.namespace, w.labels) if w is not None else None,
        )
        found = self._peers.get(key)
        if found is None:
            found = self._peers[key] = self._peers_match(policy, rule, remote)
        return found

    def _peers_match(self, policy: NetworkPolicy, rule: Rule, remote: Party) -> bool:
        for peer in rule.peers:
            if peer.ip_block is not None:
                index = self._block_index.get(peer.ip_block)
                if index is not None and index in remote.signature:
                    return True
            elif remote.workload is not None and peer_matches(
                self.cluster, policy, peer, remote.endpoint()
            ):
                return True
        return False

    def flow(self, src: Party, dst: Party) -> Flow:
        """The flow from `src` to `dst`: the sender's egress (if a pod) and receiver's ingress."""
        key = (src.name, dst.name)
        cached = self._flows.get(key)
        if cached is not None:
            return cached
        egress = self.side(src.workload, "egress", dst) if src.workload else None
        ingress = self.side(dst.workload, "ingress", src) if dst.workload else None
        allowed = ALL
        for s in (egress, ingress):
            if s is not None:
                allowed = allowed & s.allowed
        if egress is None and ingress is None:
            allowed = EMPTY  # nothing of the cluster's is on this path
        flow = self._flows[key] = Flow(src, dst, egress, ingress, allowed)
        return flow

    def flows(self) -> Iterator[Flow]:
        """Every flow with a pod on at least one end, sources then destinations in order."""
        for src in self.parties:
            for dst in self.parties:
                if src.is_pod or dst.is_pod:
                    yield self.flow(src, dst)

    def allows(self, src: IPv4Address, dst: IPv4Address, proto: int, port: int) -> bool:
        """The symbolic verdict for one connection (used to check against the model)."""
        s, d = self.party_of(src), self.party_of(dst)
        if d.is_class and (src == dst or (s.node is not None and dst in s.node.pod_cidr)):
            return True  # a class pod itself, or the node it runs on
        return self.flow(s, d).allowed.contains(proto, port)
