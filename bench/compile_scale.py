"""Compile time and memory at scale: `netcc compile` of generated specs.

1. At 1,000 workloads and 1,000 policies (20 nodes, 50 namespaces), `netcc compile` as a child
   process, in SCENARIOS order: cold (NETCC_CACHE_DIR a fresh directory, OUT absent); the
   spec edited by a YAML comment (netcc's whole-tree cache misses, clang's object cache hits);
   the same spec again into a new OUT (tree cache hit); and the unchanged-spec recompile (the
   same spec into the same OUT). Wall time, CPU time and peak RSS (wait4 rusage of the child;
   clang is included as a max, not a sum).
2. Where the time goes: every stage of `netcc.pipeline.compile_spec` plus the write, timed in
   a fresh child process (`--stages SPEC`), which also reports its own peak RSS.
3. A scaling table at 100 / 1,000 / 3,000 workloads with as many policies.

Targets (from the issue): full compile <= 10 s on 2 cores, peak memory <= 1 GiB, unchanged
recompile <= 1 s.

Run: `python3 bench/compile_scale.py` (about 3 minutes; `--sizes 100,1000` is quicker).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    ChildRun,
    header,
    netcc_cmd,
    run_child,
    self_maxrss_mib,
    table,
    verdict,
    write_spec,
)
from specgen import generate, rule_count

TARGET_FULL_S = 10.0
TARGET_RSS_MIB = 1024.0
TARGET_RECOMPILE_S = 1.0
SCENARIOS = (
    "cold: empty NETCC_CACHE_DIR, new OUT",
    "spec edited (comment): object cache warm, new OUT",
    "same spec again: tree cache warm, new OUT",
    "unchanged spec recompile: same OUT",
)


def shape(n: int) -> dict:
    """Cluster shape for n workloads and n policies: 50 pods a node, up to 50 namespaces."""
    return {
        "workloads": n,
        "policies": n,
        "nodes": max(2, n // 50),
        "namespaces": min(50, max(5, n // 10)),
    }


def stages(spec_path: Path, out: Path) -> dict:
    """Time each stage of compile_spec and write_tree in this process (a fresh child)."""
    times: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        times[name] = now - t
        t = now

    from netcc import __version__
    from netcc.build.clang import clang_version, compile_objects
    from netcc.contract.lock import LOCK_NAME, make_lock
    from netcc.emit.bpf import render_bpf, render_data
    from netcc.load.document import load_yaml
    from netcc.model.build import build_cluster
    from netcc.plan.planner import plan
    from netcc.validate import validate
    from netcc.write.tree import write_tree

    lap("import netcc")
    spec = spec_path.read_bytes()
    document, source_map = load_yaml(spec, str(spec_path))
    lap("parse: YAML load")
    problems = validate(document, source_map)
    if any(d.severity == "error" for d in problems):
        raise SystemExit(f"spec invalid: {problems[0]}")
    lap("parse: validate")
    cluster = build_cluster(document)
    lap("parse: model")
    p = plan(cluster)
    lap("plan")
    bpf = render_bpf(p)
    lap("emit: C")
    tree = {**bpf, **render_data(p)}
    lap("emit: map data")
    tree.update(compile_objects(bpf, ["bpf/datapath.c"]))
    lap("build: clang (cold cache)")
    compile_objects(bpf, ["bpf/datapath.c"])
    warm = time.perf_counter() - t
    t = time.perf_counter()
    tree[LOCK_NAME] = make_lock(tree, spec, __version__, clang_version())
    lap("lock: sha256")
    write_tree(tree, out)
    lap("write")
    policy = [
        sum(len(v) for k, v in n.maps.items() if k.startswith("netcc_policy")) for n in p.nodes
    ]
    return {
        "stages": times,
        "build_warm_s": warm,
        "maxrss_mib": self_maxrss_mib(),
        "files": len(tree),
        "bytes": sum(len(v) for v in tree.values()),
        "policy_entries": sum(policy),
        "policy_max_node": max(policy),
        "peers": len(p.peers),
        "verdicts": len(p.verdicts),
        "profiles": sum(len(n.profiles) for n in p.nodes),
    }


def run_stages(spec_path: Path, out: Path, cache: Path) -> dict:
    env = {**os.environ, "NETCC_CACHE_DIR": str(cache)}
    cmd = [sys.executable, __file__, "--stages", str(spec_path), str(out)]
    run = run_child(cmd, env)
    if run.returncode != 0:
        raise SystemExit(f"staged compile failed:\n{run.stderr}")
    result = json.loads(run.stdout)
    result["maxrss_mib"] = max(result["maxrss_mib"], run.maxrss_mib)  # clang included
    return result


def compile_runs(spec_path: Path, work: Path, repeat: int) -> list[tuple[str, ChildRun]]:
    """(scenario, median run) for each of SCENARIOS, in that order.

    The edited spec has a YAML comment appended: the whole-tree cache misses, but the C is
    the same, so clang's object cache hits. The last two use the edited spec's tree.
    """
    out = work / "out-cli"
    original = spec_path.read_bytes()
    cmd = [*netcc_cmd(), "compile", str(spec_path), "-o", str(out), "-q"]
    found: dict[str, list[ChildRun]] = {}
    for i in range(repeat):
        env = {**os.environ, "NETCC_CACHE_DIR": str(work / f"cache-cli-{i}")}
        spec_path.write_bytes(original)
        for scenario in SCENARIOS:
            if scenario == SCENARIOS[1]:
                spec_path.write_bytes(original + f"# edited {i}\n".encode())
            if scenario != SCENARIOS[-1]:
                shutil.rmtree(out, ignore_errors=True)
            run = run_child(cmd, env)
            if run.returncode != 0:
                raise SystemExit(f"netcc compile failed ({run.returncode}):\n{run.stderr}")
            found.setdefault(scenario, []).append(run)
    spec_path.write_bytes(original)
    return [(k, sorted(v, key=lambda r: r.wall_s)[len(v) // 2]) for k, v in found.items()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000,3000", help="scaling table sizes")
    ap.add_argument("--main-size", type=int, default=1000, help="size of the CLI measurements")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3, help="CLI runs per scenario (median)")
    ap.add_argument("--stages", nargs=2, metavar=("SPEC", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.stages:
        print(json.dumps(stages(Path(args.stages[0]), Path(args.stages[1]))))
        return 0

    header("compile_scale: netcc compile wall time and peak memory")
    sizes = [int(s) for s in args.sizes.split(",") if s]
    with tempfile.TemporaryDirectory(prefix="netcc-bench-") as tmp:
        work = Path(tmp)
        specs = {}
        for n in sorted({*sizes, args.main_size}):
            spec = generate(**shape(n), seed=args.seed)
            specs[n] = (write_spec(spec, work / f"spec-{n}.yaml"), rule_count(spec))

        n = args.main_size
        path, rules = specs[n]
        s = shape(n)
        print(
            f"## netcc compile, {n} workloads, {n} policies ({rules} rules), {s['nodes']} nodes, "
            f"{s['namespaces']} namespaces; spec {path.stat().st_size / 1e6:.1f} MB\n"
        )
        runs = compile_runs(path, work, args.repeat)
        rows = [
            (name, f"{r.wall_s:.2f}", f"{r.cpu_s:.2f}", f"{r.maxrss_mib:.0f}") for name, r in runs
        ]
        print(table(["scenario", "wall s", "CPU s (user+sys)", "peak RSS MiB"], rows))
        cold, again = runs[0][1], runs[-1][1]
        peak = max(r.maxrss_mib for _, r in runs)
        print()
        full_ok = verdict(cold.wall_s <= TARGET_FULL_S)
        print(f"target full compile <= {TARGET_FULL_S:.0f} s: {cold.wall_s:.2f} s, {full_ok}")
        print(f"target peak memory <= 1 GiB: {peak:.0f} MiB, {verdict(peak <= TARGET_RSS_MIB)}")
        print(
            f"target unchanged recompile <= {TARGET_RECOMPILE_S:.0f} s: {again.wall_s:.2f} s, "
            f"{verdict(again.wall_s <= TARGET_RECOMPILE_S)}"
        )
        print()

        staged = {}
        for size in sizes:
            staged[size] = run_stages(specs[size][0], work / f"out-{size}", work / f"cache-{size}")
        names = list(next(iter(staged.values()))["stages"])
        print("## Where the time goes (in-process stages, seconds; fresh child per size)\n")
        rows = [[name, *(f"{staged[z]['stages'][name]:.2f}" for z in sizes)] for name in names]
        rows.append(["build: cache hit", *(f"{staged[z]['build_warm_s']:.2f}" for z in sizes)])
        rows.append(["total", *(f"{sum(staged[z]['stages'].values()):.2f}" for z in sizes)])
        print(table(["stage", *(f"{z} wl+pol" for z in sizes)], rows))
        print()
        print("## Scaling (workloads = policies = N)\n")
        rows = []
        for z in sizes:
            st, sh = staged[z], shape(z)
            rows.append(
                [
                    z,
                    sh["nodes"],
                    specs[z][1],
                    st["profiles"],
                    st["peers"],
                    st["verdicts"],
                    f"{st['policy_entries']:,}",
                    f"{st['policy_max_node']:,}",
                    st["files"],
                    f"{st['bytes'] / 1e6:.1f}",
                    f"{sum(st['stages'].values()):.2f}",
                    f"{st['maxrss_mib']:.0f}",
                ]
            )
        print(
            table(
                [
                    "N",
                    "nodes",
                    "rules",
                    "profiles",
                    "peer classes",
                    "verdicts",
                    "policy entries (all nodes, hash + LPM)",
                    "max/node",
                    "files",
                    "OUT MB",
                    "compile s",
                    "peak RSS MiB",
                ],
                rows,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
