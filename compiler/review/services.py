"""Services in review: `netcc why` through a service, and NodePorts that undo ipBlock rules.

The datapath translates a connection to a service before policy judges it (README "Services"),
so the answer for a service is the answer for each of its backends, with the source the backend
really sees:
- a ClusterIP, or a NodePort reached from a pod: the client's own address;
- a NodePort reached from outside, on node N: the client's address for a backend on N; for a
  backend on another node, N's address with `externalTrafficPolicy: Cluster` (source NAT) and
  nothing at all with `Local` (only N's own backends serve);
- a pod reaching itself through its service (hairpin): allowed, as from its own node.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import AddressValueError, IPv4Address
from typing import Any

from netcc.diagnostics import SourceMap
from netcc.fsguard import shown
from netcc.model.types import PROTOCOL_NUMBERS, Cluster, Node, Service, ServicePort
from netcc.resolve.backends import Backend, port_backends, port_classes, port_label
from netcc.review.connectivity import Connectivity


@dataclass(frozen=True)
class ServiceTarget:
    """A --to that names a service port: by `svc:NS/NAME`, its cluster IP, or a node's nodePort."""

    service: Service
    port: ServicePort
    address: IPv4Address  # where the client sends: the cluster IP or the node's address
    node: Node | None = None  # the node whose address a NodePort was reached at

    @property
    def kind(self) -> str:
        return "NodePort" if self.node else "ClusterIP"


def _ports(service: Service, number: int, protocol: str, node_port: bool) -> ServicePort | None:
    for p in service.ports:
        if p.protocol == protocol and (p.node_port if node_port else p.port) == number:
            return p
    return None


def service_target(
    cluster: Cluster, dst: str, port: int | None, protocol: str
) -> ServiceTarget | None:
    """The service port `dst` and `port` name, or None when they name none (then `dst` is a pod,
    node or external address as before). Raises ValueError for `svc:` names that don't exist."""
    if port is None or protocol not in PROTOCOL_NUMBERS:
        return None
    if dst.startswith("svc:"):
        key = dst[4:]
        service = next((s for s in cluster.services if s.key == key), None)
        if service is None:
            known = ", ".join(sorted(s.key for s in cluster.services)) or "none"
            raise ValueError(f"no service {shown(key)} in the spec (services: {known})")
        sp = _ports(service, port, protocol, node_port=False)
        if sp is None:
            have = ", ".join(f"{p.port}/{p.protocol}" for p in service.ports)
            raise ValueError(f"service {key} has no port {port}/{protocol} (ports: {have})")
        return ServiceTarget(service, sp, service.cluster_ip)
    node = next((n for n in cluster.nodes if n.name == dst), None)
    if node is None:
        try:
            ip = IPv4Address(dst)
        except AddressValueError:
            return None
        node = next((n for n in cluster.nodes if n.address == ip), None)
        if node is None:
            for s in cluster.services:
                if s.cluster_ip == ip and (sp := _ports(s, port, protocol, node_port=False)):
                    return ServiceTarget(s, sp, ip)
            return None
    for s in cluster.services:
        if s.type == "NodePort" and (sp := _ports(s, port, protocol, node_port=True)):
            return ServiceTarget(s, sp, node.address, node)
    return None


def reviewed_backends(cluster: Cluster, service: Service, port: ServicePort) -> tuple[Backend, ...]:
    """The backends the review judges a service port by: its static ones, and for each class
    that may back it, a pod of that class on every node (the first address of its block
    there, on the class's targetPort): what the datapath does with any ready pod of it."""
    from netcc.plan.blocks import layout

    found = list(port_backends(cluster, service, port))
    classes = port_classes(cluster, service, port)
    if classes:
        blocks = layout(cluster)
        for cls, number in classes:
            for node in sorted(cluster.nodes, key=lambda n: n.name):
                ip = blocks[cls.key].on(node.pod_cidr).network_address
                found.append(Backend(ip, number, port.protocol, f"{cls.key} (class)", node.name))
    return tuple(found)


def _seen_source(
    cluster: Cluster, t: ServiceTarget, b: Backend, src: IPv4Address, from_pod: bool
) -> tuple[IPv4Address | None, str]:
    """The source address backend `b` sees, and how it came to be (None: never reaches it)."""
    if t.node is None or from_pod:
        return src, "client address kept"
    if b.node == t.node.name:
        return src, "client address kept: the backend is on the node reached"
    if t.service.external_traffic_policy == "Local":
        return None, f"externalTrafficPolicy Local: node {t.node.name} serves only its own backends"
    return t.node.address, f"source NAT to node {t.node.name} ({t.node.address})"


