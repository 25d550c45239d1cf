"""Compile time, memory and OUT size at scale: `netcc compile` of generated specs.

1. Budgets: `netcc compile` of `specgen --workloads N --policies N --nodes N/50 --namespaces 50
   --seed 1` at N = 1,000, 2,000 and 3,000, each a child process with a fresh NETCC_CACHE_DIR
   (no tree cache, no clang object cache): CPU seconds (user + sys of the child and clang, from
   wait4), peak RSS (the largest of the child and clang), OUT's bytes and files, and the
   spec's bytes (OUT should grow no faster than the spec).
2. Recompiles at 1,000, in SCENARIOS order (median of --repeat): cold; the spec edited by a YAML
   comment (netcc's whole-tree cache misses, clang's object cache hits); the same spec into a
   new OUT (tree cache hit); the unchanged-spec recompile (the same spec into the same OUT).
3. Where the time goes: every stage of `netcc.pipeline._compile`, plus the write, timed in a
   fresh child process per size (`--stages SPEC OUT`), with the sizes of what the plan made.

Targets (issue 12): 1,000 + 1,000 <= 10 s CPU and <= 1 GiB; 3,000 + 3,000 <= 30 s and <= 1 GiB;
OUT no faster than the spec; unchanged recompile <= 1 s. `--json FILE` writes every figure by
name, which `bench/moved.py` compares with bench/results/compile.json (`make bench`).

Run: `python3 bench/compile_scale.py` (about 3 minutes; `--budget-sizes 1000 --sizes 100,1000`
is quicker).
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

BUDGETS = {1000: (10.0, 1024.0), 3000: (30.0, 1024.0)}  # N -> (CPU s, peak MiB)
TARGET_RECOMPILE_S = 1.0
SCENARIOS = {
    "cold": "cold: empty NETCC_CACHE_DIR, new OUT",
    "edited": "spec edited (comment): object cache warm, new OUT",
    "tree_hit": "same spec again: tree cache warm, new OUT",
    "unchanged": "unchanged spec recompile: same OUT",
}


def shape(n: int) -> dict:
    """Cluster shape for n workloads and n policies: 50 pods a node, up to 50 namespaces."""
    return {
        "workloads": n,
        "policies": n,
        "nodes": max(2, n // 50),
        "namespaces": min(50, max(5, n // 10)),
    }


def stages(spec_path: Path, out: Path) -> dict:
    """Time each stage of `pipeline._compile` and the write in this process (a fresh child)."""
    times: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        times[name] = now - t
        t = now

    import gc
    import pickle

    from netcc import __version__
    from netcc.build.clang import clang_version, compile_objects
    from netcc.contract.lock import LOCK_NAME, SPEC_IN_OUT, make_lock, sha256
    from netcc.emit.bpf import render_bpf
    from netcc.emit.k8s import render_k8s
    from netcc.emit.k8s.policies import policies_document
    from netcc.emit.maps import render_data
    from netcc.emit.tunnels import render_tunnels
    from netcc.load.document import decode, load_yaml
    from netcc.model.build import build_cluster
    from netcc.plan.planner import plan
    from netcc.resolve.resolution import resolve
    from netcc.validate import validate
    from netcc.write.tree import write_tree

    gc.disable()  # as the pipeline runs
    lap("import netcc")
    spec = spec_path.read_bytes()
    document, source_map = load_yaml(spec, str(spec_path))
    lap("load: YAML")
    problems = validate(document, source_map, decode(spec))
    if any(d.severity == "error" for d in problems):
        raise SystemExit(f"spec invalid: {problems[0]}")
    lap("validate")
    cluster = build_cluster(document)
    lap("model")
    kept = pickle.dumps((cluster, policies_document(document)))
    del document, source_map, cluster
    cluster, policies = pickle.loads(kept)
    lap("model: compact copy")
    resolved = resolve(cluster)
    lap("resolve")
    p = plan(resolved)
    del resolved
    lap("plan")
    counts = _counts(p)
    bpf = render_bpf(p)
    lap("emit: C")
    tree = {**bpf, **render_data(p, release=True)}
    del p
    lap("emit: map data")
    tree.update(compile_objects(bpf, ["bpf/datapath.c"]))
    lap("build: clang (cold cache)")
    compile_objects(bpf, ["bpf/datapath.c"])
    warm = time.perf_counter() - t
    t = time.perf_counter()
    tree.update(render_tunnels(cluster))
    digests = {path: sha256(data) for path, data in tree.items()}
    tree.update(render_k8s(spec, "spec.yaml", cluster, tree, document=policies, digests=digests))
    lap("emit: k8s")
    tree[SPEC_IN_OUT] = spec
    tree[LOCK_NAME] = make_lock(tree, spec, __version__, clang_version(), digests)
    lap("lock: sha256")
    write_tree(tree, out)
    lap("write")
    return {
        "stages": times,
        "build_warm_s": warm,
        "maxrss_mib": self_maxrss_mib(),
        "files": len(tree),
        "bytes": sum(len(v) for v in tree.values()),
        "k8s_bytes": sum(len(v) for k, v in tree.items() if k.startswith("k8s/")),
        **counts,
    }


def _counts(p) -> dict:
    policy = [
        sum(len(v) for k, v in n.maps.items() if k.startswith("netcc_policy")) for n in p.nodes
    ]
    return {
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


def cold_compile(spec_path: Path, work: Path, tag: str) -> tuple[ChildRun, int, int]:
    """One `netcc compile` with a fresh cache into a new OUT: (run, OUT bytes, OUT files)."""
    out, cache = work / f"out-{tag}", work / f"cache-{tag}"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    env = {**os.environ, "NETCC_CACHE_DIR": str(cache)}
    run = run_child([*netcc_cmd(), "compile", str(spec_path), "-o", str(out), "-q"], env)
    if run.returncode != 0:
        raise SystemExit(f"netcc compile failed ({run.returncode}):\n{run.stderr}")
    files = [p for p in out.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    return run, size, len(files)


def compile_runs(spec_path: Path, work: Path, repeat: int) -> dict[str, ChildRun]:
    """The median run of each scenario of SCENARIOS.

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
            if scenario == "edited":
                spec_path.write_bytes(original + f"# edited {i}\n".encode())
            if scenario != "unchanged":
                shutil.rmtree(out, ignore_errors=True)
            run = run_child(cmd, env)
            if run.returncode != 0:
                raise SystemExit(f"netcc compile failed ({run.returncode}):\n{run.stderr}")
            found.setdefault(scenario, []).append(run)
        shutil.rmtree(work / f"cache-cli-{i}", ignore_errors=True)
    spec_path.write_bytes(original)
    shutil.rmtree(out, ignore_errors=True)
    return {k: sorted(v, key=lambda r: r.cpu_s)[len(v) // 2] for k, v in found.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget-sizes", default="1000,2000,3000", help="cold compiles (N)")
    ap.add_argument("--sizes", default="100,1000,3000", help="sizes of the stages table")
    ap.add_argument("--main-size", type=int, default=1000, help="size of the recompile runs")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3, help="runs per recompile scenario (median)")
    ap.add_argument("--json", metavar="FILE", help="write every figure, by name, to FILE")
    ap.add_argument("--stages", nargs=2, metavar=("SPEC", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.stages:
        print(json.dumps(stages(Path(args.stages[0]), Path(args.stages[1]))))
        return 0

    header("compile_scale: netcc compile CPU time, peak memory and OUT size")
    figures: dict[str, float] = {}
    budget_sizes = [int(s) for s in args.budget_sizes.split(",") if s]
    sizes = [int(s) for s in args.sizes.split(",") if s]
    with tempfile.TemporaryDirectory(prefix="netcc-bench-") as tmp:
        work = Path(tmp)
        specs = {}
        for n in sorted({*sizes, *budget_sizes, args.main_size}):
            spec = generate(**shape(n), seed=args.seed)
            specs[n] = (write_spec(spec, work / f"spec-{n}.yaml"), rule_count(spec))

        print("## Budgets: `netcc compile`, fresh NETCC_CACHE_DIR, new OUT\n")
        rows = []
        for n in budget_sizes:
            path, rules = specs[n]
            run, out_bytes, files = cold_compile(path, work, f"budget-{n}")
            spec_bytes = path.stat().st_size
            for name, value in (
                ("cpu_s", run.cpu_s),
                ("wall_s", run.wall_s),
                ("peak_mib", run.maxrss_mib),
                ("out_bytes", out_bytes),
                ("files", files),
                ("spec_bytes", spec_bytes),
            ):
                figures[f"budget.{n}.{name}"] = round(value, 2)
            cpu_max, rss_max = BUDGETS.get(n, (None, None))
            status = verdict(run.cpu_s <= cpu_max and run.maxrss_mib <= rss_max) if cpu_max else "-"
            rows.append(
                [
                    f"{n:,}",
                    shape(n)["nodes"],
                    rules,
                    f"{spec_bytes / 1e6:.2f}",
                    f"{run.cpu_s:.2f}",
                    f"{run.maxrss_mib:.0f}",
                    f"{out_bytes / 1e6:.1f}",
                    f"{out_bytes / spec_bytes:.0f}",
                    files,
                    status,
                ]
            )
        cols = ["N", "nodes", "rules", "spec MB", "CPU s", "peak MiB", "OUT MB", "OUT/spec"]
        print(table([*cols, "files", "budget"], rows))
        print()

        n = args.main_size
        path, rules = specs[n]
        print(f"## Recompiles, {n} workloads and policies (median of {args.repeat})\n")
        runs = compile_runs(path, work, args.repeat)
        rows = []
        for key, r in runs.items():
            rows.append(
                [SCENARIOS[key], f"{r.wall_s:.2f}", f"{r.cpu_s:.2f}", f"{r.maxrss_mib:.0f}"]
            )
            figures[f"recompile.{n}.{key}.cpu_s"] = round(r.cpu_s, 2)
            figures[f"recompile.{n}.{key}.peak_mib"] = round(r.maxrss_mib, 1)
        print(table(["scenario", "wall s", "CPU s (user+sys)", "peak RSS MiB"], rows))
        again = runs["unchanged"]
        ok = verdict(again.cpu_s <= TARGET_RECOMPILE_S)
        print(f"\ntarget unchanged recompile <= 1 s: {again.cpu_s:.2f} s CPU, {ok}\n")

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
        print("## What the plan makes (workloads = policies = N)\n")
        rows = []
        for z in sizes:
            st, sh = staged[z], shape(z)
            for stage, seconds in st["stages"].items():
                figures[f"stages.{z}.{stage}_s"] = round(seconds, 3)
            for key in ("policy_entries", "policy_max_node", "peers", "verdicts", "profiles"):
                figures[f"plan.{z}.{key}"] = st[key]
            figures[f"plan.{z}.files"] = st["files"]
            figures[f"plan.{z}.out_bytes"] = st["bytes"]
            figures[f"plan.{z}.k8s_bytes"] = st["k8s_bytes"]
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
                    f"{st['k8s_bytes'] / 1e6:.1f}",
                ]
            )
        cols = ["N", "nodes", "rules", "profiles", "peer classes", "verdicts"]
        cols += ["policy entries (all nodes)", "max/node", "files", "OUT MB", "of it k8s/ MB"]
        print(table(cols, rows))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
