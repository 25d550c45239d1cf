"""CLI tests run `python -m netcc` and the `netcc` script in subprocesses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest


def netcc_script() -> str:
    beside = Path(sys.executable).with_name("netcc")
    if beside.exists():
        return str(beside)
    found = shutil.which("netcc")
    if not found:
        pytest.fail("the netcc script is not installed (pip install -e .)")
    return found


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def cli_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("netcc-cache")


@pytest.fixture(params=["module", "script"])
def netcc(request, cli_cache):
    """Runs netcc one way or the other: `netcc(*args, cwd=..., cache=...)`."""
    command = [sys.executable, "-m", "netcc"] if request.param == "module" else [netcc_script()]
    return make_runner(command, cli_cache)


@pytest.fixture
def run(cli_cache):
    """Runs `python -m netcc` only (for tests where the entry point does not matter)."""
    return make_runner([sys.executable, "-m", "netcc"], cli_cache)


def make_runner(command: list[str], cache: Path):
    def runner(
        *args: str, cwd: Path, cache_dir: Path | None = None, env: dict | None = None
    ) -> Result:
        env = {**os.environ, "NETCC_CACHE_DIR": str(cache_dir or cache), **(env or {})}
        proc = subprocess.run(
            [*command, *map(str, args)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return runner
