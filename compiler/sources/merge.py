"""Merge what a spec's sources declare into its document, before validation.

For each `spec.sources[i]`, its files (a `Bundle`) are read as Kubernetes objects and
translated (`translate`); the entries join the spec's own: namespaces, workload classes,
services, NetworkPolicies. The spec wins: an entry of the same namespace/name in the spec
overrides the source's (a note says so). Each entry taken from a manifest is *mounted* in the
source map, so that every later diagnostic about it points into the manifest's own file, line
and column.

What manifests leave to the API server is decided here, deterministically: a Service without
`clusterIP` gets a free address of `serviceCIDR` (probing from a hash of its name), a NodePort
without `nodePort` a free port of 30000-32767; notes name them, since the cluster must be
told the same (set them in the manifests). A class's `perNode` is the source's, else the
default.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from netcc.diagnostics import Diagnostic, SourceMap, SpecError
from netcc.sources.bundle import Bundle, source_entries

NODE_PORTS = range(30000, 32768)
SECTIONS = (("namespaces", "namespace"), ("workloads", "workload"),
            ("services", "service"), ("policies", "policy"))  # fmt: skip


@dataclass
class Merged:
    """The document with the sources' entries, and what the user should hear about."""

    document: dict[str, Any]
    notes: list[Diagnostic] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    taken: dict[str, int] = field(default_factory=dict)  # section -> entries taken
    from_sources: set[str] = field(default_factory=set)  # spec paths of entries taken


def _key(section: str, entry: Mapping[str, Any]) -> str:
    if section == "namespaces":
        return str(entry.get("name"))
    if section == "policies":
        meta = entry.get("metadata") or {}
        return f"{meta.get('namespace')}/{meta.get('name')}"
    return f"{entry.get('namespace')}/{entry.get('name')}"


def merge(
    document: Any,
    source_map: SourceMap,
    bundle: Bundle | None,
    folded: Mapping[str, str] | None = None,
) -> Merged:
    """The document with every source's entries; SpecError for a source that cannot be read
    or holds an object netcc should understand but cannot. `folded`: classes of the sources
    (namespace/name) left out, each for the class it cannot be told apart from."""
    entries = source_entries(document)
    if not entries:
        return Merged(document)
    from netcc.sources.manifests import read_named
    from netcc.sources.translate import translate

    if bundle is None:
        raise SpecError([source_map.diagnostic("spec.sources", "the sources were not read")])
    doc = copy.deepcopy(document)
    spec = doc["spec"]
    out = Merged(doc)
    errors: list[Diagnostic] = []
    for i, entry in enumerate(entries):
        manifests = []
        for f in bundle.of(i):
            try:
                manifests += read_named(f.data, f.name)
            except SpecError as e:
                errors += [d if d.file else _in(d, f.name) for d in e.diagnostics]
        own = [n.get("name") for n in spec.get("namespaces") or [] if isinstance(n, dict)]
        t = translate(manifests, entry.get("namespace"), [n for n in own if isinstance(n, str)])
        for finding in t.findings:
            line, col = finding.manifest.locate(finding.path)
            severity = "error" if finding.severity == "error" else "note"
            file = finding.manifest.file
            d = Diagnostic(finding.message, finding.path, line, col, severity, file)
            (errors if severity == "error" else out.notes).append(d)
        for kind, count in t.skipped.items():
            out.skipped[kind] = out.skipped.get(kind, 0) + count
        per_node = entry.get("perNode")
        for section, items in (
            ("namespaces", t.namespaces),
            ("workloads", t.workloads),
            ("services", t.services),
            ("policies", t.policies),
        ):
            have = spec.setdefault(section, [])
            if not isinstance(have, list):
                continue
            known = {_key(section, e) for e in have if isinstance(e, dict)}
            for item in items:
                entry_doc = dict(item.doc)
                key = _key(section, entry_doc)
                if key in known:
                    why = f"{key}: the spec's own entry is used; this one is ignored"
                    out.notes.append(_item_note(item, why))
                    continue
                if section == "workloads" and folded and key in folded:
                    why = (
                        f"pods of {key} and of {folded[key]} agree on every label that "
                        f"matters: one class, {folded[key]}"
                    )
                    out.notes.append(_item_note(item, why))
                    continue
                if section == "workloads" and isinstance(per_node, int):
                    entry_doc.setdefault("perNode", per_node)
                known.add(key)
                path = f"spec.{section}[{len(have)}]"
                have.append(entry_doc)
                source_map.mount(path, item.manifest.file, _locator(item))
                out.from_sources.add(path)
                out.taken[section] = out.taken.get(section, 0) + 1
    if errors:
        raise SpecError(errors)
    out.notes += _assign_addresses(spec, out.from_sources, source_map)
    return out


