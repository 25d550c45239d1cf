"""Cluster address plan: pod and service CIDRs, and nodes (names, addresses, pod CIDRs)."""

from __future__ import annotations

import bisect
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from netcc.diagnostics import join_key
from netcc.validate.access import entries, quote, text
from netcc.validate.addresses import ipv4_address, ipv4_cidr, special_address, special_network
from netcc.validate.context import Context
from netcc.validate.k8s_names import describe, dns1123_subdomain

MAX_NODE_PREFIX = 30  # a node needs its router address and at least one pod address


def check_network(ctx: Context, spec: dict[str, Any]) -> None:
    """spec.podCIDR, spec.serviceCIDR and spec.nodes; records what references need in `ctx`."""
    pod = _cluster_cidr(ctx, spec, "podCIDR", "pod CIDR")
    service = _cluster_cidr(ctx, spec, "serviceCIDR", "service CIDR")
    if pod and service and pod.overlaps(service):
        ctx.error("spec.serviceCIDR", f"serviceCIDR {service} overlaps podCIDR {pod}")
        service = None  # no further verdicts against a broken plan
    ctx.pod_cidr, ctx.service_cidr = pod, service
    _check_nodes(ctx, spec.get("nodes"))


def _cluster_cidr(ctx: Context, spec: dict[str, Any], field: str, what: str) -> IPv4Network | None:
    """spec.podCIDR or spec.serviceCIDR: an IPv4 range clear of loopback, multicast...
    (so are the pod and service addresses inside it); None when it cannot be used."""
    path = f"spec.{field}"
    cidr = ipv4_cidr(ctx, spec.get(field), path, what)
    special = special_network(cidr) if cidr is not None else None
    if special is not None:
        ctx.error(path, f"{field} {cidr} overlaps {special}: pods and services cannot use it")
        return None
    return cidr


def _check_nodes(ctx: Context, nodes: Any) -> None:
    names: dict[str, str] = {}
    addresses: dict[IPv4Address, str] = {}
    cidrs = _CidrSet()
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
            cidrs.add(cidr, path)
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
    what = special_address(address)
    if what is not None:
        ctx.error(path, f"node address {address} is {what}, not the node's underlay address")
    if address in seen:
        ctx.error(path, f"node address {address} is already used by {seen[address]}")
    for field, cidr in (("podCIDR", ctx.pod_cidr), ("serviceCIDR", ctx.service_cidr)):
        if cidr is not None and address in cidr:
            ctx.error(path, f"node address {address} is inside the cluster {field} {cidr}")


def _check_pod_cidr(ctx: Context, value: Any, others: _CidrSet, path: str) -> IPv4Network | None:
    cidr = ipv4_cidr(ctx, value, path, "node podCIDR")
    if cidr is None:
        return None
    if cidr.prefixlen > MAX_NODE_PREFIX:
        ctx.error(path, f"node podCIDR {cidr} is too small: a node needs at least a /30")
        return None
    if ctx.pod_cidr is not None and not cidr.subnet_of(ctx.pod_cidr):
        ctx.error(path, f"node podCIDR {cidr} is not inside the cluster podCIDR {ctx.pod_cidr}")
        return cidr
    clash = others.overlapping(cidr)
    if clash is not None:
        ctx.error(path, f"node podCIDR {cidr} overlaps {clash[0]} of {clash[1]}")
    return cidr


class _CidrSet:
    """Node pod CIDRs seen so far, to find an overlap in O(log n) rather than O(n).

    Two CIDRs overlap only when one holds the other: the new one is inside an earlier one
    (one of its at most 33 enclosing prefixes is known), or an earlier one starts inside it.
    """

    def __init__(self) -> None:
        self.by_prefix: dict[tuple[int, int], int] = {}  # prefix -> position in items
        self.starts: list[tuple[int, int]] = []  # (network address, position), sorted
        self.items: list[tuple[IPv4Network, str]] = []

    def overlapping(self, cidr: IPv4Network) -> tuple[IPv4Network, str] | None:
        """An earlier CIDR `cidr` overlaps (the first one given, when several do)."""
        start, end = int(cidr.network_address), int(cidr.broadcast_address)
        found = []
        for length in range(cidr.prefixlen + 1):
            mask = (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF
            hit = self.by_prefix.get((start & mask, length))
            if hit is not None:
                found.append(hit)
        i = bisect.bisect_left(self.starts, (start, -1))
        while i < len(self.starts) and self.starts[i][0] <= end:
            found.append(self.starts[i][1])
            i += 1
            if len(found) > 1:
                break
        return self.items[min(found)] if found else None

    def add(self, cidr: IPv4Network, path: str) -> None:
        key = (int(cidr.network_address), cidr.prefixlen)
        self.by_prefix.setdefault(key, len(self.items))
        bisect.insort(self.starts, (key[0], len(self.items)))
        self.items.append((cidr, path))
