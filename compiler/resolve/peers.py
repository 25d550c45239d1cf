"""Peer classes, and the classes each rule's peers stand for.

Two remote addresses are interchangeable for every rule when they have the same identity, the
same container ports (named ports resolve on them) and the same set of containing ipBlocks.
Such a set of addresses is a *peer class*: the ipcache maps each address to its class, and the
policy maps are keyed on classes, not addresses. Classes are numbered from 1 (0 is PEER_ANY):
pod classes first, by identity, ports and blocks, then the classes outside the pods.

A rule's peers resolve to the classes they match: an ipBlock peer to the classes inside its
block (looked up in `BlockIndex`, not searched), a selector peer to the pod classes its
selectors pick: in the policy's namespace, or in the namespaces its namespaceSelector picks
(as `netcc.semantics.policy.peer_matches`, the reference model, decides; the unit tests hold
the two together).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from netcc.model.types import (
    Cluster,
    ContainerPort,
    IPBlock,
    LabelSelector,
    NetworkPolicy,
    Rule,
    Workload,
)
from netcc.resolve.cidr import BlockIndex, regions
from netcc.resolve.class_addresses import NO_CLASSES, ClassAddresses, class_addresses
from netcc.resolve.identity import Identity
from netcc.semantics.policy import selector_matches

RuleKey = tuple[str, str, int]  # (policy key, direction, rule index)


@dataclass(frozen=True)
class PeerClass:
    number: int
    kind: str  # pod | external
    identity: int  # label identity for pods, 0 for external classes
    ports: tuple[ContainerPort, ...]
    blocks: frozenset[int]  # indices into the resolution's `blocks`
    representative: Workload | None = field(default=None, compare=False)

    def describe(self, blocks: list[IPBlock]) -> str:
        inside = ", ".join(block_text(blocks[i]) for i in sorted(self.blocks)) or "no ipBlock"
        if self.kind == "pod":
            w = self.representative
            assert w is not None
            return f"pods like {w.key} (identity {self.identity}); in {inside}"
        return f"addresses outside the pods; in {inside}"


@dataclass(frozen=True)
class PeerClasses:
    """The classes, the class of every exact address, and the class of every LPM region; with
    workload classes, the class of their blocks (`netcc.resolve.class_addresses`)."""

    classes: tuple[PeerClass, ...]
    of_address: dict[IPv4Address, int]
    of_region: dict[IPv4Network, int]
    addresses: ClassAddresses = NO_CLASSES
    of_class: dict[str, int] = field(default_factory=dict)  # class key -> on plain nodes
    of_pod_cidr: dict[str, int] = field(default_factory=dict)  # plain node -> its podCIDR's
    of_class_region: dict[tuple[str, IPv4Network], int] = field(default_factory=dict)  # cut


def block_text(b: IPBlock) -> str:
    exc = f" except {', '.join(map(str, b.excepts))}" if b.excepts else ""
    return f"{b.cidr}{exc}"


def sorted_ports(ports: tuple[ContainerPort, ...]) -> tuple[ContainerPort, ...]:
    """Container ports in a canonical order: pods with the same set compare equal."""
    return tuple(sorted(ports, key=lambda p: (p.protocol, p.port, p.name or "")))


def ipv4_blocks(cluster: Cluster) -> list[IPBlock]:
    """Every IPv4 ipBlock of the policies, once each, sorted by its text."""
    found = {
        peer.ip_block
        for p in cluster.policies
        for r in p.ingress + p.egress
        for peer in r.peers
        if peer.ip_block is not None and isinstance(peer.ip_block.cidr, IPv4Network)
    }
    return sorted(found, key=block_text)


def block_index(blocks: list[IPBlock]) -> BlockIndex:
    """The index of `blocks` (IPv4 cidrs) that tells which hold an address or a region."""
    return BlockIndex((b.cidr, b.excepts) for b in blocks)  # type: ignore[misc]


def peer_classes(
    cluster: Cluster, identities: dict[str, Identity], blocks: list[IPBlock]
) -> PeerClasses:
    """Every peer class of the cluster (see the module's doc)."""
    index = block_index(blocks)
    keys: dict[tuple, Workload | None] = {}
    addr_key: dict[IPv4Address, tuple] = {}
    for w in sorted(cluster.workloads, key=lambda w: w.key):
        ports = sorted_ports(w.ports)
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
    v4 = {p for p in prefixes if isinstance(p, IPv4Network)}
    for region in regions(v4):
        k = ("external", 0, (), tuple(sorted(index.of_region(region))))
        keys.setdefault(k, None)
        region_key[region] = k
    where = class_addresses(cluster, index, v4)
    class_key, cidr_key, class_region_key = {}, {}, {}
    for cls in sorted(cluster.classes, key=lambda c: c.key):
        ports = sorted_ports(cls.ports)
        k = ("pod", identities[cls.key].number, ports, tuple(sorted(where.common)))
        keys.setdefault(k, cls.pod())
        class_key[cls.key] = k
    by_key = {c.key: c for c in cluster.classes}
    for node, cut in where.cut.items():
        for r in cut:
            cls = by_key[r.cls]
            ident = identities[cls.key].number
            k = ("pod", ident, sorted_ports(cls.ports), tuple(sorted(r.blocks)))
            keys.setdefault(k, cls.pod())
            class_region_key[(node, r.network)] = k
    for node in where.plain:
        k = ("external", 0, (), tuple(sorted(where.common)))
        keys.setdefault(k, None)
        cidr_key[node] = k

    def order(k: tuple) -> tuple:
        kind, ident, ports, blk = k
        return (kind != "pod", ident, repr(ports), blk)

    classes, number_of = [], {}
    for number, k in enumerate(sorted(keys, key=order), start=1):
        classes.append(PeerClass(number, k[0], k[1], k[2], frozenset(k[3]), keys[k]))
        number_of[k] = number
    return PeerClasses(
        tuple(classes),
        {ip: number_of[k] for ip, k in addr_key.items()},
        {r: number_of[k] for r, k in region_key.items()},
        where,
        {c: number_of[k] for c, k in class_key.items()},
        {n: number_of[k] for n, k in cidr_key.items()},
        {nr: number_of[k] for nr, k in class_region_key.items()},
    )


class RulePeers:
    """The classes each rule's peers match (None: the rule has no peers, so any peer).

    Selector peers are answered per (namespace, labels) group of pod classes, not per class:
    classes that differ only in ports or ipBlocks share their labels and so the answer, and
    each (namespace, selector) answer is kept, as rules repeat selectors.
    """

    def __init__(self, cluster: Cluster, classes: tuple[PeerClass, ...], blocks: list[IPBlock]):
        assert all(c.number == i for i, c in enumerate(classes, start=1))  # classes[n - 1]
        self.cluster = cluster
        self.classes = classes
        # namespace -> pod labels -> class numbers
        self.groups: dict[str, dict[tuple[tuple[str, str], ...], list[int]]] = defaultdict(dict)
        for c in classes:
            if c.kind == "pod":
                w = c.representative
                assert w is not None
                self.groups[w.namespace].setdefault(w.labels, []).append(c.number)
        self.label_dicts = {
            labels: dict(labels) for groups in self.groups.values() for labels in groups
        }
        self.namespace_labels = {ns.name: dict(ns.labels) for ns in cluster.namespaces}
        self.block_number = {b: i for i, b in enumerate(blocks)}
        self.by_block: dict[int, list[int]] = defaultdict(list)  # block -> class numbers
        for c in classes:
            for b in c.blocks:
                self.by_block[b].append(c.number)
        self._namespaces: dict[LabelSelector, list[str]] = {}
        self._pods: dict[tuple[str, LabelSelector | None], tuple[int, ...]] = {}

    def targets(self, policy: NetworkPolicy, rule: Rule) -> tuple[int, ...] | None:
        """Class numbers the rule's peers match, ascending; None means any peer."""
        if not rule.peers:
            return None
        numbers: set[int] = set()
        for peer in rule.peers:
            block = peer.ip_block
            if block is not None:
                if isinstance(block.cidr, IPv4Network):
                    numbers.update(self.by_block.get(self.block_number[block], ()))
                continue
            if peer.namespace_selector is None:
                namespaces = [policy.namespace]  # the policy's own namespace
            else:
                namespaces = self._selected_namespaces(peer.namespace_selector)
            for ns in namespaces:
                numbers.update(self._selected_pods(ns, peer.pod_selector))
        return tuple(sorted(numbers))

    def _selected_namespaces(self, selector: LabelSelector) -> list[str]:
        found = self._namespaces.get(selector)
        if found is None:
            found = self._namespaces[selector] = [
                ns
                for ns, labels in self.namespace_labels.items()
                if selector_matches(selector, labels)
            ]
        return found

    def _selected_pods(self, ns: str, selector: LabelSelector | None) -> tuple[int, ...]:
        """The pod classes of `ns` that `selector` picks (None: every one)."""
        k = (ns, selector)
        found = self._pods.get(k)
        if found is None:
            found = self._pods[k] = tuple(
                n
                for labels, numbers in self.groups.get(ns, {}).items()
                if selector is None or selector_matches(selector, self.label_dicts[labels])
                for n in numbers
            )
        return found


def rule_targets(
    cluster: Cluster, classes: tuple[PeerClass, ...], blocks: list[IPBlock]
) -> dict[RuleKey, tuple[int, ...] | None]:
    """The classes every rule of every policy matches (see `RulePeers.targets`)."""
    peers = RulePeers(cluster, classes, blocks)
    return {
        (p.key, direction, r.index): peers.targets(p, r)
        for p in cluster.policies
        for direction in ("ingress", "egress")
        for r in p.rules(direction)
    }
