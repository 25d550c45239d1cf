"""Helpers shared by the benchmark scripts: machine facts, child processes, tables, specs."""

from __future__ import annotations

import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


def clang_version() -> str:
    try:
        out = subprocess.run(["clang", "--version"], capture_output=True, text=True, check=False)
        return out.stdout.splitlines()[0].strip()
    except (OSError, IndexError):
        return "clang not found"


def git_state() -> str:
    """Short commit, plus how many files differ from it (the tree is shared and edited)."""
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "compiler", "templates"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{rev} + {len(dirty)} uncommitted compiler/template file(s)" if dirty else rev


def machine() -> str:
    """One line: cores, kernel, CPU model, Python, clang, git state."""
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"nproc {os.cpu_count()}, kernel {platform.release()}, {cpu}, "
        f"Python {platform.python_version()}, {clang_version()}, netcc tree {git_state()}"
    )


def header(title: str) -> None:
    print(f"# {title}")
    print(f"# machine: {machine()}")
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(REPO) if script.is_relative_to(REPO) else script
    print(f"# command: python3 {' '.join([str(shown), *sys.argv[1:]])}")
    print()


def _numeric(cell: str) -> bool:
    try:
        float(cell.replace(",", "").rstrip("x%").removeprefix("> "))
    except ValueError:
        return cell in ("-", "")
    return True


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (numbers right-aligned), so output pastes into BENCHMARKS.md."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    right = [all(_numeric(r[i]) for r in cells) for i in range(len(headers))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    sep = (
        "|"
        + "|".join("-" * (w + 1) + (":" if r else "-") for w, r in zip(widths, right, strict=True))
        + "|"
    )
    body = [
        "| "
        + " | ".join(
            c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right, strict=True)
        )
        + " |"
        for row in cells
    ]
    return "\n".join([line, sep, *body])


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


@dataclass(frozen=True)
class ChildRun:
    """A finished child process: wall time, peak RSS, exit status, stdout and stderr."""

    wall_s: float
    cpu_s: float  # user + system of the child and its waited descendants
    maxrss_mib: float  # largest RSS of the child or any descendant it waited for (clang)
    returncode: int
    stdout: str
    stderr: str


def run_child(cmd: Sequence[str], env: dict[str, str] | None = None) -> ChildRun:
    """Run `cmd` and wait for it with wait4, which gives this child's own rusage.

    Linux reports ru_maxrss of a waited child as max(child, its waited descendants), so
    clang's peak is included but not added to Python's.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return ChildRun(
            wall,
            usage.ru_utime + usage.ru_stime,
            usage.ru_maxrss / 1024,
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


def pin_cpu() -> int:
    """Pin this process to its last allowed CPU (test runs execute on the caller's CPU)."""
    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def netcc_cmd() -> list[str]:
    exe = shutil.which("netcc")
    return [exe] if exe else [sys.executable, "-m", "netcc"]


def self_maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_spec(spec: dict, path: Path) -> Path:
    from specgen import dump

    path.write_bytes(dump(spec))
    return path


def compile_in_process(spec_path: Path, out: Path) -> dict[str, bytes]:
    """`netcc compile SPEC -o OUT` without a child process; returns the tree."""
    from netcc.pipeline import compile_spec
    from netcc.write.tree import write_tree

    tree = compile_spec(spec_path.read_bytes(), str(spec_path))
    write_tree(tree, out)
    return tree


def median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


# --- the rule sweep shared by verifier.py and datapath_cost.py -----------------------------

RULE_COUNTS = (10, 100, 1000, 10000)
SWEEP_SHAPE = {"workloads": 1000, "nodes": 20, "namespaces": 50}


def sweep_spec(rules: int, seed: int = 1, shape: dict | None = None) -> dict:
    """The sweep's spec with exactly `rules` ingress+egress rules; the cluster stays fixed."""
    from specgen import generate

    return generate(**(shape or SWEEP_SHAPE), policies=None, rules=rules, seed=seed)


def bench_dir() -> Path:
    """Where compiled sweep outputs are kept between scripts ($NETCC_BENCH_DIR)."""
    base = os.environ.get("NETCC_BENCH_DIR") or os.path.join(tempfile.gettempdir(), "netcc-bench")
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def compiled(spec: dict) -> tuple[Path, float]:
    """OUT for `spec`, compiled in-process once per (spec, netcc code, clang) and reused.

    Returns (OUT, compile seconds, 0.0 when reused). The key is netcc's own tree-cache key
    when available (spec bytes + netcc sources + clang version).
    """
    import hashlib

    from specgen import dump

    data = dump(spec)
    try:
        from netcc.cache import tree_key

        key = tree_key(data)
    except ImportError:
        key = hashlib.sha256(data + clang_version().encode()).hexdigest()
    out = bench_dir() / f"out-{key[:20]}"
    if (out / "netcc.lock.json").exists():
        os.utime(out)  # recently used: kept by _prune
        return out, 0.0
    spec_path = bench_dir() / f"spec-{key[:20]}.yaml"
    spec_path.write_bytes(data)
    start = time.perf_counter()
    compile_in_process(spec_path, out)
    took = time.perf_counter() - start
    _prune(keep=KEEP_OUTPUTS)
    return out, took


KEEP_OUTPUTS = 8  # the sweep uses 4; older outputs (from older netcc code) are removed


def _prune(keep: int) -> None:
    outs = sorted(bench_dir().glob("out-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in outs[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    for spec in bench_dir().glob("spec-*.yaml"):
        if not (spec.parent / f"out-{spec.stem[5:]}").exists():
            spec.unlink(missing_ok=True)


def map_counts(out: Path) -> dict[str, dict[str, int]]:
    """node -> map name -> entries: the shared maps with each node's overlays laid on them."""
    from netcc.contract.mapfile import load_node_maps, out_node_names

    return {
        node: {name: len(entries) for name, entries in load_node_maps(out, node).items()}
        for node in out_node_names(out)
    }
