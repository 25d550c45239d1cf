"""Compile time of a cluster with many ClusterIP services (the spec of
services_vs_iptables.py: N services over the same three backends, two nodes).

Prints, per N, the seconds of each stage of one uncached compile: parse, plan (of which
plan_services), render, clang and the rest (k8s manifests, lock), and the total. Best of
--repeat runs per stage.

    python3 bench/compile_services.py --services 10 1000 10000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from services_vs_iptables import spec_text


def one_compile(spec: bytes) -> dict[str, float]:
    import netcc.plan.planner as plan_mod
    from netcc.build.clang import compile_objects
    from netcc.emit.bpf import render_bpf
    from netcc.emit.k8s import render_k8s
    from netcc.emit.maps import render_data
    from netcc.frontend import parse_document
    from netcc.plan.planner import plan
    from netcc.resolve.resolution import resolve

    t: dict[str, float] = {}
    inner = plan_mod.plan_services

    def timed(cluster):  # plan() calls it: time it on its own
        begin = time.perf_counter()
        try:
            return inner(cluster)
        finally:
            t["plan_services"] = time.perf_counter() - begin

    plan_mod.plan_services = timed
    try:
        begin = time.perf_counter()
        parsed = parse_document(spec, "bench.yaml")
        cluster = parsed.cluster
        t["parse"] = time.perf_counter() - begin
        begin = time.perf_counter()
        p = plan(resolve(cluster))
        t["plan"] = time.perf_counter() - begin
        begin = time.perf_counter()
        bpf = render_bpf(p)
        tree = {**bpf, **render_data(p)}
        t["render"] = time.perf_counter() - begin
        begin = time.perf_counter()
        tree.update(compile_objects(bpf, ["bpf/datapath.c"]))
        t["clang"] = time.perf_counter() - begin
        begin = time.perf_counter()
        render_k8s(spec, "bench.yaml", cluster, tree, document=parsed.document)
        t["k8s"] = time.perf_counter() - begin
    finally:
        plan_mod.plan_services = inner
    t["total"] = sum(v for k, v in t.items() if k != "plan_services")
    return t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, nargs="+", default=[10, 1000, 10000])
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args(argv)
    stages = ("parse", "plan", "plan_services", "render", "clang", "k8s", "total")
    print("| services | " + " | ".join(f"{s} (s)" for s in stages) + " |")
    print("|---:|" + "---:|" * len(stages))
    for n in args.services:
        spec = spec_text(n).encode()
        runs = [one_compile(spec) for _ in range(args.repeat)]
        best = {s: min(r.get(s, 0.0) for r in runs) for s in stages}
        print(f"| {n:,} | " + " | ".join(f"{best[s]:.2f}" for s in stages) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
