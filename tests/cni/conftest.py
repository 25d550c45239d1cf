"""Fixtures for the CNI tests: the shim built once per session, a fake daemon handler, and a
real `netcc.loader.cni.server` on a short socket path (sun_path holds 107 bytes)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cnitest import FakeHandler, make_cni

from netcc.loader.cni.server import CniServer


@pytest.fixture(scope="session")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """build/netcc-cni, built once per session by `make cni` into a temporary directory."""
    binary = tmp_path_factory.mktemp("shim") / "netcc-cni"
    make_cni(binary)
    return binary


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path, for unix sockets."""
    d = Path(tempfile.mkdtemp(prefix="cni", dir="/tmp"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def handler() -> FakeHandler:
    return FakeHandler()


@pytest.fixture
def socket_path(short_dir: Path) -> Path:
    return short_dir / "cni.sock"


@pytest.fixture
def server(socket_path: Path, handler: FakeHandler) -> Iterator[CniServer]:
    srv = CniServer(socket_path, handler, spool_interval=0.2)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
