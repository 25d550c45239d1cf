"""The EndpointSlices the lab publishes: its runtime pods as endpoints of OUT's dynamic services,
computed as the EndpointSlice controller of a real cluster would (pure: pods and services in,
`discovery.k8s.io/v1` objects out).

A pod is an endpoint of a service when it is in the service's namespace, its labels hold every
`key=value` of the selector, and it has an address. Its port for a service port is the
targetPort of the port's class whose block holds its address (`Services.placement`); a port
with no such class is left out for that pod, and a pod left with no port at all is no
endpoint. Not-ready pods are published with `ready: false`, as the controller does. Endpoints
whose port sets differ go in different slices (at most MAX_ENDPOINTS each); a service with no
endpoint gets one empty slice. A slice's name is the service's name and a hash of its
namespace, port set and chunk, so the same ports keep the same name. Output is sorted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from ipaddress import IPv4Address
from typing import Any

from netcc.contract.services import DynamicPort, Services

API_VERSION = "discovery.k8s.io/v1"
KIND = "EndpointSlice"
SERVICE_NAME = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
MANAGER = "netcc-lab"
MAX_ENDPOINTS = 100  # the controller's default --max-endpoints-per-slice

Port = tuple[str, int, str]  # (name, number, protocol) of a slice's port


def slices(
    services: Services | None, pods: Mapping[str, Mapping[str, Any]], resource_version: str = ""
) -> list[dict[str, Any]]:
    """Every service's EndpointSlices, sorted by namespace and name; `resource_version` is
    written into each."""
    if services is None:
        return []
    out = []
    for service, ports in services.by_service().items():
        if not any(p.selector for p in ports):
            continue  # a service without a selector has no managed slices
        groups: dict[tuple[Port, ...], list[dict[str, Any]]] = {}
        for pod in filter(_well_formed, pods.values()):
            ip = _address(pod)
            resolved = _ports(services, ports, pod, ip) if ip is not None else ()
            if resolved:
                groups.setdefault(resolved, []).append(_endpoint(pod, str(ip)))
        if not groups:
            out.append(_slice(service, (), [], 0, resource_version))
        for key, endpoints in groups.items():
            endpoints.sort(key=lambda e: (IPv4Address(e["addresses"][0]), e["targetRef"]["name"]))
            for i in range(0, len(endpoints), MAX_ENDPOINTS):
                chunk = endpoints[i : i + MAX_ENDPOINTS]
                out.append(_slice(service, key, chunk, i // MAX_ENDPOINTS, resource_version))
    return sorted(out, key=lambda s: (s["metadata"]["namespace"], s["metadata"]["name"]))


def _well_formed(pod: object) -> bool:
    return isinstance(pod, Mapping) and all(
        isinstance(pod.get(k), str) for k in ("namespace", "name")
    )


def selected(pod: Mapping[str, Any], port: DynamicPort) -> bool:
    """Whether the pod is in the port's namespace and its labels match the selector."""
    labels = pod.get("labels")
    labels = labels if isinstance(labels, Mapping) else {}
    return (
        bool(port.selector)
        and pod.get("namespace") == port.namespace
        and all(labels.get(k) == v for k, v in port.selector)
    )


def _address(pod: Mapping[str, Any]) -> IPv4Address | None:
    ip = pod.get("ip")
    try:
        return IPv4Address(ip) if isinstance(ip, str) else None
    except ValueError:
        return None


def _ports(
    services: Services, ports: list[DynamicPort], pod: Mapping[str, Any], ip: IPv4Address
) -> tuple[Port, ...]:
    """The pod's (name, targetPort, protocol) for each port it backs, sorted."""
    found = set()
    for port in ports:
        placed = services.placement(port, ip) if selected(pod, port) else None
        if placed is not None:
            found.add((port.port_name, placed[0].target_port, port.protocol))
    return tuple(sorted(found))


def _endpoint(pod: Mapping[str, Any], ip: str) -> dict[str, Any]:
    ready = bool(pod.get("ready"))
    return {
        "addresses": [ip],
        "conditions": {"ready": ready, "serving": ready, "terminating": False},
        "nodeName": str(pod.get("node", "")),
        "targetRef": {
            "kind": "Pod",
            "namespace": pod["namespace"],
            "name": pod["name"],
            "uid": str(pod.get("uid", "")),
        },
    }


def slice_name(service: str, ports: tuple[Port, ...], chunk: int = 0) -> str:
    """`NAME-HASH`: stable for a service, port set and chunk."""
    namespace, name = service.split("/", 1)
    seed = json.dumps([namespace, name, [list(p) for p in ports], chunk])
    return f"{name}-{hashlib.sha256(seed.encode()).hexdigest()[:10]}"


def _slice(
    service: str,
    ports: tuple[Port, ...],
    endpoints: list[dict[str, Any]],
    chunk: int,
    resource_version: str,
) -> dict[str, Any]:
    namespace, name = service.split("/", 1)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": slice_name(service, ports, chunk),
            "namespace": namespace,
            "labels": {SERVICE_NAME: name, MANAGED_BY: MANAGER},
            "resourceVersion": resource_version,
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports],
    }
