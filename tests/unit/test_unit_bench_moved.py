"""`make bench` (bench/moved.py): which figures moved beyond the noise of their kind, against
the figures recorded in bench/results/ (each with its command and commit)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _moved():
    spec = importlib.util.spec_from_file_location("bench_moved", ROOT / "bench" / "moved.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


moved = _moved()


def test_figures_move_only_beyond_the_noise_of_their_kind() -> None:
    recorded = {
        "budget.1000.cpu_s": 4.0,
        "budget.1000.peak_mib": 130.0,
        "budget.1000.out_bytes": 56_000_000,
        "datapath.10.ingress.denied": 95.0,
        "stages.100.plan_s": 0.02,
        "gone.count": 1,
    }
    now = {
        "budget.1000.cpu_s": 4.8,  # +20 %: noise
        "budget.1000.peak_mib": 160.0,  # +23 %: moved
        "budget.1000.out_bytes": 56_100_000,  # +0.2 %: noise
        "datapath.10.ingress.denied": 140.0,  # +47 %: moved
        "stages.100.plan_s": 0.15,  # +0.13 s: under the absolute floor
        "new.count": 2,
    }
    rows = {r[0]: r for r in moved.moved(recorded, now)}
    assert set(rows) == {
        "budget.1000.peak_mib",
        "datapath.10.ingress.denied",
        "gone.count",
        "new.count",
    }
    assert rows["budget.1000.peak_mib"][3] == "+23%"
    assert rows["gone.count"][2] == "gone" and rows["new.count"][1] == "new"


def test_recorded_results_name_their_command_and_commit(tmp_path, capsys) -> None:
    for path in sorted((ROOT / "bench" / "results").glob("*.json")):
        doc = json.loads(path.read_text())
        assert doc["command"].startswith("python3 bench/"), path
        assert doc["commit"], path
        assert doc["figures"] and all(isinstance(v, int | float) for v in doc["figures"].values())
    # comparing a file the benchmark wrote: the recorded figures against themselves
    recorded = json.loads((ROOT / "bench" / "results" / "compile.json").read_text())["figures"]
    given = tmp_path / "compile.json"
    given.write_text(json.dumps(recorded))
    assert moved.main(["--from-json", f"compile={given}"]) == 0
    assert "nothing moved beyond noise" in capsys.readouterr().out