def _item_note(item: Any, message: str) -> Diagnostic:
    """A note about an object of a source, at the object."""
    line, col = item.manifest.locate("")
    return Diagnostic(message, "metadata", line, col, "note", item.manifest.file)


def _in(d: Diagnostic, file: str) -> Diagnostic:
    return Diagnostic(d.message, d.path, d.line, d.col, d.severity, file)


def _locator(item: Any) -> Any:
    def locate(rest: str) -> tuple[int, int]:
        _, line, col = item.origin(rest)
        return line, col

    return locate


def _assign_addresses(
    spec: dict[str, Any], taken: set[str], source_map: SourceMap
) -> list[Diagnostic]:
    """ClusterIPs and nodePorts for the sources' services that name none."""
    services = spec.get("services") or []
    cidr_text = spec.get("serviceCIDR")
    try:
        cidr = ipaddress.IPv4Network(cidr_text) if isinstance(cidr_text, str) else None
    except ValueError:
        cidr = None
    used_ips = {s.get("clusterIP") for s in services if isinstance(s, dict)}
    used_ports = {
        p.get("nodePort")
        for s in services
        if isinstance(s, dict)
        for p in (s.get("ports") or [])
        if isinstance(p, dict)
    }
    notes = []
    for n, svc in enumerate(services):
        path = f"spec.services[{n}]"
        if path not in taken or not isinstance(svc, dict):
            continue
        key = _key("services", svc)
        if "clusterIP" not in svc and cidr is not None:
            ip = _free_ip(cidr, key, used_ips)
            if ip is not None:
                svc["clusterIP"] = ip
                used_ips.add(ip)
                notes.append(_note(source_map, path, f"service {key} names no clusterIP: netcc "
                                   f"assigned {ip}; set spec.clusterIP: {ip} in the manifest, "
                                   "so that the cluster gives it the same"))  # fmt: skip
        if svc.get("type") == "NodePort":
            for k, port in enumerate(svc.get("ports") or []):
                if isinstance(port, dict) and "nodePort" not in port:
                    chosen = _free_port(f"{key}:{k}", used_ports)
                    port["nodePort"] = chosen
                    used_ports.add(chosen)
                    notes.append(_note(source_map, f"{path}.ports[{k}]",
                                       f"service {key} port {port.get('name') or port.get('port')} "
                                       f"names no nodePort: netcc assigned {chosen}; set it in "
                                       "the manifest"))  # fmt: skip
    return notes


def _note(source_map: SourceMap, path: str, message: str) -> Diagnostic:
    line, col = source_map.locate(path)
    return Diagnostic(message, "", line, col, "note", source_map.file_of(path))


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _free_ip(cidr: ipaddress.IPv4Network, key: str, used: set[Any]) -> str | None:
    """A free host address of `cidr`, probing from a hash of `key` (the first and the
    network's own addresses are never given: Kubernetes keeps .1 for the API service)."""
    size = cidr.num_addresses
    if size < 4:
        return None
    start = _hash(key) % size
    for step in range(size):
        offset = (start + step) % size
        if offset <= 1 or offset == size - 1:
            continue
        ip = str(cidr.network_address + offset)
        if ip not in used:
            return ip
    return None


def _free_port(key: str, used: set[Any]) -> int:
    start = _hash(key) % len(NODE_PORTS)
    for step in range(len(NODE_PORTS)):
        port = NODE_PORTS[(start + step) % len(NODE_PORTS)]
        if port not in used:
            return port
    raise SpecError([Diagnostic("no free nodePort is left in 30000-32767")])


def summary(m: Merged) -> str:
    """One line: what the sources gave, and what was skipped."""
    taken = ", ".join(f"{n} {s}" for s, n in sorted(m.taken.items())) or "nothing"
    skipped = sum(m.skipped.values())
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(m.skipped.items()))
    return f"sources: took {taken}" + (f"; skipped {skipped} objects ({kinds})" if skipped else "")
