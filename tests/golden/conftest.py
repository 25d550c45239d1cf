"""Golden tests: clang's object cache lives in a session tmp dir, not ~/.cache."""

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _netcc_cache_dir(tmp_path_factory):
    old = os.environ.get("NETCC_CACHE_DIR")
    os.environ["NETCC_CACHE_DIR"] = str(tmp_path_factory.mktemp("netcc-cache"))
    yield
    if old is None:
        os.environ.pop("NETCC_CACHE_DIR", None)
    else:
        os.environ["NETCC_CACHE_DIR"] = old
