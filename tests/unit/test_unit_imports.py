"""Every module of netcc imports. A module that does not would otherwise show only as tests
that are skipped or missing (a kernel test deciding whether it can run imports the loader:
tests/conftest.py turns that failure into a failure of every kernel test, never a skip)."""

from __future__ import annotations

import importlib
import pkgutil
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]


def test_every_module_of_every_package_imports() -> None:
    failed, imported = [], []
    for package in PACKAGES:
        module = importlib.import_module(package)
        for info in pkgutil.iter_modules(module.__path__, f"{package}."):
            if info.name.endswith(".__main__"):
                continue  # runs the command line
            try:
                importlib.import_module(info.name)
            except Exception as e:
                failed.append(f"{info.name}: {type(e).__name__}: {e}")
            imported.append(info.name)
    assert not failed, "\n".join(failed)
    for expected in ("netcc.loader.apply", "netcc.lab.core", "netcc.cli.main", "netcc.pipeline"):
        assert expected in imported