def why_service(
    cluster: Cluster,
    src: IPv4Address,
    t: ServiceTarget,
    sources: SourceMap | None,
) -> dict[str, Any]:
    """`{"verdict", "service", "backends": [...]}`: each backend's answer as `netcc why` gives
    it for the translated connection. `verdict` is "allow" when every backend is reached,
    "deny" when none is, and "partial" when the backend the hash picks decides."""
    from netcc.review.why import Question, to_json, why

    from_pod = cluster.workload_by_ip(src) is not None
    backends = []
    for b in reviewed_backends(cluster, t.service, t.port):
        seen, how = _seen_source(cluster, t, b, src, from_pod)
        entry: dict[str, Any] = {
            "backend": b.workload,
            "address": str(b.ip),
            "port": b.port,
            "node": b.node,
            "source_seen": str(seen) if seen else None,
            "translation": how,
        }
        if seen is None:
            entry.update(verdict="deny", reason="not-served")
        elif src == b.ip:
            entry.update(verdict="allow", reason="hairpin")
        else:
            q = Question(seen, b.ip, PROTOCOL_NUMBERS[t.port.protocol], b.port)
            doc = to_json(cluster, why(cluster, q), sources)
            entry.update(verdict=doc["verdict"], egress=doc["egress"], ingress=doc["ingress"])
        backends.append(entry)
    allowed = [e for e in backends if e["verdict"] == "allow"]
    if backends and len(allowed) == len(backends):
        verdict = "allow"
    else:
        verdict = "partial" if allowed else "deny"
    return {
        "verdict": verdict,
        "from": str(src),
        "service": {
            "name": t.service.key,
            "port": port_label(t.service, t.port),
            "kind": t.kind,
            "address": str(t.address),
            "node": t.node.name if t.node else None,
            "externalTrafficPolicy": t.service.external_traffic_policy,
        },
        "protocol": t.port.protocol,
        "backends": backends,
        **({} if backends else {"reason": "no-backend"}),
    }


def format_service(doc: dict[str, Any], filename: str) -> str:
    """The human answer: the verdict over the backends, then each backend's chain."""
    from netcc.review.why import format_text

    s = doc["service"]
    via = f"node {s['node']} ({s['address']})" if s["node"] else s["address"]
    n = len(doc["backends"])
    ok = sum(1 for b in doc["backends"] if b["verdict"] == "allow")
    head = f"{doc['from']} -> {s['kind']} {s['port']} at {via}: {doc['verdict']}"
    lines = [f"{head} ({ok} of {n} backends)"]
    if not n:
        lines.append("  no backend: the datapath drops it (DROP_NO_BACKEND)")
    for b in doc["backends"]:
        head = f"  backend {b['backend']} {b['address']}:{b['port']} on {b['node']}: {b['verdict']}"
        lines.append(f"{head} ({b['translation']})")
        if b.get("reason") == "hairpin":
            lines.append("    the pod reaches itself: masqueraded to its node's router address")
        elif "egress" in b:
            chain = format_text(
                {
                    "from": {"ip": b["source_seen"], "workload": None, "kind": "ip", "node": None},
                    "to": {
                        "ip": b["address"],
                        "workload": b["backend"],
                        "kind": "pod",
                        "node": b["node"],
                    },
                    "port": b["port"],
                    "protocol": doc["protocol"],
                    "verdict": b["verdict"],
                    "egress": b["egress"],
                    "ingress": b["ingress"],
                },
                filename,
            )
            lines.extend("  " + line for line in chain.splitlines()[1:])
    return "\n".join(lines)


def _outside(cluster: Cluster, c: Connectivity) -> list:
    """The external address classes an outside client can come from (not the pod or service
    CIDRs, whose unused addresses no client outside the cluster has)."""
    inside = (cluster.pod_cidr, cluster.service_cidr)
    return [
        p for p in c.externals if not all(any(n.subnet_of(i) for i in inside) for n in p.networks())
    ]


