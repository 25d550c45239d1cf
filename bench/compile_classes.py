"""Compile time, memory and OUT size of a cluster whose workloads are all classes (issue 13).

`netcc compile` of `specgen --classes C --policies P --nodes N` (perNode 1: at C = 1,000
every node has room for 1,000 pods), each a child process with a fresh NETCC_CACHE_DIR:
CPU seconds (user + sys, clang included, from wait4), peak RSS, OUT's bytes, its largest
node directory, and the files of OUT. Then the same classes and policies over 25, 50, 100
and 200 nodes: with classes every node carries the same policy tables (OUT holds them once),
so compile time should grow with nodes only by each node's own layout.

Targets (issue 13): 1,000 classes + 2,000 policies + 100 nodes: compile <= 10 s on 2 cores,
peak <= 1 GiB, OUT <= 100 MB.

Run: `python3 bench/compile_classes.py [--classes 1000 --policies 2000 --nodes 100]
[--node-sweep 25,50,100,200] [--json FILE]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import header, netcc_cmd, run_child, table, verdict, write_spec
from specgen import generate_classes

TARGET_CPU_S, TARGET_PEAK_MIB, TARGET_OUT_MB = 10.0, 1024.0, 100.0


def _size(path: Path) -> tuple[int, int]:
    """(bytes, files) under `path`."""
    total = files = 0
    for p in path.rglob("*"):
        if p.is_file():
            total += p.stat().st_size
            files += 1
    return total, files


def measure(classes: int, policies: int, nodes: int, seed: int, work: Path) -> dict:
    """One cold compile of the class spec; its figures by name."""
    spec = generate_classes(classes, nodes, 50, policies, seed)
    spec_path = write_spec(spec, work / f"c{classes}-p{policies}-n{nodes}.yaml")
    out = work / f"out-{nodes}"
    cache = work / f"cache-{nodes}"
    env = {**os.environ, "NETCC_CACHE_DIR": str(cache)}
    run = run_child([*netcc_cmd(), "compile", str(spec_path), "-o", str(out)], env)
    if run.returncode != 0:
        raise SystemExit(f"netcc compile failed ({run.returncode}):\n{run.stderr[-2000:]}")
    out_bytes, files = _size(out)
    node_bytes = max(_size(d)[0] for d in (out / "nodes").iterdir())
    shutil.rmtree(out)
    shutil.rmtree(cache, ignore_errors=True)
    return {
        "cpu_s": round(run.cpu_s, 2),
        "wall_s": round(run.wall_s, 2),
        "peak_mib": round(run.maxrss_mib, 1),
        "out_bytes": out_bytes,
        "largest_node_bytes": node_bytes,
        "files": files,
        "spec_bytes": spec_path.stat().st_size,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--policies", type=int, default=2000)
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--node-sweep", default="25,50,100,200", help="node counts ('' for none)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", metavar="FILE", help="write every figure, by name, to FILE")
    args = ap.parse_args(argv)
    header("compile_classes: a cluster of workload classes")
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="netcc-classes-") as tmp:
        work = Path(tmp)
        main_run = measure(args.classes, args.policies, args.nodes, args.seed, work)
        for k, v in main_run.items():
            figures[f"classes.{args.nodes}.{k}"] = v
        ok = (
            main_run["cpu_s"] <= TARGET_CPU_S
            and main_run["peak_mib"] <= TARGET_PEAK_MIB
            and main_run["out_bytes"] <= TARGET_OUT_MB * 1e6
        )
        print(f"## {args.classes} classes, {args.policies} policies, {args.nodes} nodes\n")
        print(
            table(
                ["CPU s", "peak MiB", "OUT MB", "largest node KB", "files", "spec MB", "target"],
                [
                    [
                        main_run["cpu_s"],
                        main_run["peak_mib"],
                        round(main_run["out_bytes"] / 1e6, 1),
                        round(main_run["largest_node_bytes"] / 1e3, 1),
                        main_run["files"],
                        round(main_run["spec_bytes"] / 1e6, 2),
                        verdict(ok),
                    ]
                ],
            )
        )
        sweep = [int(n) for n in args.node_sweep.split(",") if n]
        rows = []
        for n in sweep:
            r = (
                main_run
                if n == args.nodes
                else measure(args.classes, args.policies, n, args.seed, work)
            )
            for k, v in r.items():
                figures[f"classes.{n}.{k}"] = v
            rows.append([n, r["cpu_s"], r["peak_mib"], round(r["out_bytes"] / 1e6, 1), r["files"]])
        if rows:
            print(f"\n## The same {args.classes} classes and {args.policies} policies, by nodes\n")
            print(table(["nodes", "CPU s", "peak MiB", "OUT MB", "files"], rows))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
