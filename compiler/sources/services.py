"""Services: ClusterIP and NodePort kept, LoadBalancer as NodePort; what netcc cannot serve
(ExternalName, headless) left out with a message. The cluster IP and node ports a manifest
leaves out stay out: the spec's merge assigns them. Entries share nothing with the objects."""

from __future__ import annotations

import copy
from typing import Any

from netcc.sources.entries import Finding, described
from netcc.sources.manifests import Manifest

KEPT = (
    "sessionAffinity",
    "sessionAffinityConfig",
    "externalTrafficPolicy",
    "internalTrafficPolicy",
)


def _port(port: Any) -> Any:
    """A service port as the spec has it (what is no mapping is left to validation)."""
    if not isinstance(port, dict):
        return copy.deepcopy(port)
    entry: dict[str, Any] = {}
    if port.get("name") is not None:
        entry["name"] = port["name"]
    if "port" in port:
        entry["port"] = port["port"]
    target = port.get("targetPort")
    if target is not None and target != 0 and target != "":
        entry["targetPort"] = target
    elif "port" in port:
        entry["targetPort"] = port["port"]
    entry["protocol"] = port.get("protocol") or "TCP"
    if port.get("nodePort") not in (None, 0):
        entry["nodePort"] = port["nodePort"]
    return entry


def _cluster_ip(spec: dict[str, Any]) -> tuple[Any, str]:
    """The cluster IP the manifest sets (None when it leaves it to the cluster), and its path."""
    value = spec.get("clusterIP")
    if value not in (None, ""):
        return value, "spec.clusterIP"
    ips = spec.get("clusterIPs")
    if isinstance(ips, list) and ips and ips[0] not in (None, ""):
        return ips[0], "spec.clusterIPs[0]"
    return None, "spec.clusterIP"


def service(
    manifest: Manifest, namespace: str, what: str, findings: list[Finding]
) -> tuple[dict[str, Any], dict[str, str]] | None:
    """The spec service of a v1 Service and its paths (entry path prefix -> manifest path
    prefix); None when netcc has none for it (an error or a note says why)."""
    spec = manifest.obj.get("spec")
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        message = f"{what}: spec must be a mapping, got {described(spec)}"
        findings.append(Finding(message, manifest, "spec"))
        return None

    def note(path: str, message: str) -> None:
        findings.append(Finding(f"{what}: {message}", manifest, path, "note"))

    kind = spec.get("type")
    if kind == "ExternalName":
        message = (
            f"{what}: ExternalName services are DNS only; netcc cannot translate them "
            "(it has no address to route)"
        )
        findings.append(Finding(message, manifest, "spec.type"))
        return None
    cluster_ip, ip_path = _cluster_ip(spec)
    if cluster_ip == "None":
        note(
            ip_path, "headless (clusterIP: None): no virtual IP to translate; its pods are classes"
        )
        return None
    doc: dict[str, Any] = {"name": manifest.name, "namespace": namespace}
    paths = {"": "metadata", "name": "metadata.name", "namespace": "metadata.namespace"}
    if kind == "LoadBalancer":
        note(
            "spec.type",
            "type LoadBalancer is translated as NodePort: the cloud load balancer is "
            "not netcc's; its nodePorts are",
        )
        kind = "NodePort"
    if kind is not None:
        doc["type"] = kind
        paths["type"] = "spec.type"
    if cluster_ip is not None:
        doc["clusterIP"] = cluster_ip
        paths["clusterIP"] = ip_path
    selector = spec.get("selector")
    if selector in (None, {}):
        where = "spec.selector" if "selector" in spec else "spec"
        note(
            where,
            "no selector: netcc gives it no backends (endpoints managed elsewhere are not served)",
        )
    else:
        doc["selector"] = copy.deepcopy(selector)
        paths["selector"] = "spec.selector"
    ports = spec.get("ports")
    if ports is not None:
        doc["ports"] = (
            [_port(p) for p in ports] if isinstance(ports, list) else copy.deepcopy(ports)
        )
    paths["ports"] = "spec.ports"
    for field in KEPT:
        if spec.get(field) is not None:
            doc[field] = copy.deepcopy(spec[field])
            paths[field] = f"spec.{field}"
    if spec.get("loadBalancerSourceRanges"):
        note(
            "spec.loadBalancerSourceRanges",
            "loadBalancerSourceRanges are not enforced: netcc's nodePorts take every client",
        )
    if spec.get("externalIPs"):
        note(
            "spec.externalIPs",
            "externalIPs are not served: netcc routes the cluster IP and nodePorts only",
        )
    families = spec.get("ipFamilies")
    if cluster_ip is None and isinstance(families, list) and families and "IPv4" not in families:
        note("spec.ipFamilies", "netcc gives it an IPv4 cluster IP (ipFamilies names no IPv4)")
    return doc, paths
