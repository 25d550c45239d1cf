"""The compile cache key covers everything that shapes OUT.

`netcc.cache` hashes the files of the packages in `PACKAGES`. A real compile runs in a fresh
interpreter with an empty cache, and every netcc module it imported must lie under one of
those packages' directories: a module from anywhere else (as the tunnel document once came from
the loader) could change OUT without changing the key, and a stale tree would be served.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "tests" / "golden" / "specs" / "encrypted.yaml"  # every stage, tunnels included

PROBE = """
import json, sys
from importlib import resources
from pathlib import Path

from netcc import cache
from netcc.pipeline import compile_spec

spec = Path(sys.argv[1])
tree = compile_spec(spec.read_bytes(), spec.name)
modules = {
    name: getattr(module, "__file__", None)
    for name, module in sorted(sys.modules.items())
    if name == "netcc" or name.startswith("netcc.")
}
roots = {p: str(Path(str(resources.files(p))).resolve()) for p in cache.PACKAGES}
print(json.dumps({"modules": modules, "roots": roots, "files": sorted(tree)}))
"""


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict:
    cache_dir = tmp_path_factory.mktemp("cache")
    env = {**os.environ, "NETCC_CACHE_DIR": str(cache_dir)}
    run = subprocess.run(
        [sys.executable, "-c", PROBE, str(SPEC)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert any(cache_dir.rglob("*.pack")), "the compile stored nothing: was it a cache hit?"
    return json.loads(run.stdout)


def test_compile_ran_every_stage(compiled: dict) -> None:
    files = compiled["files"]
    assert "bpf/datapath.o" in files
    assert any(f.endswith("/wireguard.json") for f in files)
    assert {"netcc.emit.tunnels", "netcc.contract.tunnel"} <= set(compiled["modules"])


def test_every_module_of_the_compile_is_hashed(compiled: dict) -> None:
    roots = [Path(r) for r in compiled["roots"].values()]
    assert {"netcc", "netcc.contract", "netcc.templates", "netcc.schemas"} <= set(compiled["roots"])
    outside = sorted(
        name
        for name, file in compiled["modules"].items()
        if file is None or not any(Path(file).resolve().is_relative_to(r) for r in roots)
    )
    assert not outside, (
        f"the compile imports {outside}, whose files the cache key does not cover "
        "(add their package to netcc.cache.PACKAGES)"
    )
