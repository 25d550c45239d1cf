"""`netcc verify OUT`: check the lock, then load every node's datapath through the verifier."""

from __future__ import annotations

from pathlib import Path

from netcc.contract.lock import verify_lock
from netcc.loader.bpffs import ensure_bpffs
from netcc.loader.datapath import NodeDatapath, node_names


def verify(out: Path) -> dict:
    """Per node: programs with their verifier figures, and the entries loaded per map."""
    out = Path(out)
    lock = verify_lock(out)
    ensure_bpffs()
    report = {"artifacts": len(lock["artifacts"]), "nodes": {}}
    for node in node_names(out):
        with NodeDatapath(out, node) as dp:
            entries = {name: len(e) for name, e in sorted(dp.entries.items())}
            programs = {
                name: {k: info[k] for k in ("verified_insns", "xlated_len", "jited_len")}
                for name, info in dp.programs().items()
            }
            report["nodes"][node] = {"programs": programs, "map_entries": entries}
    return report


def format_report(report: dict) -> str:
    lines = [
        f"lock: ok ({report['artifacts']} artifacts)",
        f"{'node':<12} {'program':<22} {'verified_insns':>14} {'xlated':>7} {'jited':>7}"
        "  map entries",
    ]
    for node, r in report["nodes"].items():
        entries = " ".join(f"{k.removeprefix('netcc_')}={v}" for k, v in r["map_entries"].items())
        for name, p in r["programs"].items():
            lines.append(
                f"{node:<12} {name:<22} {p['verified_insns']:>14} {p['xlated_len']:>7} "
                f"{p['jited_len']:>7}  {entries}"
            )
            entries = ""
    return "\n".join(lines)
