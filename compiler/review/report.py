"""The review of a cluster as plain data: what `review --format json` prints and what the
Markdown and HTML reports render.

Per workload (and per workload class, as one party standing for all its pods, named
`NS/CLASS (class)`): its isolation, who may reach it and whom it may reach (effective connections,
allowed by both sides), each with the rules behind it on both sides. Then exposure (what is
reachable from outside the cluster, and what every pod of every namespace may reach), the
external address classes, the services (backends, and for NodePorts what outside reaches
through which node), and the connectivity matrix. When policies name no namespace,
`default_namespace` lists them with the namespace they were given (the spec's default). With
`spec.encryption`, `encryption` says which traffic is encrypted and which is not
(`netcc.review.encryption`).
"""

from __future__ import annotations

from typing import Any

from netcc.diagnostics import SourceMap
from netcc.review.classes import classes_report
from netcc.review.connectivity import Connectivity, Flow, Grant, Party, Side, block_text
from netcc.review.encryption import encryption_report
from netcc.review.portset import ALL, OTHER, PortSet, range_text
from netcc.review.services import services_report
from netcc.review.source import Spec

REPORT_VERSION = 1


def ports_json(ports: PortSet) -> list[dict[str, str]]:
    """`[{"protocol": "TCP", "ports": "8000-8080"}, ...]`; OTHER (no ports) as port "0"."""
    return [
        {"protocol": p, "ports": "0" if p == OTHER else range_text(lo, hi)}
        for p, lo, hi in ports.items()
    ]


