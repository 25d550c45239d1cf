"""Typed, immutable model of a ClusterNetwork spec.

Every object keeps `path`, its place in the spec (`spec.policies[2].spec.ingress[0]`), so later
stages can cite the rule behind a verdict and report errors at the right line. Label maps are
sorted tuples of pairs so that models hash, compare and iterate deterministically.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Network

from netcc import __version__
from netcc.contract.events import EVENT_BURST, EVENT_RATE
from netcc.contract.ipsec import AEAD

Labels = tuple[tuple[str, str], ...]
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
# The namespace of a policy that names none, unless the spec states another (spec.defaultNamespace):
# where `kubectl apply` puts an object without metadata.namespace when no -n is given.
DEFAULT_NAMESPACE = "default"
PROTOCOLS = ("TCP", "UDP", "SCTP")
PROTOCOL_NUMBERS = {"TCP": 6, "UDP": 17, "SCTP": 132}


def labels_of(mapping: Mapping[str, str]) -> Labels:
    """Canonical (sorted) label tuple from a mapping."""
    return tuple(sorted(mapping.items()))


@dataclass(frozen=True)
class Requirement:
    """One matchExpressions entry: In, NotIn, Exists or DoesNotExist."""

    key: str
    operator: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabelSelector:
    """metav1.LabelSelector. The empty selector matches everything."""

    match_labels: Labels = ()
    match_expressions: tuple[Requirement, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.match_labels and not self.match_expressions


@dataclass(frozen=True)
class IPBlock:
    """A CIDR with exceptions. IPv6 blocks are kept but match no IPv4 address."""

    cidr: IPv4Network | IPv6Network
    excepts: tuple[IPv4Network | IPv6Network, ...] = ()


@dataclass(frozen=True)
class Peer:
    """NetworkPolicyPeer: ipBlock alone, or pod and/or namespace selectors (ANDed)."""

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None


@dataclass(frozen=True)
class PolicyPort:
    """NetworkPolicyPort. `port` None means every port of the protocol."""

    protocol: str = "TCP"
    port: int | str | None = None
    end_port: int | None = None


@dataclass(frozen=True)
class Rule:
    """One ingress or egress rule. Empty peers or ports mean all peers or all ports."""

    direction: str  # "ingress" | "egress"
    index: int
    peers: tuple[Peer, ...] = ()
    ports: tuple[PolicyPort, ...] = ()
    path: str = ""


@dataclass(frozen=True)
class NetworkPolicy:
    """networking.k8s.io/v1 NetworkPolicy, with its defaults applied: policyTypes, an absent
    podSelector (the empty one), an absent namespace (the spec's default namespace, and then
    `namespace_defaulted`)."""

    name: str
    namespace: str
    pod_selector: LabelSelector
    policy_types: tuple[str, ...]  # subset of ("Ingress", "Egress"), in that order
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()
    path: str = ""
    namespace_defaulted: bool = False  # no metadata.namespace: the spec's default namespace

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def rules(self, direction: str) -> tuple[Rule, ...]:
        return self.ingress if direction == "ingress" else self.egress

    def isolates(self, direction: str) -> bool:
        return direction.capitalize() in self.policy_types


@dataclass(frozen=True)
class ContainerPort:
    port: int
    protocol: str = "TCP"
    name: str | None = None


@dataclass(frozen=True)
class Node:
    name: str
    address: IPv4Address
    pod_cidr: IPv4Network
    path: str = ""

    @property
    def router_ip(self) -> IPv4Address:
        """The node's own address inside its pod CIDR (first host), like cilium_host."""
        return self.pod_cidr.network_address + 1


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: Labels = ()  # includes kubernetes.io/metadata.name
    path: str = ""


def port_named(ports: tuple[ContainerPort, ...], name: str, protocol: str) -> int | None:
    """Number of the container port called `name` for `protocol` among `ports`, if any."""
    for p in ports:
        if p.name == name and p.protocol == protocol:
            return p.port
    return None


class PodsOfOneKind:
    """What workloads and classes share: a key, and their container ports by name."""

    namespace: str
    name: str
    ports: tuple[ContainerPort, ...]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def resolve_port(self, name: str, protocol: str) -> int | None:
        """Number of the container port called `name` for `protocol`, if any."""
        return port_named(self.ports, name, protocol)


@dataclass(frozen=True)
class Workload(PodsOfOneKind):
    name: str
    namespace: str
    node: str
    labels: Labels = ()
    ips: tuple[IPv4Address, ...] = ()
    ports: tuple[ContainerPort, ...] = ()
    path: str = ""


DEFAULT_PER_NODE = 8  # addresses each node reserves for a class, unless it says otherwise


