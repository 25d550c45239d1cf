"""`make bench`: re-run the compile and datapath benchmarks and say which figures moved.

Every figure BENCHMARKS.md reports for these sections is recorded, by name, in
`bench/results/SECTION.json` with the command and the commit it was measured on:

    {"section": ..., "command": ..., "commit": ..., "figures": {"budget.1000.cpu_s": 3.35, ...}}

This script runs each section's command with `--json` (`bench/compile_scale.py`,
`bench/compile_classes.py`, and as root `bench/datapath_cost.py`), compares every figure with
the recorded one and prints those that moved beyond the noise of their kind, those that are new
and those that went; the exit status is 0 either way (the machine is shared: a figure that
moved is worth a second run before it is believed). `--accept` records the new figures, with
the commit given by `--commit` (default `(this commit)`, for the commit being made; replace it
with the hash).

Noise, from repeated runs on this machine (see BENCHMARKS.md): times 25 % (and 0.2 s), peak
memory 10 %, nanoseconds and ratios of the datapath 30 %; sizes and counts are deterministic
(1 %: specs are generated with a fixed seed).

Run: `python3 bench/moved.py [--only compile|datapath|classes] [--accept]
[--from-json SECTION=FILE]`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
SECTIONS = {
    "compile": [sys.executable, str(BENCH / "compile_scale.py")],
    "datapath": [sys.executable, str(BENCH / "datapath_cost.py")],
    "classes": [sys.executable, str(BENCH / "compile_classes.py")],
}
NEEDS_ROOT = {"datapath"}


def noise(name: str) -> tuple[float, float]:
    """(relative, absolute) change a figure of this name shows between runs of one build."""
    last = name.rsplit(".", 1)[-1]
    if last.endswith("_s"):
        return 0.25, 0.2
    if last.endswith("_mib"):
        return 0.10, 8.0
    if name.startswith("datapath."):
        return 0.30, 0.0
    return 0.01, 0.0  # sizes and counts


def moved(recorded: dict[str, float], now: dict[str, float]) -> list[list[str]]:
    """Rows (figure, recorded, now, change, noise) for each figure beyond its noise, new or
    gone."""
    rows = []
    for name in sorted(set(recorded) | set(now)):
        if name not in now:
            rows.append([name, _fmt(recorded[name]), "gone", "", ""])
            continue
        if name not in recorded:
            rows.append([name, "new", _fmt(now[name]), "", ""])
            continue
        old, new = recorded[name], now[name]
        rel, floor = noise(name)
        if abs(new - old) > max(rel * abs(old), floor):
            change = f"{(new - old) / old:+.0%}" if old else "from 0"
            rows.append([name, _fmt(old), _fmt(new), change, f"{rel:.0%}"])
    return rows


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:g}"


def load(section: str) -> dict:
    path = RESULTS / f"{section}.json"
    return json.loads(path.read_text()) if path.exists() else {"figures": {}}


def run(section: str, target: Path) -> bool:
    """Run the section's benchmark writing its figures to `target`; False when skipped."""
    if section in NEEDS_ROOT and os.geteuid() != 0:
        print(f"## {section}: skipped (needs root: BPF_PROG_TEST_RUN)\n")
        return False
    print(f"## {section}: {' '.join(Path(a).name for a in SECTIONS[section][1:])}", flush=True)
    proc = subprocess.run([*SECTIONS[section], "--json", str(target)], check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{section}: the benchmark failed ({proc.returncode})")
    return True


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(BENCH))
    from benchlib import table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=sorted(SECTIONS), action="append")
    ap.add_argument("--accept", action="store_true", help="record the new figures")
    ap.add_argument("--commit", default="(this commit)", help="what --accept records them as")
    ap.add_argument(
        "--from-json",
        metavar="SECTION=FILE",
        action="append",
        default=[],
        help="compare figures a benchmark wrote already instead of running it",
    )
    args = ap.parse_args(argv)
    given = dict(item.split("=", 1) for item in args.from_json)
    sections = args.only or [s for s in SECTIONS if not given or s in given]
    with tempfile.TemporaryDirectory(prefix="netcc-moved-") as tmp:
        for section in sections:
            target = Path(given.get(section) or Path(tmp) / f"{section}.json")
            if section not in given and not run(section, target):
                continue
            now = json.loads(target.read_text())
            recorded = load(section)
            rows = moved(recorded["figures"], now)
            where = f"bench/results/{section}.json, commit {recorded.get('commit', '?')}"
            print(f"\n## {section}: {len(now)} figures against {where}\n")
            if rows:
                print(table(["figure", "recorded", "now", "change", "noise"], rows))
                print(f"\n{len(rows)} moved beyond noise (or new, or gone)\n")
            else:
                print("nothing moved beyond noise\n")
            if args.accept:
                command = " ".join(["python3", f"bench/{Path(SECTIONS[section][1]).name}"])
                doc = {
                    "section": recorded.get("section", section),
                    "command": recorded.get("command", command),
                    "commit": args.commit,
                    "figures": dict(sorted(now.items())),
                }
                (RESULTS / f"{section}.json").write_text(json.dumps(doc, indent=1) + "\n")
                print(f"recorded in bench/results/{section}.json as {args.commit}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
