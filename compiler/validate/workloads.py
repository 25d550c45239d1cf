"""Workloads: names, references, labels, fixed pod IPs and container ports."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

from netcc.diagnostics import join_key, join_path, show
from netcc.validate.access import entries, integer, items, quote, text
from netcc.validate.addresses import ipv4_address
from netcc.validate.context import Context
from netcc.validate.k8s_names import describe, dns1123_subdomain
from netcc.validate.labels import check_labels
from netcc.validate.ports import check_port_name


def check_workloads(ctx: Context, workloads: Any) -> None:
    names: dict[tuple[str, str], str] = {}
    ips: dict[IPv4Address, str] = {}
    for path, workload in entries(workloads, "spec.workloads"):
        name = text(workload.get("name"))
        namespace = text(workload.get("namespace"))
        node = text(workload.get("node"))
        if name is not None:
            name_path = join_key(path, "name")
            if problems := dns1123_subdomain(name):
                ctx.error(name_path, describe("workload name", name, problems))
            if namespace is not None and (namespace, name) in names:
                first = names[(namespace, name)]
                message = f"workload {show(namespace)}/{show(name)} is already declared by {first}"
                ctx.error(name_path, message)
            names.setdefault((namespace or "", name), path)
        ctx.check_reference("namespace", namespace, ctx.namespaces, join_key(path, "namespace"))
        if _check_kind(ctx, workload, path):
            check_labels(ctx, workload.get("labels"), join_key(path, "labels"))
            _check_ports(ctx, workload.get("ports"), join_key(path, "ports"))
            continue
        node_known = ctx.check_reference("node", node, ctx.nodes, join_key(path, "node"))
        check_labels(ctx, workload.get("labels"), join_key(path, "labels"))
        node_cidr = (ctx.nodes or {}).get(node) if node is not None and node_known else None
        for i, value in enumerate(items(workload.get("ips"))):
            ip_path = join_path(path, "ips", i)
            ip = ipv4_address(ctx, value, ip_path, "pod address")
            if ip is None:
                continue
            if ip in ips:
                ctx.error(ip_path, f"IP {ip} is already used by {ips[ip]}")
            ips.setdefault(ip, ip_path)
            _check_ip_on_node(ctx, ip, node or "", node_cidr, ip_path)
        _check_ports(ctx, workload.get("ports"), join_key(path, "ports"))


def _check_kind(ctx: Context, workload: dict, path: str) -> bool:
    """True for a class (no `node`, no `ips`); reports a workload that is half of each."""
    has_node, has_ips = "node" in workload, "ips" in workload
    if has_node and not has_ips:
        ctx.error(
            join_key(path, "node"),
            "a workload with a node needs its fixed addresses in ips; a workload class (pods "
            "scheduled at runtime) has neither node nor ips",
        )
    elif has_ips and not has_node:
        ctx.error(
            join_key(path, "ips"),
            "a workload with fixed ips needs the node they live on; a workload class (pods "
            "scheduled at runtime) has neither node nor ips",
        )
    elif has_node and "perNode" in workload:
        ctx.error(
            join_key(path, "perNode"),
            "perNode is for workload classes (no node, no ips); this workload has fixed addresses",
        )
    return not has_node and not has_ips


def _check_ip_on_node(ctx: Context, ip: IPv4Address, node: str, cidr: Any, path: str) -> None:
    if cidr is None:
        return
    where = f"podCIDR {cidr} of node {quote(node)}"
    if ip not in cidr:
        ctx.error(path, f"IP {ip} is outside the {where}")
    elif ip == cidr.network_address:
        ctx.error(path, f"IP {ip} is the network address of the {where}")
    elif ip == cidr.broadcast_address:
        ctx.error(path, f"IP {ip} is the broadcast address of the {where}")
    elif ip == cidr.network_address + 1:
        ctx.error(
            path, f"IP {ip} is the router address of node {quote(node)} (first host of {cidr})"
        )


def _check_ports(ctx: Context, ports: Any, path: str) -> None:
    """Container ports: IANA names, unique names, unique (port, protocol)."""
    names: dict[str, str] = {}
    numbers: dict[tuple[int, str], str] = {}
    for port_path, port in entries(ports, path):
        check_port_name(ctx, port, port_path, names)
        number = integer(port.get("port"))
        protocol = port.get("protocol", "TCP")
        if number is not None and isinstance(protocol, str):
            if (number, protocol) in numbers:
                first = numbers[number, protocol]
                ctx.error(
                    join_key(port_path, "port"),
                    f"port {number}/{show(protocol)} is already declared by {first}",
                )
            numbers.setdefault((number, protocol), port_path)