@dataclass(frozen=True)
class WorkloadClass(PodsOfOneKind):
    """Pods scheduled at runtime: a namespace, labels and ports, but no node and no address.

    A pod belongs to the class by its labels (`netcc.contract.classes.classify`); it gets an
    address of the class's block on whatever node it runs (`per_node` addresses a node)."""

    name: str
    namespace: str
    labels: Labels = ()
    ports: tuple[ContainerPort, ...] = ()
    per_node: int = DEFAULT_PER_NODE
    path: str = ""

    def pod(self, node: str = "", ip: IPv4Address | None = None) -> Workload:
        """The class as a workload: one of its pods (on `node`, at `ip`), or, with neither, a
        stand-in for all of them (a subject or peer of policy, as the resolve stage sees it)."""
        ips = (ip,) if ip is not None else ()
        return Workload(self.name, self.namespace, node, self.labels, ips, self.ports, self.path)


@dataclass(frozen=True)
class ServicePort:
    port: int
    target_port: int | str
    protocol: str = "TCP"
    name: str | None = None
    node_port: int | None = None


@dataclass(frozen=True)
class Service:
    name: str
    namespace: str
    type: str  # "ClusterIP" | "NodePort"
    cluster_ip: IPv4Address
    selector: Labels = ()
    ports: tuple[ServicePort, ...] = ()
    session_affinity: str = "None"  # "None" | "ClientIP"
    session_affinity_timeout: int = 10800
    external_traffic_policy: str = "Cluster"  # "Cluster" | "Local"
    internal_traffic_policy: str = "Cluster"  # "Cluster" | "Local": pods' ClusterIP traffic
    path: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class WireGuardNode:
    node: str
    public_key: str
    private_key_file: str
    path: str = ""


@dataclass(frozen=True)
class WireGuard:
    enabled: bool = False
    listen_port: int = 51871
    nodes: tuple[WireGuardNode, ...] = ()
    underlay_mtu: int = 1500
    persistent_keepalive: int = 25
    path: str = ""


@dataclass(frozen=True)
class IPsecKey:
    """spec.encryption.ipsec.keys[i]: a cluster key's id, its state and fingerprint (no key)."""

    id: int
    state: str  # "send" | "accept"
    fingerprint: str | None = None
    path: str = ""


@dataclass(frozen=True)
class IPsec:
    """spec.encryption.ipsec, defaults filled in (`netcc.contract.ipsec` says what they mean)."""

    enabled: bool = False
    cipher: str = AEAD
    key_bits: int = 128
    icv_bits: int = 128
    underlay_mtu: int = 1500
    key_directory: str = "/etc/netcc/ipsec"
    replay_window: int = 1024
    accept_plaintext: bool = False
    removed_key_grace: int = 300
    keys: tuple[IPsecKey, ...] = (IPsecKey(1, "send"),)
    path: str = ""


@dataclass(frozen=True)
class Deploy:
    """How `OUT/k8s` runs the loader: its container image, `name[:tag][@sha256:<hex>]`.

    Absent from the spec, the image is netcc's own release of the compiler's version, so the
    loader on the nodes always understands the artifacts it is given."""

    image: str = f"ghcr.io/netcc/netcc:{__version__}"
    path: str = ""


@dataclass(frozen=True)
class Observability:
    """spec.observability: the datapath's flow events (`netcc.contract.events`) and their
    per-CPU budget."""

    flow_events: bool = True
    rate_per_cpu: int = EVENT_RATE
    burst_per_cpu: int = EVENT_BURST


@dataclass(frozen=True)
class Cluster:
    """The whole validated spec."""

    name: str
    pod_cidr: IPv4Network
    service_cidr: IPv4Network
    nodes: tuple[Node, ...] = ()
    namespaces: tuple[Namespace, ...] = ()
    workloads: tuple[Workload, ...] = ()  # static: fixed node and addresses
    classes: tuple[WorkloadClass, ...] = ()  # scheduled at runtime (no node, no addresses)
    services: tuple[Service, ...] = ()
    policies: tuple[NetworkPolicy, ...] = ()
    wireguard: WireGuard | None = None
    ipsec: IPsec | None = None
    deploy: Deploy = Deploy()
    observability: Observability = Observability()
    default_namespace: str = DEFAULT_NAMESPACE  # of policies that name none
    _index: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    def namespace(self, name: str) -> Namespace:
        idx = self._index.get("ns")
        if idx is None:
            idx = self._index["ns"] = {n.name: n for n in self.namespaces}
        return idx[name]

    def node(self, name: str) -> Node:
        idx = self._index.get("node")
        if idx is None:
            idx = self._index["node"] = {n.name: n for n in self.nodes}
        return idx[name]

    def classes_in(self, namespace: str) -> tuple[WorkloadClass, ...]:
        """The workload classes of `namespace`, sorted by key."""
        idx = self._index.get("classes")
        if idx is None:
            found: dict[str, list[WorkloadClass]] = {}
            for c in sorted(self.classes, key=lambda c: c.key):
                found.setdefault(c.namespace, []).append(c)
            idx = self._index["classes"] = {ns: tuple(cs) for ns, cs in found.items()}
        return idx.get(namespace, ())

    def workload_by_ip(self, ip: IPv4Address) -> Workload | None:
        idx = self._index.get("ip")
        if idx is None:
            idx = self._index["ip"] = {a: w for w in self.workloads for a in w.ips}
        return idx.get(ip)
