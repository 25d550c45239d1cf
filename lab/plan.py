"""What a lab is made of: namespace and link names and addresses, from a spec's cluster.

Pure: nothing here touches the kernel. Every name starts with `netcc-` (namespaces) or is a
link inside one of those namespaces, so the lab never collides with anything on the host.

- one namespace per node (`netcc-NAME`, or `netcc-node-NAME` if that is taken), uplink
  `eth0` carrying the node's address
- one namespace per workload (`netcc-pod-NAMESPACE.NAME`), `eth0` carrying its IPs; its
  host-side veth in the node's namespace is `lxc` + 8 hex digits of the workload's key
- `netcc-underlay`: a bridge joining every node (and the external host) at layer 2
- `netcc-external` (optional): the outside world, owning the given addresses

With WireGuard on (`tunnel_mtu` set), nodes do not route each other's pod CIDRs over the
underlay: the loader routes them through the tunnel, and pods get the tunnel's MTU.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, ip_address
from typing import Any

from netcc.model.types import Cluster

PREFIX = "netcc-"
UNDERLAY_NETNS = "netcc-underlay"
EXTERNAL_NETNS = "netcc-external"
BRIDGE = "underlay0"
UPLINK = "eth0"
POD_IFNAME = "eth0"
MAX_NETNS_NAME = 64


class LabPlanError(ValueError):
    """The lab cannot be built as asked (bad external addresses, say)."""


def _short_hash(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _netns_name(kind: str, name: str) -> str:
    full = f"{PREFIX}{kind}-{name}"
    return full if len(full) <= MAX_NETNS_NAME else f"{PREFIX}{kind}-{_short_hash(name, 16)}"


def _node_netns(name: str, taken: set[str]) -> str:
    """`netcc-NAME`, or `netcc-node-NAME` when that would collide with another namespace."""
    short = PREFIX + name
    return (
        short if short not in taken and len(short) <= MAX_NETNS_NAME else _netns_name("node", name)
    )


def host_veth_name(workload_key: str) -> str:
    """The pod's host-side veth: `lxc` + 8 hex digits (11 characters, under IFNAMSIZ)."""
    return "lxc" + _short_hash(workload_key)


@dataclass(frozen=True)
class NodePlan:
    name: str
    netns: str
    address: IPv4Address
    pod_cidr: IPv4Network
    router_ip: IPv4Address
    port: str  # its bridge port in the underlay namespace


@dataclass(frozen=True)
class PodPlan:
    key: str  # namespace/name
    netns: str
    node: str
    ips: tuple[IPv4Address, ...]
    veth: str  # host side, in the node's namespace


@dataclass(frozen=True)
class ExternalPlan:
    netns: str
    ips: tuple[IPv4Address, ...]
    port: str


@dataclass(frozen=True)
class Endpoint:
    """Something a probe can start from or go to: a namespace and the address it uses."""

    kind: str  # pod | node | external
    name: str
    netns: str
    ip: IPv4Address


@dataclass(frozen=True)
class LabPlan:
    cluster: str
    nodes: tuple[NodePlan, ...]
    pods: tuple[PodPlan, ...]
    external: ExternalPlan | None = None
    underlay: str = UNDERLAY_NETNS
    tunnel_mtu: int | None = None  # WireGuard on: pod CIDRs go through the tunnel
    pod_mtu: int | None = None  # IPsec on: pods' MTU (ESP's overhead), routes unchanged

    def namespaces(self) -> list[str]:
        """Every namespace, in creation order."""
        names = [self.underlay, *(n.netns for n in self.nodes)]
        if self.external:
            names.append(self.external.netns)
        return names + [p.netns for p in self.pods]

    def node(self, name: str) -> NodePlan:
        return next(n for n in self.nodes if n.name == name)

    def inventory(self) -> dict[str, Any]:
        """The lab as other tools see it (`netcc lab up --json`)."""
        inv: dict[str, Any] = {
            "nodes": {n.name: {"netns": n.netns, "address": str(n.address)} for n in self.nodes},
            "workloads": {
                p.key: {"netns": p.netns, "node": p.node, "ips": [str(i) for i in p.ips]}
                for p in self.pods
            },
        }
        if self.external:
            inv["external"] = {
                "netns": self.external.netns,
                "ips": [str(i) for i in self.external.ips],
            }
        return inv


def plan_lab(cluster: Cluster, external: list[str] | tuple[str, ...] = ()) -> LabPlan:
    """The lab for `cluster`, with an outside world owning `external` addresses if given."""
    pods = tuple(
        PodPlan(
            w.key,
            _netns_name("pod", f"{w.namespace}.{w.name}"),
            w.node,
            w.ips,
            host_veth_name(w.key),
        )
        for w in cluster.workloads
    )
    taken = {UNDERLAY_NETNS, EXTERNAL_NETNS} | {p.netns for p in pods}
    nodes = tuple(
        NodePlan(
            n.name,
            _node_netns(n.name, taken),
            n.address,
            n.pod_cidr,
            n.router_ip,
            "n" + _short_hash("node/" + n.name),
        )
        for n in cluster.nodes
    )
    ext = None
    if external:
        ext = ExternalPlan(EXTERNAL_NETNS, _external_ips(cluster, external), "ext0")
    names = [n.netns for n in nodes] + [p.netns for p in pods]
    if len(set(names)) != len(names):
        raise LabPlanError("two nodes or workloads map to the same namespace name")
    wg = cluster.wireguard
    mtu = tunnel_mtu(wg.underlay_mtu) if wg is not None and wg.enabled else None
    ipsec = cluster.ipsec
    esp = None
    if ipsec is not None and ipsec.enabled:
        from netcc.contract.ipsec import esp_mtu

        esp = esp_mtu(ipsec.underlay_mtu, ipsec.icv_bits)
    return LabPlan(cluster.name, nodes, pods, ext, tunnel_mtu=mtu, pod_mtu=esp)


