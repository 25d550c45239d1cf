"""Tests of `OUT/k8s`. clang's object cache lives in a session tmp dir, not ~/.cache.

The loader test (test_k8s_loader.py) is marked `kernel`: it skips, with the reason, when not
root or without BPF (and the top-level conftest turns such a skip into a failure as root).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from kernelenv import kernel_skip_reason

HERE = Path(__file__).parent


@pytest.fixture(scope="session", autouse=True)
def _netcc_cache_dir(tmp_path_factory):
    old = os.environ.get("NETCC_CACHE_DIR")
    os.environ["NETCC_CACHE_DIR"] = str(tmp_path_factory.mktemp("netcc-cache"))
    yield
    if old is None:
        os.environ.pop("NETCC_CACHE_DIR", None)
    else:
        os.environ["NETCC_CACHE_DIR"] = old


def _skip_reason() -> str | None:
    reason = kernel_skip_reason()
    if reason is None:
        for tool in ("nsenter", "ip", "setpriv"):
            if shutil.which(tool) is None:
                return f"needs {tool}"
    return reason


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if Path(item.path).name == "test_k8s_loader.py":
            item.add_marker(pytest.mark.kernel)
            reason = _skip_reason()
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))
