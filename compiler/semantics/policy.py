"""Kubernetes NetworkPolicy v1 semantics: the reference model every other part agrees with.

The planner expands these same predicates into map entries, `netcc why` and reviews explain
with them, and the differential tests hold the compiled programs in the kernel to them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from netcc.model.types import (
    PROTOCOL_NUMBERS,
    Cluster,
    IPBlock,
    LabelSelector,
    NetworkPolicy,
    Node,
    Peer,
    PolicyPort,
    Requirement,
    Rule,
    Workload,
)

PORTED_PROTOCOLS = {number: name for name, number in PROTOCOL_NUMBERS.items()}


def requirement_matches(req: Requirement, labels: Mapping[str, str]) -> bool:
    """One matchExpressions term, as apimachinery's labels.Requirement.Matches."""
    present = req.key in labels
    if req.operator == "In":
        return present and labels[req.key] in req.values
    if req.operator == "NotIn":
        return not present or labels[req.key] not in req.values
    if req.operator == "Exists":
        return present
    if req.operator == "DoesNotExist":
        return not present
    raise ValueError(f"unknown operator {req.operator}")


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """matchLabels AND matchExpressions; the empty selector matches everything."""
    return all(labels.get(k) == v for k, v in selector.match_labels) and all(
        requirement_matches(r, labels) for r in selector.match_expressions
    )


def ip_in_block(ip: IPv4Address, block: IPBlock) -> bool:
    """Inside `cidr` and outside every `except`. IPv6 blocks hold no IPv4 address."""
    if not isinstance(block.cidr, IPv4Network) or ip not in block.cidr:
        return False
    return not any(isinstance(e, IPv4Network) and ip in e for e in block.excepts)


@dataclass(frozen=True)
class Endpoint:
    """One end of a flow: a pod, a node, or an address outside the cluster."""

    ip: IPv4Address
    workload: Workload | None = None
    node: Node | None = None  # set for node addresses (and a node's router address)

    @property
    def kind(self) -> str:
        return "pod" if self.workload else "node" if self.node else "external"

    def __str__(self) -> str:
        if self.workload:
            return f"{self.workload.key} ({self.ip})"
        if self.node:
            return f"node {self.node.name} ({self.ip})"
        return str(self.ip)


def endpoint_of(cluster: Cluster, ip: IPv4Address) -> Endpoint:
    """Classify an address of the cluster's world. An address inside a workload class's
    block on a node is a pod of that class there (`WorkloadClass.pod`); other addresses of a
    podCIDR that no static pod or node holds are outside the pods, like the world."""
    w = cluster.workload_by_ip(ip)
    if w:
        return Endpoint(ip, workload=w)
    for n in cluster.nodes:
        if ip in (n.address, n.router_ip):
            return Endpoint(ip, node=n)
    pod = class_pod_at(cluster, ip)
    if pod is not None:
        return Endpoint(ip, workload=pod)
    return Endpoint(ip)


def class_pod_at(cluster: Cluster, ip: IPv4Address) -> Workload | None:
    """The pod of a workload class that `ip` would be, if it lies in a class's block."""
    if not cluster.classes:
        return None
    blocks = cluster._index.get("blocks")
    if blocks is None:
        from netcc.plan.blocks import layout  # the address layout: a pure function of the spec

        blocks = cluster._index["blocks"] = layout(cluster)
    for n in cluster.nodes:
        if ip in n.pod_cidr:
            offset = int(ip) - int(n.pod_cidr.network_address)
            for cls in cluster.classes:
                block = blocks[cls.key]
                if block.offset <= offset < block.offset + block.size:
                    return cls.pod(n.name, ip)
    return None


def namespace_labels(cluster: Cluster, name: str) -> dict[str, str]:
    return dict(cluster.namespace(name).labels)


def peer_matches(cluster: Cluster, policy: NetworkPolicy, peer: Peer, remote: Endpoint) -> bool:
    """A NetworkPolicyPeer: ipBlock alone, or pod selector AND namespace selector."""
    if peer.ip_block is not None:
        return ip_in_block(remote.ip, peer.ip_block)
    w = remote.workload
    if w is None:
        return False
    if peer.namespace_selector is None:
        in_namespace = w.namespace == policy.namespace
    else:
        in_namespace = selector_matches(
            peer.namespace_selector, namespace_labels(cluster, w.namespace)
        )
    return in_namespace and (
        peer.pod_selector is None or selector_matches(peer.pod_selector, dict(w.labels))
    )


def port_matches(pp: PolicyPort, proto: int, port: int, destination: Workload | None) -> bool:
    """A NetworkPolicyPort; named ports resolve on the destination pod by name and protocol."""
    if PROTOCOL_NUMBERS[pp.protocol] != proto:
        return False
    if pp.port is None:
        return True
    if isinstance(pp.port, str):
        if destination is None:
            return False
        return destination.resolve_port(pp.port, pp.protocol) == port
    return pp.port <= port <= (pp.end_port if pp.end_port is not None else pp.port)


def rule_matches(
    cluster: Cluster,
    policy: NetworkPolicy,
    rule: Rule,
    remote: Endpoint,
    proto: int,
    port: int,
    destination: Workload | None,
) -> bool:
    """Empty peers match every peer; empty ports match every port and protocol."""
    if rule.peers and not any(peer_matches(cluster, policy, p, remote) for p in rule.peers):
        return False
    return not rule.ports or any(port_matches(p, proto, port, destination) for p in rule.ports)