def tunnel_mtu(underlay_mtu: int) -> int:
    from netcc.emit.tunnels import OVERHEAD

    return underlay_mtu - OVERHEAD


def _external_ips(cluster: Cluster, given: list[str] | tuple[str, ...]) -> tuple[IPv4Address, ...]:
    ips: list[IPv4Address] = []
    taken = {n.address for n in cluster.nodes} | {n.router_ip for n in cluster.nodes}
    for text in given:
        try:
            ip = ip_address(text)
        except ValueError:
            raise LabPlanError(f"--external {text}: not an IP address") from None
        if not isinstance(ip, IPv4Address):
            raise LabPlanError(f"--external {text}: the lab is IPv4 only")
        if ip.is_loopback or ip.is_multicast or ip.is_unspecified or ip.is_link_local:
            raise LabPlanError(f"--external {text}: not a unicast host address")
        if ip in cluster.pod_cidr or any(ip in n.pod_cidr for n in cluster.nodes):
            raise LabPlanError(f"--external {text}: inside the cluster's pod CIDR")
        if ip in taken:
            raise LabPlanError(f"--external {text}: a node's address")
        if ip in ips:
            raise LabPlanError(f"--external {text}: given twice")
        ips.append(ip)
    return tuple(ips)


def resolve_endpoint(plan: LabPlan, ref: str) -> Endpoint:
    """`namespace/workload`, a node name, an external address, or any address of the lab."""
    for p in plan.pods:
        if p.key == ref:
            if not p.ips:
                raise LabPlanError(f"{ref}: the workload has no IP address")
            return Endpoint("pod", p.key, p.netns, p.ips[0])
    for n in plan.nodes:
        if n.name == ref:
            return Endpoint("node", n.name, n.netns, n.address)
    try:
        ip = ip_address(ref)
    except ValueError:
        raise LabPlanError(
            f"{ref}: not a workload (namespace/name), a node, or an address of the lab"
        ) from None
    if plan.external and ip in plan.external.ips:
        return Endpoint("external", str(ip), plan.external.netns, ip)
    for p in plan.pods:
        if ip in p.ips:
            return Endpoint("pod", p.key, p.netns, ip)
    for n in plan.nodes:
        if ip == n.address:
            return Endpoint("node", n.name, n.netns, ip)
    raise LabPlanError(f"{ref}: no namespace of the lab owns this address")


def plan_to_doc(plan: LabPlan) -> dict[str, Any]:
    """Everything in the plan, as JSON (kept in the state file)."""
    doc: dict[str, Any] = {
        "cluster": plan.cluster,
        "underlay": plan.underlay,
        "nodes": [
            {
                "name": n.name,
                "netns": n.netns,
                "address": str(n.address),
                "podCIDR": str(n.pod_cidr),
                "router": str(n.router_ip),
                "port": n.port,
            }
            for n in plan.nodes
        ],
        "pods": [
            {
                "key": p.key,
                "netns": p.netns,
                "node": p.node,
                "ips": [str(i) for i in p.ips],
                "veth": p.veth,
            }
            for p in plan.pods
        ],
    }
    if plan.external:
        e = plan.external
        doc["external"] = {"netns": e.netns, "ips": [str(i) for i in e.ips], "port": e.port}
    if plan.tunnel_mtu is not None:
        doc["tunnelMTU"] = plan.tunnel_mtu
    if plan.pod_mtu is not None:
        doc["podMTU"] = plan.pod_mtu
    return doc


def plan_from_doc(doc: dict[str, Any]) -> LabPlan:
    """The plan a running lab was made from (for `probe`, `status` and `down`)."""
    nodes = tuple(
        NodePlan(
            n["name"],
            n["netns"],
            IPv4Address(n["address"]),
            IPv4Network(n["podCIDR"]),
            IPv4Address(n["router"]),
            n["port"],
        )
        for n in doc["nodes"]
    )
    pods = tuple(
        PodPlan(p["key"], p["netns"], p["node"], tuple(IPv4Address(i) for i in p["ips"]), p["veth"])
        for p in doc["pods"]
    )
    e = doc.get("external")
    external = (
        ExternalPlan(e["netns"], tuple(IPv4Address(i) for i in e["ips"]), e["port"]) if e else None
    )
    return LabPlan(
        doc["cluster"],
        nodes,
        pods,
        external,
        doc["underlay"],
        doc.get("tunnelMTU"),
        doc.get("podMTU"),
    )
