"""Review tests: compiles (kernel tests) cache in a session tmp dir, helpers importable."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(scope="session", autouse=True)
def _review_cache_dir(tmp_path_factory):
    old = os.environ.get("NETCC_CACHE_DIR")
    os.environ["NETCC_CACHE_DIR"] = str(tmp_path_factory.mktemp("netcc-review-cache"))
    yield
    if old is None:
        os.environ.pop("NETCC_CACHE_DIR", None)
    else:
        os.environ["NETCC_CACHE_DIR"] = old