class _Builder:
    def __init__(self, spec: Spec):
        self.spec = spec
        self.cluster = spec.cluster
        self.sources: SourceMap = spec.sources
        self.c = Connectivity(spec.cluster)
        self._where: dict[str, dict[str, Any]] = {}
        self._grants: dict[Grant, dict[str, Any]] = {}
        self._connections: dict[tuple[str, str], dict[str, Any]] = {}

    def where(self, path: str) -> dict[str, Any]:
        found = self._where.get(path)
        if found is None:
            line, col = self.sources.locate(path)
            found = self._where[path] = {"path": path, "line": line, "col": col}
            file = self.sources.file_of(path)
            if file:  # taken from a manifest of spec.sources
                found["file"] = file
        return found

    def grant(self, g: Grant) -> dict[str, Any]:
        found = self._grants.get(g)
        if found is None:
            r = g.rule
            found = self._grants[g] = {
                "rule": f"{r.policy} {r.direction}[{r.index}]",
                "policy": r.policy,
                "direction": r.direction,
                "index": r.index,
                **self.where(r.path),
                "ports": str(g.ports),
            }
        return found

    def side(self, flow: Flow, side: Side | None) -> dict[str, Any] | None:
        if side is None:
            return None
        return {
            "pod": side.pod,
            "reason": side.reason,
            "rules": [self.grant(g) for g in flow.grants(side)] if side.reason == "rules" else [],
        }

    @staticmethod
    def party(p: Party) -> dict[str, Any]:
        """Name and kind; the addresses of pods and nodes (see `external` for the others)."""
        out: dict[str, Any] = {"name": p.name, "kind": p.kind}
        if p.kind != "external":
            out["ips"] = [str(ip) for ip in p.ips]
        if p.is_class:
            out["blocks"] = [str(n) for n in p.blocks]
        return out

    def connection(self, flow: Flow, peer: Party, key: str) -> dict[str, Any]:
        ident = (flow.src.name, flow.dst.name)
        body = self._connections.get(ident)
        if body is None:
            body = self._connections[ident] = {
                "ports": str(flow.allowed),
                "allowed": ports_json(flow.allowed),
                "egress": self.side(flow, flow.egress),
                "ingress": self.side(flow, flow.ingress),
            }
        return {key: peer.name, "kind": peer.kind, **body}

    def isolation(self, p: Party) -> dict[str, Any]:
        out = {}
        for direction in ("ingress", "egress"):
            selecting = self.c.selecting(p.workload, direction)
            out[direction] = {
                "isolated": bool(selecting),
                "policies": [s.key for s in selecting],
            }
        return out

    def workload(self, p: Party) -> dict[str, Any]:
        w = p.workload
        assert w is not None
        incoming, outgoing, namespaces = [], [], set()
        for other in self.c.parties:
            if not p.is_class and other.workload is not None and other.workload.key == w.key:
                continue  # a pod always reaches itself (a class's other pods are others)
            flow = self.c.flow(other, p)
            if flow.allowed:
                incoming.append(self.connection(flow, other, "from"))
                if other.workload is not None and other.workload.namespace != w.namespace:
                    namespaces.add(other.workload.namespace)
            flow = self.c.flow(p, other)
            if flow.allowed:
                outgoing.append(self.connection(flow, other, "to"))
        placed: dict[str, Any] = {"node": w.node, "ips": [str(ip) for ip in p.ips]}
        if p.is_class:
            placed = {"kind": "class", "node": None, "ips": [], "blocks": list(map(str, p.blocks))}
        return {
            "name": p.name,
            "namespace": w.namespace,
            "workload": w.name,
            **placed,
            "labels": dict(w.labels),
            "ports": [
                {"name": cp.name, "port": cp.port, "protocol": cp.protocol} for cp in w.ports
            ],
            **self.where(w.path),
            "isolation": self.isolation(p),
            "reached_from_namespaces": sorted(namespaces),
            "ingress": incoming,
            "egress": outgoing,
        }

    def exposure(self) -> dict[str, Any]:
        external = []
        for p in self.c.pods:
            for ext in self.c.externals:
                flow = self.c.flow(ext, p)
                if flow.allowed:
                    external.append(
                        {
                            "workload": p.name,
                            "from": ext.name,
                            "ports": str(flow.allowed),
                            "allowed": ports_json(flow.allowed),
                            "rules": self.side(flow, flow.ingress)["rules"],
                            "reason": flow.ingress.reason,
                        }
                    )
        every_namespace = []
        for p in self.c.pods:
            others = [o for o in self.c.pods if p.is_class or o.workload.key != p.workload.key]
            if not others:
                continue
            admitted = ALL
            for o in others:
                admitted = admitted & self.c.side(p.workload, "ingress", o).allowed
            if admitted:
                rules: dict[str, dict[str, Any]] = {}
                for o in others:
                    for g in self.c.side(p.workload, "ingress", o).grants:
                        if g.ports & admitted:
                            rules.setdefault(
                                g.rule.path, self.grant(Grant(g.rule, g.ports & admitted))
                            )
                every_namespace.append(
                    {
                        "workload": p.name,
                        "ports": str(admitted),
                        "allowed": ports_json(admitted),
                        "reason": "rules" if rules else "unisolated",
                        "rules": sorted(rules.values(), key=lambda r: (r["line"], r["col"])),
                    }
                )
        return {"external": external, "every_namespace": every_namespace}

    def externals(self) -> list[dict[str, Any]]:
        out = []
        for ext in self.c.externals:
            reaches, reached_by = [], []
            for p in self.c.pods:
                flow = self.c.flow(ext, p)
                if flow.allowed:
                    reaches.append({"workload": p.name, "ports": str(flow.allowed)})
                flow = self.c.flow(p, ext)
                if flow.allowed:
                    reached_by.append({"workload": p.name, "ports": str(flow.allowed)})
            out.append(
                {
                    "name": ext.name,
                    "cidrs": [str(n) for n in ext.networks()],
                    "in_blocks": [block_text(self.c.blocks[i]) for i in sorted(ext.signature)],
                    "reaches": reaches,
                    "reached_by": reached_by,
                }
            )
        return out

    def matrix(self) -> dict[str, Any]:
        rows = self.c.pods + self.c.nodes + self.c.externals
        cols = self.c.pods + self.c.nodes + self.c.externals
        cells = []
        for src in rows:
            row = []
            for dst in cols:
                if not (src.is_pod or dst.is_pod):
                    row.append({"level": "n/a", "ports": ""})
                    continue
                if src.workload is not None and src.workload == dst.workload and not src.is_class:
                    row.append({"level": "self", "ports": "all"})
                    continue
                allowed = self.c.flow(src, dst).allowed
                level = "all" if allowed.is_all else "some" if allowed else "none"
                row.append({"level": level, "ports": str(allowed), "short": allowed.short()})
            cells.append(row)
        return {
            "rows": [self.party(p) for p in rows],
            "cols": [self.party(p) for p in cols],
            "cells": cells,
        }

    def namespace_classes(self, namespace: str) -> dict[str, list[str]]:
        """`{"classes": [...]}` of a namespace, in a spec with classes (else nothing)."""
        if not self.cluster.classes:
            return {}
        return {"classes": sorted(c.key for c in self.cluster.classes if c.namespace == namespace)}

    def default_namespace(self) -> dict[str, Any] | None:
        """The policies that name no namespace, placed in the spec's default namespace as
        `kubectl apply -n` places them; None when every policy names its own."""
        policies = [p for p in self.cluster.policies if p.namespace_defaulted]
        if not policies:
            return None
        return {
            "namespace": self.cluster.default_namespace,
            "policies": [{"policy": p.key, **self.where(p.path)} for p in policies],
        }

    def build(self) -> dict[str, Any]:
        workloads = [self.workload(p) for p in self.c.pods]
        isolated = {
            d: sum(1 for w in workloads if w["isolation"][d]["isolated"])
            for d in ("ingress", "egress")
        }
        defaulted = self.default_namespace()
        classes = classes_report(self.cluster)
        encryption = encryption_report(self.cluster)
        return {
            "reportVersion": REPORT_VERSION,
            "cluster": self.cluster.name,
            "spec": {"file": self.spec.filename, "sha256": self.spec.sha256},
            "summary": {
                "namespaces": len(self.cluster.namespaces),
                "workloads": len(self.cluster.workloads),
                **({"classes": len(self.cluster.classes)} if self.cluster.classes else {}),
                "nodes": len(self.cluster.nodes),
                "policies": len(self.cluster.policies),
                "isolated": isolated,
                "connections": sum(len(w["ingress"]) for w in workloads),
            },
            "namespaces": [
                {
                    "name": ns.name,
                    "labels": dict(ns.labels),
                    "workloads": sorted(
                        w.key for w in self.cluster.workloads if w.namespace == ns.name
                    ),
                    **self.namespace_classes(ns.name),
                    "policies": sorted(
                        p.key for p in self.cluster.policies if p.namespace == ns.name
                    ),
                }
                for ns in self.cluster.namespaces
            ],
            **({"default_namespace": defaulted} if defaulted else {}),
            "nodes": [self.party(p) for p in self.c.nodes],
            "workloads": workloads,
            "exposure": self.exposure(),
            "services": services_report(self.cluster, self.c),
            "external": self.externals(),
            "matrix": self.matrix(),
            **({"workload_classes": classes} if classes else {}),
            **({"encryption": encryption} if encryption else {}),
        }


def build_report(spec: Spec) -> dict[str, Any]:
    """The whole review of a spec, as JSON-ready data."""
    return _Builder(spec).build()
