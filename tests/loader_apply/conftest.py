"""Fixtures for `netcc load` tests: real namespaces and veths, compiled artifact dirs, a pin
root and state dir per test, both attach modes. Everything a test makes is removed in
`finally` blocks, failing or not.

Every test here but the unit tests is marked `kernel`: it skips, with the reason, when not
root or without BPF (and the top-level conftest turns such a skip into a failure as root).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kernelenv import kernel_skip_reason
from loader_apply_net import Topology, in_ns
from loader_apply_specs import compile_version, failing_verifier, with_ct_capacity

from netcc.loader import apply as apply_mod
from netcc.loader import detach as detach_mod
from netcc.loader import status as status_mod
from netcc.loader.netns import enter_netns

HERE = Path(__file__).parent


def _skip_reason() -> str | None:
    reason = kernel_skip_reason()
    if reason is None:
        for tool in ("nsenter", "ip", "bpftool", "tc"):
            if shutil.which(tool) is None:
                return f"needs {tool}"
    return reason


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.path).parents and "units" not in Path(item.path).name:
            item.add_marker(pytest.mark.kernel)
            reason = _skip_reason()
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


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


@dataclass
class Node:
    """The loader on the topology's node: the CLI (in the node namespace through nsenter, so
    bpffs stays the host's) or the library in-process (setns)."""

    topo: Topology
    pin_root: Path
    state_dir: Path
    name: str = "n1"

    def where(self) -> list[str]:
        return ["--pin-root", str(self.pin_root), "--state-dir", str(self.state_dir)]

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "netcc", "load", *args, *self.where()]
        return subprocess.run(
            in_ns(self.topo.node_ns, *cmd), capture_output=True, text=True, check=False
        )

    def cli_apply(self, out: Path) -> subprocess.CompletedProcess:
        return self.cli("apply", str(out), "--node", self.name, "--json")

    def apply(self, out: Path) -> apply_mod.ApplyResult:
        with enter_netns(self.topo.node_ns):
            return apply_mod.apply(out, self.name, pin_root=self.pin_root, state_dir=self.state_dir)

    def status(self) -> dict[str, Any]:
        with enter_netns(self.topo.node_ns):
            return status_mod.status(self.name, self.pin_root, self.state_dir)["nodes"][0]

    def cli_status(self) -> tuple[int, dict[str, Any]]:
        proc = self.cli("status", "--json")
        return proc.returncode, json.loads(proc.stdout)

    def detach(self) -> dict[str, Any]:
        with enter_netns(self.topo.node_ns):
            return detach_mod.detach(self.name, self.pin_root, self.state_dir)


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


def bpftool_json(*args: str) -> Any:
    out = subprocess.run(["bpftool", "-j", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout or "[]")


def env_without_mode() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "NETCC_ATTACH"}
