"""Fixtures for `netcc load` tests: real namespaces and veths, compiled artifact dirs, a pin
root and state dir per test, both attach modes. Everything a test makes is removed in
`finally` blocks, failing or not.

Every test here but the unit tests (test_loader_apply_units.py) is a kernel test
(tests/conftest.py).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from loader_apply_net import Topology
from loader_apply_node import Node
from loader_apply_specs import compile_version, failing_verifier, with_ct_capacity

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def outs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Artifact dirs: v1, v2, v3 (see loader_apply_specs), v1 with a smaller conntrack
    (`ct`), and v1 with an object the verifier refuses (`bad`)."""
    root = tmp_path_factory.mktemp("outs")
    try:
        found = {f"v{v}": compile_version(v, root / f"v{v}") for v in (1, 2, 3)}
        found["ct"] = root / "ct"
        shutil.copytree(found["v1"], found["ct"])
        with_ct_capacity(found["ct"], 4096)
        found["bad"] = root / "bad"
        shutil.copytree(found["v1"], found["bad"])
        failing_verifier(found["bad"])
        yield found
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def topo() -> Iterator[Topology]:
    """Node and pod namespaces with client and server pods, echo servers running."""
    t = Topology().create()
    try:
        t.serve()
        yield t
    finally:
        t.remove()


@pytest.fixture(params=["tcx", "tc"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test using this runs in both attach modes (NETCC_ATTACH, inherited by the CLI)."""
    monkeypatch.setenv("NETCC_ATTACH", request.param)
    return request.param


@pytest.fixture
def node(topo: Topology, tmp_path: Path) -> Iterator[Node]:
    """A pin root under /sys/fs/bpf and a state dir of this test's own; detached and
    removed afterwards whatever happened."""
    base = Path("/sys/fs/bpf") / f"netcctest-{uuid.uuid4().hex[:8]}"
    n = Node(topo, base / "n1", tmp_path / "state")
    try:
        yield n
    finally:
        try:
            if n.state_dir.exists() or n.pin_root.exists():
                n.detach()
        finally:
            shutil.rmtree(base, ignore_errors=True)
            shutil.rmtree(n.state_dir, ignore_errors=True)


@pytest.fixture
def tmp_path(tmp_path: Path) -> Iterator[Path]:
    """pytest's tmp_path, removed after the test."""
    try:
        yield tmp_path
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)
