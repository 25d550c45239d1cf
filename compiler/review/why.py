"""`netcc why`: the verdict for one connection, with the whole chain behind it.

The answer is `netcc.semantics.policy.evaluate`, the reference model itself: the sender's egress
side and the receiver's ingress side, each with the policies isolating the pod, the rules that allow
the connection (or the default deny that drops it), and for every rule of those policies whether its
peers and its ports match. Its words (`REASONS`, `rule_name`) are the contract's
(`netcc.contract.verdicts`), which flow events (`netcc observe`) phrase with too."""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import AddressValueError, IPv4Address
from typing import Any

from netcc.contract.verdicts import REASONS, rule_name
from netcc.diagnostics import SourceMap
from netcc.fsguard import shown
from netcc.model.types import PROTOCOL_NUMBERS, Cluster, Workload
from netcc.plan.blocks import layout
from netcc.semantics.policy import (
    Endpoint,
    FlowVerdict,
    SideVerdict,
    evaluate,
    peer_matches,
    policies_selecting,
    port_matches,
)

PROTOCOLS = {**PROTOCOL_NUMBERS, "ICMP": 1}
PROTOCOL_NAMES = {v: k for k, v in PROTOCOLS.items()}


class WhyError(Exception):
    """A --from, --to, --port or --protocol the cluster cannot answer for."""


@dataclass(frozen=True)
class Question:
    src: IPv4Address
    dst: IPv4Address
    proto: int
    port: int


def parse_protocol(text: str) -> int:
    """TCP, UDP, SCTP, ICMP (any case) or an IP protocol number 0-255, in ASCII only.

    `str.isdigit` and `str.upper` are not enough: they take other scripts' digits ('٦') and
    letters that upper-case into ASCII ('ſctp'), which would silently pick a protocol.
    """
    if text.isascii():
        if text.upper() in PROTOCOLS:
            return PROTOCOLS[text.upper()]
        if re.fullmatch(r"[0-9]{1,3}", text) and int(text) <= 255:
            return int(text)
    raise WhyError(f"unknown protocol '{shown(text)}': use TCP, UDP, SCTP, ICMP or a number 0-255")


def parse_port(text: str) -> int:
    """A port number for --port, in ASCII decimal digits (range checks come later)."""
    if not text.isascii() or not re.fullmatch(r"[0-9]{1,5}", text):
        raise ValueError(f"'{shown(text)}' is not a port number (1-65535)")
    return int(text)


def protocol_name(proto: int) -> str:
    return PROTOCOL_NAMES.get(proto, str(proto))


def resolve_address(cluster: Cluster, text: str) -> IPv4Address:
    """An IPv4 address, `namespace/workload` (its first address), or `namespace/class`
    (the first address of the class's block on the first node, by name; `namespace/class@NODE`
    on NODE)."""
    if "/" in text:
        namespace, _, name = text.partition("/")
        for w in cluster.workloads:
            if w.namespace == namespace and w.name == name:
                return w.ips[0]
        found = _class_address(cluster, namespace, name)
        if found is not None:
            return found
        known = ", ".join(sorted(w.key for w in (*cluster.workloads, *cluster.classes))) or "none"
        raise WhyError(f"no workload {shown(text)} in the spec (workloads: {known})")
    try:
        return IPv4Address(text)
    except AddressValueError:
        raise WhyError(
            f"'{shown(text)}' is neither an IPv4 address nor namespace/workload"
        ) from None


def _class_address(cluster: Cluster, namespace: str, name: str) -> IPv4Address | None:
    """The first address of class `namespace/name[@node]`'s block on its node, if any."""
    name, _, node_name = name.partition("@")
    for cls in cluster.classes:
        if cls.namespace == namespace and cls.name == name and cluster.nodes:
            nodes = sorted(cluster.nodes, key=lambda n: n.name)
            node = next((n for n in nodes if n.name == node_name), None)
            if node is None and node_name:
                raise WhyError(f"no node {shown(node_name)} in the spec")
            block = layout(cluster)[cls.key]
            return block.on((node or nodes[0]).pod_cidr).network_address
    return None


def question(cluster: Cluster, src: str, dst: str, port: int | None, protocol: str) -> Question:
    """Validate the command line's question."""
    proto = parse_protocol(protocol)
    if proto in PROTOCOL_NUMBERS.values():
        if port is None:
            raise WhyError(f"--port is required for {protocol_name(proto)}")
        if not 1 <= port <= 65535:
            raise WhyError(f"--port {port} is not a port (1-65535)")
    else:
        port = 0  # protocols without ports are judged as port 0
    return Question(resolve_address(cluster, src), resolve_address(cluster, dst), proto, port)


def why(cluster: Cluster, q: Question) -> FlowVerdict:
    return evaluate(cluster, q.src, q.dst, q.proto, q.port)


