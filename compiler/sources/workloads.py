"""Workload classes from pod templates: a Deployment's (and every other controller's) pods, or a
bare Pod, are one class named after the object, with the template's labels and its containers'
ports."""

from __future__ import annotations

from typing import Any

from netcc.diagnostics import join_index
from netcc.sources.entries import Finding, at, described, join, labels
from netcc.sources.manifests import Manifest

# (API group, kind) -> path of the pod template in the object ("": the object is the pod)
TEMPLATES = {
    ("apps", "Deployment"): "spec.template",
    ("apps", "StatefulSet"): "spec.template",
    ("apps", "DaemonSet"): "spec.template",
    ("apps", "ReplicaSet"): "spec.template",
    ("extensions", "Deployment"): "spec.template",
    ("extensions", "DaemonSet"): "spec.template",
    ("extensions", "ReplicaSet"): "spec.template",
    ("batch", "Job"): "spec.template",
    ("batch", "CronJob"): "spec.jobTemplate.spec.template",
    ("", "ReplicationController"): "spec.template",
    ("", "Pod"): "",
}


def _ports(
    manifest: Manifest, containers_path: str, what: str, findings: list[Finding]
) -> tuple[list[tuple[dict[str, Any], str]], bool]:
    """Every container's ports as (class port, manifest path), duplicates collapsed (an unnamed
    port into a named one of the same number and protocol); False with errors when the
    containers or their ports are no lists of mappings."""
    containers = at(manifest.obj, containers_path)
    found: list[tuple[dict[str, Any], str]] = []
    if containers is None:
        return found, True
    ok = True

    def wrong(path: str, expected: str, value: Any) -> None:
        nonlocal ok
        message = f"{what}: expected {expected}, got {described(value)}"
        findings.append(Finding(message, manifest, path))
        ok = False

    if not isinstance(containers, list):
        wrong(containers_path, "a list of containers", containers)
        return found, False
    seen: dict[tuple[Any, Any], int] = {}  # (port, protocol) -> index in `found`
    for i, container in enumerate(containers):
        path = join_index(containers_path, i)
        if not isinstance(container, dict):
            wrong(path, "a container (a mapping)", container)
            continue
        ports = container.get("ports")
        if ports is None:
            continue
        if not isinstance(ports, list):
            wrong(join(path, "ports"), "a list of ports", ports)
            continue
        for j, port in enumerate(ports):
            port_path = join_index(join(path, "ports"), j)
            if not isinstance(port, dict):
                wrong(port_path, "a container port (a mapping)", port)
                continue
            entry: dict[str, Any] = {}
            if port.get("name") is not None:
                entry["name"] = port["name"]
            if "containerPort" in port:
                entry["port"] = port["containerPort"]
            entry["protocol"] = port.get("protocol") or "TCP"
            key = (_hashable(entry.get("port")), _hashable(entry["protocol"]))
            if key in seen:
                first, _ = found[seen[key]]
                if "name" not in entry or entry.get("name") == first.get("name"):
                    continue
                if "name" not in first:
                    found[seen[key]] = (entry, port_path)
                    continue
            seen.setdefault(key, len(found))
            found.append((entry, port_path))
    return found, ok


def _hashable(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool | None) else repr(value)


def workload_class(
    manifest: Manifest, template: str, namespace: str, what: str, findings: list[Finding]
) -> tuple[dict[str, Any], dict[str, str]] | None:
    """The class of the pods of `manifest` (pod template at `template`) and its paths (entry
    path prefix -> manifest path prefix); None, with errors, when it cannot be one."""
    prefix = template + "." if template else ""
    if template and not isinstance(at(manifest.obj, template), dict):
        value = at(manifest.obj, template)
        got = described(value)
        findings.append(Finding(f"{what} has no pod template: got {got}", manifest, template))
        return None
    spec = at(manifest.obj, prefix + "spec")
    if spec is not None and not isinstance(spec, dict):
        message = f"{what}: the pod spec must be a mapping, got {described(spec)}"
        findings.append(Finding(message, manifest, prefix + "spec"))
        return None
    if (spec or {}).get("hostNetwork") is True:
        message = (
            f"pods of {what} share the node's network namespace (hostNetwork); "
            "netcc cannot give them a class address"
        )
        findings.append(Finding(message, manifest, prefix + "spec.hostNetwork"))
        return None
    label_path = prefix + "metadata.labels"
    pod_labels = labels(manifest, label_path, f"the pods of {what}", findings)
    containers = prefix + "spec.containers"
    ports, ports_ok = _ports(manifest, containers, what, findings)
    if pod_labels is None or not ports_ok:
        return None
    doc: dict[str, Any] = {"name": manifest.name, "namespace": namespace, "labels": pod_labels}
    paths = {
        "": "metadata",
        "name": "metadata.name",
        "namespace": "metadata.namespace",
        "labels": label_path,
        "ports": containers,
    }
    if ports:
        doc["ports"] = [entry for entry, _ in ports]
        paths["ports"] = ports[0][1].rsplit("[", 1)[0]
        for k, (_, path) in enumerate(ports):
            paths[f"ports[{k}]"] = path
            paths[f"ports[{k}].port"] = join(path, "containerPort")
    return doc, paths
