"""Small hand-written specs for the unit tests, and helpers to read a plan back."""

from __future__ import annotations

import textwrap
from ipaddress import IPv4Address
from typing import NamedTuple

from netcc import contract as layout
from netcc.frontend import parse_spec
from netcc.model.types import Cluster
from netcc.plan.planner import ClusterPlan, NodePlan, plan
from netcc.resolve.resolution import resolve

# Two nodes, two namespaces. web-1 and web-2 (node-1) have the same labels and ports; web-3
# (node-1) has web's labels but another port; web-4 (node-2) is web-1's twin on another node.
BASE = """\
apiVersion: netcc.io/v1alpha1
kind: ClusterNetwork
metadata: {name: unit}
spec:
  podCIDR: 10.244.0.0/16
  serviceCIDR: 10.96.0.0/16
  nodes:
    - {name: node-1, address: 192.168.77.11, podCIDR: 10.244.1.0/24}
    - {name: node-2, address: 192.168.77.12, podCIDR: 10.244.2.0/24}
  namespaces:
    - {name: a, labels: {team: red}}
    - {name: b, labels: {team: blue}}
  workloads:
    - {name: web-1, namespace: a, node: node-1, labels: {app: web}, ips: [10.244.1.10],
       ports: [{name: http, port: 8080}]}
    - {name: web-2, namespace: a, node: node-1, labels: {app: web}, ips: [10.244.1.11],
       ports: [{name: http, port: 8080}]}
    - {name: web-3, namespace: a, node: node-1, labels: {app: web}, ips: [10.244.1.12],
       ports: [{name: http, port: 9090}]}
    - {name: web-4, namespace: a, node: node-2, labels: {app: web}, ips: [10.244.2.13],
       ports: [{name: http, port: 8080}]}
    - {name: api, namespace: a, node: node-2, labels: {app: api}, ips: [10.244.2.10],
       ports: [{name: http, port: 9090}, {name: dns, port: 53, protocol: UDP}]}
    - {name: db, namespace: b, node: node-2, labels: {app: db}, ips: [10.244.2.20],
       ports: [{name: pg, port: 5432}]}
"""


def spec_text(policies: str = "", base: str = BASE) -> str:
    """The base spec with `policies` (YAML list items, any indentation) under spec.policies."""
    if not policies.strip():
        return base
    body = textwrap.indent(textwrap.dedent(policies).strip("\n"), "    ")
    return base + "  policies:\n" + body + "\n"


def policy(name: str, namespace: str, spec: str) -> str:
    """One NetworkPolicy list item; `spec` is the YAML of its spec (flow or block style)."""
    spec = textwrap.indent(textwrap.dedent(spec).strip("\n"), "    ")
    return (
        "- apiVersion: networking.k8s.io/v1\n"
        "  kind: NetworkPolicy\n"
        f"  metadata: {{name: {name}, namespace: {namespace}}}\n"
        "  spec:\n"
        f"{spec}\n"
    )


def cluster_of(*policies: str, base: str = BASE) -> Cluster:
    cluster, _ = parse_spec(spec_text("".join(policies), base), "unit.yaml")
    return cluster


def plan_of(*policies: str, base: str = BASE) -> ClusterPlan:
    return plan(resolve(cluster_of(*policies, base=base)))


def node(p: ClusterPlan, name: str) -> NodePlan:
    return next(n for n in p.nodes if n.name == name)


def endpoint(p: ClusterPlan, pod: str) -> dict:
    """The endpoint map value of `ns/name` (its first address), as a dict of fields."""
    for n in p.nodes:
        for e in n.maps["netcc_endpoints"]:
            if e.note == pod:
                return e.value._asdict()
    raise KeyError(pod)


def peer_of(p: ClusterPlan, pod_or_ip: str) -> int:
    """The peer class of a pod (`ns/name`) or of an exact address in the ipcache."""
    for e in p.nodes[0].maps["netcc_ipcache"]:
        if e.note == pod_or_ip or e.key.ip == pod_or_ip:
            return e.value.peer
    raise KeyError(pod_or_ip)


def region_peer(p: ClusterPlan, cidr: str) -> int:
    for e in p.nodes[0].maps["netcc_ipcache_cidr"]:
        if e.note == cidr:
            return e.value.peer
    raise KeyError(cidr)


class PolicyEntry(NamedTuple):
    key: dict
    value: dict
    note: str


def policy_map_entries(n) -> list[PolicyEntry]:
    """Both policy maps of a node plan as field dicts; single-port (hash) entries get the full
    prefix."""
    full = layout.POLICY_PREFIX_FULL
    exact = [
        PolicyEntry({"prefixlen": full, **e.key._asdict()}, e.value._asdict(), e.note)
        for e in n.maps["netcc_policy_exact"]
    ]
    ranges = [
        PolicyEntry(e.key._asdict(), e.value._asdict(), e.note) for e in n.maps["netcc_policy"]
    ]
    return exact + ranges


def entries(p: ClusterPlan, node_name: str) -> set[tuple]:
    """Policy entries of a node as (profile, peer, dir, proto, port, prefixlen, verdict)."""
    return {
        (
            e.key["profile"],
            e.key["peer"],
            e.key["dir"],
            e.key["proto"],
            e.key["port"],
            e.key["prefixlen"],
            e.value["verdict"],
        )
        for e in policy_map_entries(node(p, node_name))
    }


def rule_verdict(p: ClusterPlan, policy_key: str, direction: str, index: int) -> int:
    return next(
        v.number
        for v in p.verdicts
        if v.policy == policy_key and v.direction == direction and v.index == index
    )


def deny_verdict(p: ClusterPlan, pod: str, direction: str) -> int:
    return next(v.number for v in p.verdicts if v.pod == pod and v.direction == direction)


def ip(text: str) -> IPv4Address:
    return IPv4Address(text)
