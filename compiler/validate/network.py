"""Cluster address plan: pod and service CIDRs, and nodes (names, addresses, pod CIDRs)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import Any

from netcc.diagnostics import join_key
from netcc.validate.access import entries, quote, text
from netcc.validate.addresses import ipv4_address, ipv4_cidr
from netcc.validate.context import Context
from netcc.validate.k8s_names import describe, dns1123_subdomain

MAX_NODE_PREFIX = 30  # a node needs its router address and at least one pod address


def check_network(ctx: Context, spec: dict[str, Any]) -> None:
    """spec.podCIDR, spec.serviceCIDR and spec.nodes; records what references need in `ctx`."""
    pod = ipv4_cidr(ctx, spec.get("podCIDR"), "spec.podCIDR", "pod CIDR")
    service = ipv4_cidr(ctx, spec.get("serviceCIDR"), "spec.serviceCIDR", "service CIDR")
    if pod and service and pod.overlaps(service):
        ctx.error("spec.serviceCIDR", f"serviceCIDR {service} overlaps podCIDR {pod}")
        service = None  # no further verdicts against a broken plan
    ctx.pod_cidr, ctx.service_cidr = pod, service
    _check_nodes(ctx, spec.get("nodes"))


def _check_nodes(ctx: Context, nodes: Any) -> None:
    names: dict[str, str] = {}
    addresses: dict[IPv4Address, str] = {}
    cidrs: list[tuple[IPv4Network, str]] = []
    known: dict[str, IPv4Network | None] = {}
    readable = isinstance(nodes, list) and all(isinstance(n, dict) for n in nodes)
    for path, node in entries(nodes, "spec.nodes"):
        name = text(node.get("name"))
        if name is None:
            readable = False
        else:
            _check_name(ctx, name, names, join_key(path, "name"))
            names.setdefault(name, path)
        address = ipv4_address(ctx, node.get("address"), join_key(path, "address"), "node address")
        if address is not None:
            _check_address(ctx, address, addresses, join_key(path, "address"))
            addresses.setdefault(address, path)
        cidr = _check_pod_cidr(ctx, node.get("podCIDR"), cidrs, join_key(path, "podCIDR"))
        if cidr is not None:
            cidrs.append((cidr, path))
        if name is not None:
            known.setdefault(name, cidr)
    if readable:
        ctx.nodes = known


def _check_name(ctx: Context, name: str, seen: dict[str, str], path: str) -> None:
    if problems := dns1123_subdomain(name):
        ctx.error(path, describe("node name", name, problems))
    if name in seen:
        ctx.error(path, f"node name {quote(name)} is already used by {seen[name]}")


def _check_address(
    ctx: Context, address: IPv4Address, seen: dict[IPv4Address, str], path: str
) -> None:
    if address in seen:
        ctx.error(path, f"node address {address} is already used by {seen[address]}")
    for field, cidr in (("podCIDR", ctx.pod_cidr), ("serviceCIDR", ctx.service_cidr)):
        if cidr is not None and address in cidr:
            ctx.error(path, f"node address {address} is inside the cluster {field} {cidr}")


def _check_pod_cidr(
    ctx: Context, value: Any, others: list[tuple[IPv4Network, str]], path: str
) -> IPv4Network | None:
    cidr = ipv4_cidr(ctx, value, path, "node podCIDR")
    if cidr is None:
        return None
    if cidr.prefixlen > MAX_NODE_PREFIX:
        ctx.error(path, f"node podCIDR {cidr} is too small: a node needs at least a /30")
        return None
    if ctx.pod_cidr is not None and not cidr.subnet_of(ctx.pod_cidr):
        ctx.error(path, f"node podCIDR {cidr} is not inside the cluster podCIDR {ctx.pod_cidr}")
        return cidr
    for other, other_path in others:
        if cidr.overlaps(other):
            ctx.error(path, f"node podCIDR {cidr} overlaps {other} of {other_path}")
            break
    return cidr
