"""Fixtures for the EndpointSlice tests: a replay API server on loopback and a client of it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubereplay import ReplayServer

from netcc.loader.kube import KubeClient


@pytest.fixture
def api() -> Iterator[ReplayServer]:
    srv = ReplayServer()
    try:
        yield srv
    finally:
        srv.close()
    assert srv.problems == []  # every request was the one the test scripted


@pytest.fixture
def client(api: ReplayServer) -> KubeClient:
    return KubeClient(api.url, token="t0ken", read_timeout=5.0)
