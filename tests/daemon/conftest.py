"""Fixtures for the daemon tests: the shim built once, class-carrying artifact dirs (v1, and
v2 in which the class shop/db's block moved), a node running the daemon, and a lab of
examples/shop.yaml with those classes."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_node import DaemonNode
from daemon_out import add_classes, class_doc, static_endpoint
from lab_cli import netcc

from netcc.lab.state import STATE_DIR, LabState

REPO = Path(__file__).resolve().parents[2]
NAMESPACES = {"shop": ["app"], "payments": ["app"], "monitoring": ["app"]}


@pytest.fixture(scope="session")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """build/netcc-cni, built by the Makefile's `cni` target into a temporary directory."""
    if shutil.which("go") is None:
        pytest.skip("go is not installed (`make setup` installs golang-go)")
    binary = tmp_path_factory.mktemp("shim") / "netcc-cni"
    make = ["make", "-s", "--no-print-directory", "-o", "system-packages", "-C", str(REPO)]
    subprocess.run([*make, "cni", f"CNI_BIN={binary}"], check=True, capture_output=True)
    return binary


def _classes(out: Path, db_offset: int) -> list[dict]:
    ep = static_endpoint(out, "node-1")
    return [
        class_doc(1, "shop", "web", {"app": "web"}, 16, 16, ep),
        class_doc(2, "shop", "db", {"app": "db"}, db_offset, 8, ep),
    ]


@pytest.fixture(scope="session")
def outs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """examples/shop.yaml compiled, with classes added by hand: v1, and v2 (db moved)."""
    from netcc.pipeline import compile_spec
    from netcc.write.tree import write_tree

    root = tmp_path_factory.mktemp("outs")
    spec = (REPO / "examples" / "shop.yaml").read_bytes()
    try:
        found = {}
        for name, db in (("v1", 32), ("v2", 64)):
            out = root / name
            write_tree(compile_spec(spec, "shop.yaml"), out)
            add_classes(out, NAMESPACES, _classes(out, db))
            found[name] = out
        yield found
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def node(outs: dict[str, Path], shim: Path, tmp_path: Path) -> Iterator[DaemonNode]:
    """A node namespace running `netcc load run` on OUT (a symlink to v1 a test may turn)."""
    link = tmp_path / "out"
    link.symlink_to(outs["v1"])
    n = DaemonNode(link, shim)
    try:
        yield n.create()
    finally:
        print(n.logs())  # shown for a failing test
        n.remove()


@pytest.fixture
def lab_out(outs: dict[str, Path], shim: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A lab of examples/shop.yaml with the class artifacts (v1), torn down whatever happens."""
    if LabState.exists(STATE_DIR):
        pytest.fail(f"a lab is already up ({STATE_DIR}); not touching it")
    monkeypatch.setenv("NETCC_CNI_BIN", str(shim))
    try:
        netcc("lab", "up", str(REPO / "examples" / "shop.yaml"), "--artifacts", str(outs["v1"]))
        yield outs["v1"]
    finally:
        down = netcc("lab", "down", check=False)
        assert down.returncode == 0, down.stderr