def _endpoint_json(e: Endpoint) -> dict[str, Any]:
    return {
        "ip": str(e.ip),
        "kind": e.kind,
        "workload": e.workload.key if e.workload else None,
        "node": e.node.name if e.node else (e.workload.node if e.workload else None),
    }


def _rules_considered(
    cluster: Cluster,
    pod: Workload,
    direction: str,
    remote: Endpoint,
    proto: int,
    port: int,
    sources: SourceMap | None,
) -> list[dict[str, Any]]:
    destination = pod if direction == "ingress" else remote.workload
    out = []
    for policy in policies_selecting(cluster, pod, direction):
        for rule in policy.rules(direction):
            peers = not rule.peers or any(
                peer_matches(cluster, policy, p, remote) for p in rule.peers
            )
            ports = not rule.ports or any(
                port_matches(pp, proto, port, destination) for pp in rule.ports
            )
            out.append(
                {
                    **_rule_json(policy.key, direction, rule.index, rule.path, sources),
                    "peers_match": peers,
                    "ports_match": ports,
                }
            )
    return out


def _rule_json(
    policy: str, direction: str, index: int, path: str, sources: SourceMap | None
) -> dict[str, Any]:
    line, col = sources.locate(path) if sources else (0, 0)
    file = sources.file_of(path) if sources else ""
    return {
        **({"file": file} if file else {}),
        "policy": policy,
        "direction": direction,
        "index": index,
        "path": path,
        "line": line,
        "col": col,
    }


def _side_json(
    cluster: Cluster,
    side: SideVerdict | None,
    direction: str,
    remote: Endpoint,
    v: FlowVerdict,
    sources: SourceMap | None,
) -> dict[str, Any]:
    if side is None:
        return {
            "direction": direction,
            "pod": None,
            "allowed": True,
            "reason": "not-a-pod",
            "rules": [],
            "isolated_by": [],
            "considered": [],
        }
    pod = (v.src if direction == "egress" else v.dst).workload  # a static pod or a class's
    assert pod is not None and pod.key == side.pod
    return {
        "direction": direction,
        "pod": side.pod,
        "allowed": side.allowed,
        "reason": side.reason,
        "rules": [_rule_json(r.policy, r.direction, r.index, r.path, sources) for r in side.rules],
        "isolated_by": list(side.isolated_by),
        "considered": (
            _rules_considered(cluster, pod, direction, remote, v.proto, v.port, sources)
            if side.reason in ("rule", "default-deny")
            else []
        ),
    }


def to_json(cluster: Cluster, v: FlowVerdict, sources: SourceMap | None = None) -> dict[str, Any]:
    """`{"verdict": "allow"|"deny", "egress": {...}, "ingress": {...}, ...}`."""
    return {
        "verdict": "allow" if v.allowed else "deny",
        "from": _endpoint_json(v.src),
        "to": _endpoint_json(v.dst),
        "protocol": protocol_name(v.proto),
        "port": v.port,
        "egress": _side_json(cluster, v.egress, "egress", v.dst, v, sources),
        "ingress": _side_json(cluster, v.ingress, "ingress", v.src, v, sources),
    }


def _where(rule: dict[str, Any], filename: str) -> str:
    where = rule.get("file") or filename
    at = f"{where}:{rule['line']}:{rule['col']}" if rule["line"] else where
    return f"{at} ({rule['path']})"


def format_text(doc: dict[str, Any], filename: str) -> str:
    """The human answer: the verdict line, then each side with its chain."""

    def name(e: dict[str, Any]) -> str:
        if e["workload"]:
            return f"{e['workload']} ({e['ip']})"
        return f"node {e['node']} ({e['ip']})" if e["kind"] == "node" else f"{e['ip']} (external)"

    port = f"{doc['port']}/{doc['protocol']}" if doc["port"] else doc["protocol"]
    lines = [f"{name(doc['from'])} -> {name(doc['to'])} {port}: {doc['verdict']}"]
    for direction, end in (("egress", doc["from"]), ("ingress", doc["to"])):
        side = doc[direction]
        text = REASONS[side["reason"]].format(pod=side["pod"], direction=direction, what=end["ip"])
        verdict = "pass" if side["allowed"] else "DROP"
        lines.append(f"  {direction} of {side['pod'] or end['ip']}: {verdict}, {text}")
        for r in side["rules"]:
            rule = rule_name(r["policy"], direction, r["index"])
            lines.append(f"    {rule} at {_where(r, filename)}")
        if side["isolated_by"]:
            lines.append(f"    isolating policies: {', '.join(side['isolated_by'])}")
        if side["reason"] == "default-deny":
            for r in side["considered"]:
                miss = " and ".join(
                    k
                    for k, ok in (("peers", r["peers_match"]), ("ports", r["ports_match"]))
                    if not ok
                )
                rule = rule_name(r["policy"], direction, r["index"])
                lines.append(f"    {rule}: {miss} do not match, at {_where(r, filename)}")
            if not side["considered"]:
                lines.append(f"    the isolating policies have no {direction} rules")
    return "\n".join(lines)
