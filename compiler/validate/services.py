"""Services: names, cluster IPs, ports, node ports and the NodePort-only settings."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

from netcc.diagnostics import join_key, show
from netcc.validate.access import entries, integer, items, text
from netcc.validate.addresses import ipv4_address
from netcc.validate.context import Context
from netcc.validate.k8s_names import describe, dns1035_label, port_name
from netcc.validate.labels import check_labels
from netcc.validate.ports import check_port_name


class _Seen:
    """Cluster-wide uniqueness: service names per namespace, cluster IPs, node ports."""

    def __init__(self) -> None:
        self.names: dict[tuple[str, str], str] = {}
        self.cluster_ips: dict[IPv4Address, str] = {}
        self.node_ports: dict[tuple[int, str], str] = {}


def check_services(ctx: Context, services: Any) -> None:
    seen = _Seen()
    for path, service in entries(services, "spec.services"):
        _check_name(ctx, service, path, seen)
        namespace = text(service.get("namespace"))
        ctx.check_reference("namespace", namespace, ctx.namespaces, join_key(path, "namespace"))
        _check_cluster_ip(ctx, service.get("clusterIP"), join_key(path, "clusterIP"), seen)
        check_labels(ctx, service.get("selector"), join_key(path, "selector"))
        node_port_type = service.get("type", "ClusterIP") == "NodePort"
        _check_ports(ctx, service.get("ports"), join_key(path, "ports"), node_port_type, seen)
        if "externalTrafficPolicy" in service and not node_port_type:
            ctx.error(
                join_key(path, "externalTrafficPolicy"),
                "externalTrafficPolicy is only allowed for services of type NodePort",
            )
        if "sessionAffinityConfig" in service and service.get("sessionAffinity") != "ClientIP":
            ctx.error(
                join_key(path, "sessionAffinityConfig"),
                "sessionAffinityConfig is only allowed with sessionAffinity: ClientIP",
            )


def _check_name(ctx: Context, service: dict[str, Any], path: str, seen: _Seen) -> None:
    name, namespace = text(service.get("name")), text(service.get("namespace"))
    if name is None:
        return
    name_path = join_key(path, "name")
    if problems := dns1035_label(name):
        ctx.error(name_path, describe("service name", name, problems))
    if namespace is None:
        return
    if (namespace, name) in seen.names:
        first = seen.names[namespace, name]
        message = f"service {show(namespace)}/{show(name)} is already declared by {first}"
        ctx.error(name_path, message)
    seen.names.setdefault((namespace, name), path)


def _check_cluster_ip(ctx: Context, value: Any, path: str, seen: _Seen) -> None:
    if value == "None":
        ctx.error(path, 'headless services (clusterIP: "None") are not supported')
        return
    ip = ipv4_address(ctx, value, path, "cluster IP")
    cidr = ctx.service_cidr
    if ip is None:
        return
    if ip in seen.cluster_ips:
        ctx.error(path, f"clusterIP {ip} is already used by {seen.cluster_ips[ip]}")
    seen.cluster_ips.setdefault(ip, path)
    if cidr is None:
        return
    if ip not in cidr:
        ctx.error(path, f"clusterIP {ip} is outside the serviceCIDR {cidr}")
    elif ip in (cidr.network_address, cidr.broadcast_address):
        kind = "network" if ip == cidr.network_address else "broadcast"
        ctx.error(path, f"clusterIP {ip} is the {kind} address of the serviceCIDR {cidr}")


def _check_ports(ctx: Context, ports: Any, path: str, node_port_type: bool, seen: _Seen) -> None:
    names: dict[str, str] = {}
    numbers: dict[tuple[int, str], str] = {}
    several = len(items(ports)) > 1
    for port_path, port in entries(ports, path):
        protocol = port.get("protocol", "TCP")
        protocol = protocol if isinstance(protocol, str) else "TCP"
        name = check_port_name(ctx, port, port_path, names)
        if name is None and several and "name" not in port:
            ctx.error(port_path, "ports need a name when a service has more than one port")
        number = integer(port.get("port"))
        if number is not None:
            if (number, protocol) in numbers:
                first = numbers[number, protocol]
                ctx.error(
                    join_key(port_path, "port"),
                    f"port {number}/{show(protocol)} is already used by {first}",
                )
            numbers.setdefault((number, protocol), port_path)
        target = text(port.get("targetPort"))
        if target is not None and (problems := port_name(target)):
            ctx.error(
                join_key(port_path, "targetPort"), describe("targetPort name", target, problems)
            )
        _check_node_port(ctx, port, port_path, protocol, node_port_type, seen)


def _check_node_port(
    ctx: Context, port: dict[str, Any], path: str, protocol: str, allowed: bool, seen: _Seen
) -> None:
    if "nodePort" not in port:
        return
    node_port_path = join_key(path, "nodePort")
    if not allowed:
        ctx.error(node_port_path, "nodePort is only allowed for services of type NodePort")
        return
    number = integer(port.get("nodePort"))
    if number is None:
        return
    if (number, protocol) in seen.node_ports:
        first = seen.node_ports[number, protocol]
        ctx.error(node_port_path, f"nodePort {number}/{show(protocol)} is already used by {first}")
    seen.node_ports.setdefault((number, protocol), path)