class SelectorIndex:
    """The policies of each namespace, found by a pod's labels without trying every one.

    A podSelector with matchLabels can only select pods that carry its first (key, value)
    pair, so each such policy is filed under that pair; the others (empty selectors, or
    matchExpressions only) are tried for every pod. A pod's candidates are the policies filed
    under one of its own labels plus those: each is then checked in full, and the answer
    keeps spec order. Answers are kept per (namespace, labels, direction), which replicas
    share.
    """

    def __init__(self, policies: tuple[NetworkPolicy, ...]) -> None:
        self._policies: dict[str, list[NetworkPolicy]] = {}
        self._by_label: dict[str, dict[tuple[str, str], list[int]]] = {}
        self._always: dict[str, list[int]] = {}
        for p in policies:
            members = self._policies.setdefault(p.namespace, [])
            labels = p.pod_selector.match_labels
            if labels:
                by_label = self._by_label.setdefault(p.namespace, {})
                by_label.setdefault(labels[0], []).append(len(members))
            else:
                self._always.setdefault(p.namespace, []).append(len(members))
            members.append(p)
        self._answers: dict[tuple, list[NetworkPolicy]] = {}
        self.checked = 0  # selectors tried so far: the work, for tests

    def candidates(self, namespace: str, labels: Mapping[str, str]) -> list[int]:
        """Positions (in the namespace's spec order) of the policies that may select a pod."""
        found = list(self._always.get(namespace, ()))
        by_label = self._by_label.get(namespace, {})
        for pair in labels.items():
            found.extend(by_label.get(pair, ()))
        return sorted(found)

    def selecting(self, pod: Workload, direction: str) -> list[NetworkPolicy]:
        """Policies of the pod's namespace that select it and isolate it in `direction`."""
        key = (pod.namespace, pod.labels, direction)
        answer = self._answers.get(key)
        if answer is None:
            labels = dict(pod.labels)
            members = self._policies.get(pod.namespace, [])
            positions = self.candidates(pod.namespace, labels)
            self.checked += len(positions)
            answer = self._answers[key] = [
                members[i]
                for i in positions
                if members[i].isolates(direction)
                and selector_matches(members[i].pod_selector, labels)
            ]
        return answer


def selector_index(cluster: Cluster) -> SelectorIndex:
    """The cluster's `SelectorIndex`, built on first use."""
    index = cluster._index.get("selecting")
    if index is None:
        index = cluster._index["selecting"] = SelectorIndex(cluster.policies)
    return index


def policies_selecting(cluster: Cluster, pod: Workload, direction: str) -> list[NetworkPolicy]:
    """Policies of the pod's namespace that select it and isolate it in `direction`.

    The list is shared between calls (and replicas): callers must not change it."""
    return selector_index(cluster).selecting(pod, direction)


@dataclass(frozen=True)
class RuleRef:
    """A rule that decided (or could decide) a flow."""

    policy: str  # namespace/name
    direction: str
    index: int
    path: str

    def __str__(self) -> str:
        return f"{self.policy} {self.direction}[{self.index}]"


@dataclass(frozen=True)
class SideVerdict:
    """The verdict of one side of a flow: the sender's egress or the receiver's ingress."""

    direction: str
    pod: str  # namespace/name of the pod whose policy applies
    allowed: bool
    reason: str  # self | host | unisolated | rule | default-deny
    rules: tuple[RuleRef, ...] = ()  # every rule that allows it
    isolated_by: tuple[str, ...] = ()  # policies selecting the pod in this direction


def side_verdict(
    cluster: Cluster,
    pod: Workload,
    direction: str,
    remote: Endpoint,
    proto: int,
    port: int,
) -> SideVerdict:
    """Kubernetes' verdict for `pod`'s side of a flow with `remote`."""
    if remote.workload == pod:
        return SideVerdict(direction, pod.key, True, "self")
    if direction == "ingress" and remote.node is not None and remote.node.name == pod.node:
        return SideVerdict(direction, pod.key, True, "host")
    selecting = policies_selecting(cluster, pod, direction)
    if not selecting:
        return SideVerdict(direction, pod.key, True, "unisolated")
    destination = pod if direction == "ingress" else remote.workload
    matched = tuple(
        RuleRef(p.key, direction, r.index, r.path)
        for p in selecting
        for r in p.rules(direction)
        if rule_matches(cluster, p, r, remote, proto, port, destination)
    )
    return SideVerdict(
        direction,
        pod.key,
        bool(matched),
        "rule" if matched else "default-deny",
        matched,
        tuple(p.key for p in selecting),
    )


@dataclass(frozen=True)
class FlowVerdict:
    """A connection's verdict: allowed when every side that has a pod allows it."""

    src: Endpoint
    dst: Endpoint
    proto: int
    port: int
    egress: SideVerdict | None = None
    ingress: SideVerdict | None = None
    sides: tuple[SideVerdict, ...] = field(default=(), repr=False)

    @property
    def allowed(self) -> bool:
        return all(s.allowed for s in (self.egress, self.ingress) if s is not None)


def evaluate(
    cluster: Cluster, src: IPv4Address, dst: IPv4Address, proto: int, port: int
) -> FlowVerdict:
    """The verdict for the first packet of a connection from src to dst:port.

    Replies of an allowed connection always pass (the datapath is stateful). Ports only
    exist for TCP, UDP and SCTP; for other protocols pass port 0.
    """
    s, d = endpoint_of(cluster, src), endpoint_of(cluster, dst)
    egress = side_verdict(cluster, s.workload, "egress", d, proto, port) if s.workload else None
    ingress = side_verdict(cluster, d.workload, "ingress", s, proto, port) if d.workload else None
    return FlowVerdict(s, d, proto, port, egress, ingress)