def nodeport_bypasses(cluster: Cluster, c: Connectivity) -> list[tuple[Service, ServicePort, str]]:
    """NodePorts with `externalTrafficPolicy: Cluster` whose backends' ingress policy denies some
    outside addresses that still get through another node, whose address replaces theirs."""
    found = []
    external = _outside(cluster, c)
    for s in cluster.services:
        if s.type != "NodePort" or s.external_traffic_policy != "Cluster":
            continue
        for sp in s.ports:
            proto = PROTOCOL_NUMBERS[sp.protocol]
            for b in reviewed_backends(cluster, s, sp):
                others = [n for n in cluster.nodes if n.name != b.node]
                via = next((n for n in others if c.allows(n.address, b.ip, proto, b.port)), None)
                if via is None:
                    continue
                denied = [
                    p.name
                    for p in external
                    if any(not c.allows(ip, b.ip, proto, b.port) for ip in p.sample_ips(c.taken()))
                ]
                if denied:
                    some = ", ".join(denied[:3]) + (", ..." if len(denied) > 3 else "")
                    found.append(
                        (
                            s,
                            sp,
                            f"NodePort {port_label(s, sp)} with externalTrafficPolicy Cluster: "
                            f"outside addresses that {b.workload}'s ingress policy denies ({some}) "
                            f"reach it through node {via.name}, which rewrites their source to "
                            f"{via.address}; externalTrafficPolicy: Local keeps the client address",
                        )
                    )
                    break
    return found


def services_report(cluster: Cluster, c: Connectivity) -> list[dict[str, Any]]:
    """Every service port for `netcc review`: its backends and, for a NodePort, which outside
    address classes reach which backends at which nodes, and the lint warning if any."""
    warnings = {(s.key, sp): message for s, sp, message in nodeport_bypasses(cluster, c)}
    outside = _outside(cluster, c)
    out = []
    for s in cluster.services:
        for sp in s.ports:
            backends = port_backends(cluster, s, sp)
            entry: dict[str, Any] = {
                "service": s.key,
                "port": port_label(s, sp),
                "kind": s.type,
                "clusterIP": f"{s.cluster_ip}:{sp.port}",
                "protocol": sp.protocol,
                "nodePort": sp.node_port,
                "externalTrafficPolicy": s.external_traffic_policy if sp.node_port else None,
                "sessionAffinity": s.session_affinity,
                "backends": [
                    {"workload": b.workload, "address": f"{b.ip}:{b.port}", "node": b.node}
                    for b in backends
                ],
                "classes": [
                    {"class": c.key, "targetPort": n} for c, n in port_classes(cluster, s, sp)
                ],
                "internalTrafficPolicy": s.internal_traffic_policy,
                "from_outside": [],
                "warning": warnings.get((s.key, sp)),
            }
            if sp.node_port:
                judged = reviewed_backends(cluster, s, sp)
                entry["from_outside"] = [
                    {"from": party.name, "reaches": _reached(cluster, c, s, sp, judged, party)}
                    for party in outside
                ]
            out.append(entry)
    return out


def _reached(cluster: Cluster, c: Connectivity, s: Service, sp: ServicePort, backends, party):
    """Which backends an outside address class reaches through each node's nodePort."""
    ips = party.sample_ips(c.taken(), 1)
    if not ips:
        return []
    proto = PROTOCOL_NUMBERS[sp.protocol]
    reached = []
    for node in cluster.nodes:
        target = ServiceTarget(s, sp, node.address, node)
        for b in backends:
            seen, how = _seen_source(cluster, target, b, ips[0], from_pod=False)
            if seen is not None and c.allows(seen, b.ip, proto, b.port):
                reached.append({"node": node.name, "backend": b.workload, "source_seen": how})
    return reached


def service_rows(services: list[dict[str, Any]]) -> list[list[str]]:
    """Plain-text cells of the services table of the reports: service port, kind and
    addresses, backends, and what outside reaches (NodePorts), with the warning if any."""
    rows = []
    for e in services:
        kind = e["kind"]
        if e["nodePort"]:
            kind += f" :{e['nodePort']} ({e['externalTrafficPolicy']})"
        backends = ", ".join(f"{b['workload']} {b['address']} ({b['node']})" for b in e["backends"])
        classes = ", ".join(f"{c['class']} :{c['targetPort']}" for c in e.get("classes", []))
        if classes:
            ready = f"the ready pods of classes {classes}"
            backends = f"{backends}; {ready}" if backends else ready
        if not e["from_outside"]:
            outside = "—" if not e["nodePort"] else "nothing"
        else:
            parts = []
            for o in e["from_outside"]:
                where = sorted({f"{r['node']} → {r['backend']}" for r in o["reaches"]})
                parts.append(f"{o['from']}: {', '.join(where) or 'nothing'}")
            outside = "; ".join(parts)
        if e["warning"]:
            outside = f"⚠️ {e['warning']}. {outside}"
        rows.append([e["port"], f"{kind} at {e['clusterIP']}", backends or "no backend", outside])
    return rows
