"""`netcc trace OUT`: send one packet through the compiled datapath in the kernel.

The packet runs (BPF_PROG_TEST_RUN) through the sender's egress program and the receiver's
ingress program, each with its node's maps, as on the wire. Each hop reports the verdict it
counted, named from the artifact's verdict table: the kernel's own answer, not the model's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from netcc.contract.lock import verify_lock
from netcc.contract.programs import policy_direction
from netcc.contract.verdicts import VERDICTS_PATH, by_number
from netcc.loader.bpffs import ensure_bpffs
from netcc.loader.classpods import class_pod_node
from netcc.loader.kernel_cluster import KernelCluster

PROTOCOLS = {"TCP": 6, "UDP": 17, "SCTP": 132, "ICMP": 1}


@dataclass(frozen=True)
class TracedHop:
    node: str
    program: str
    passed: bool
    verdict: int
    doc: str


def trace(
    out: Path,
    src: str,
    dst: str,
    port: int,
    protocol: str,
    sport: int = 43210,
    runtime: Mapping[str, str] | None = None,
) -> list[TracedHop]:
    """The packet's hops. An end inside a class block is a pod of that class on the node
    whose podCIDR holds it (or where `runtime`, address -> node, says it runs), with the
    endpoint entry its node daemon gives it: the compiled maps list no class pod."""
    out = Path(out)
    verify_lock(out)
    ensure_bpffs()
    table = by_number(json.loads((out / VERDICTS_PATH).read_text()))
    proto = PROTOCOLS[protocol.upper()]
    hops = []
    with KernelCluster(out, runtime) as k:
        for ip in (src, dst):
            node = class_pod_node(out, ip) if ip not in k.pods else None
            if node is not None:
                k.add_class_pod(ip, node)
        pkt = k.packet(src, dst, proto, sport, port)
        for node, program in k.path(src, dst):
            before = k.nodes[node].stats()
            passed = k.run(node, program, pkt)
            after = k.nodes[node].stats()
            changed = [v for v in after if after[v] != before.get(v)]
            number = changed[0] if changed else 0
            v = table.get(number, {"name": "?", "doc": "no counter moved"})
            hops.append(TracedHop(node, program, passed, number, f"{v['name']}: {v['doc']}"))
            if not passed:
                break
    return hops


def format_trace(hops: list[TracedHop], src: str, dst: str, port: int, protocol: str) -> str:
    if not hops:
        return f"{src} -> {dst} {port}/{protocol}: no pod on either end; netcc does not see it"
    verdict = "allowed" if all(h.passed for h in hops) else "denied"
    lines = [f"{src} -> {dst} {port}/{protocol.upper()}: {verdict}"]
    for h in hops:
        side = f"{policy_direction(h.program):<7}"
        mark = "pass" if h.passed else "DROP"
        lines.append(f"  {h.node} {side} {mark}  verdict {h.verdict}  {h.doc}")
    return "\n".join(lines)
