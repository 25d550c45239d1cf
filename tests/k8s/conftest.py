"""Tests of `OUT/k8s`. clang's object cache lives in a session tmp dir, not ~/.cache.

The loader test (test_k8s_loader.py) is a kernel test (tests/conftest.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
