"""The DaemonSet's own commands, run as kubelet would run them, against a real kernel.

A node network namespace with two pod veths plays the host (hostNetwork). The artifact
ConfigMaps are projected as kubelet does, the init container's command assembles the node's
OUT, and the loader container's command runs in the node namespace with exactly the
container's capabilities (setpriv: bounding set BPF, NET_ADMIN, PERFMON; no_new_privs) and
environment; only the mount points differ (temporary directories, and NETCC_STATE_BASE for
the host's /run/netcc). The probes are run the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from k8s_kube import as_container, assemble, container, environment, manifests, script_of
from k8s_specs import compiled, node_spec

from netcc.contract.lock import LOCK_NAME
from netcc.emit.k8s import render_k8s
from netcc.frontend import parse_spec

PODS = {"client": "10.78.1.10", "server": "10.78.1.11"}
PIN_BASE = Path("/sys/fs/bpf/netcc")


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


@dataclass
class Host:
    """A node namespace whose pods' addresses route to their veths."""

    tag: str
    node: str

    @property
    def ns(self) -> str:
        return f"netcctest-k8s{self.tag}-node"

    def pod_ns(self, i: int) -> str:
        return f"netcctest-k8s{self.tag}-pod{i}"

    def create(self) -> None:
        sh("ip", "netns", "add", self.ns)
        for i, ip in enumerate(sorted(PODS.values()), start=1):
            host_if = f"k8s{self.tag}h{i}"
            sh("ip", "netns", "add", self.pod_ns(i))
            sh("ip", "-n", self.ns, "link", "add", host_if, "type", "veth", "peer", "name",
               "eth0", "netns", self.pod_ns(i))  # fmt: skip
            sh("ip", "-n", self.ns, "link", "set", host_if, "up")
            sh("ip", "-n", self.ns, "route", "add", f"{ip}/32", "dev", host_if)

    def remove(self) -> None:
        for ns in (self.ns, self.pod_ns(1), self.pod_ns(2)):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)

    def run(self, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
        cmd = ["nsenter", f"--net=/run/netns/{self.ns}", *argv]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)

    def start(self, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        cmd = ["nsenter", f"--net=/run/netns/{self.ns}", *argv]
        with open(log, "wb") as f:
            return subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # fmt: skip


@pytest.fixture
def host() -> Iterator[Host]:
    tag = uuid.uuid4().hex[:6]
    h = Host(tag, f"k8stest-{tag}")
    try:
        h.create()
        yield h
    finally:
        h.remove()
        shutil.rmtree(PIN_BASE / h.node, ignore_errors=True)


@pytest.fixture
def work() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="netcc-k8s-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def manifests_for(node: str, budget: int | None) -> dict[str, dict]:
    """The node's spec compiled; with `budget`, its k8s/ rendered with that budget."""
    text = node_spec(node, PODS)
    tree = compiled(text)
    if budget is not None:
        cluster, _ = parse_spec(text.encode(), "spec.yaml")
        base = {p: d for p, d in tree.items() if not p.startswith("k8s/") and p != LOCK_NAME}
        tree = {**tree, **render_k8s(text.encode(), "spec.yaml", cluster, base, budget)}
    return manifests(tree)


def wait_ready(host: Host, probe: list[str], env: dict[str, str], loader: subprocess.Popen,
               log: Path) -> None:  # fmt: skip
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if host.run(probe, env).returncode == 0:
            return
        assert loader.poll() is None, f"the loader exited: {log.read_text()}"
        time.sleep(0.3)
    pytest.fail(f"not ready after 40 s; loader log:\n{log.read_text()}")


def stop(loader: subprocess.Popen) -> int:
    """SIGTERM to the container's process 1 only (as kubelet does), then clean up the rest."""
    try:
        loader.send_signal(signal.SIGTERM)
        return loader.wait(timeout=20)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(loader.pid, signal.SIGKILL)  # the script's `sleep`, left behind


@pytest.mark.parametrize("budget", [None, 16 * 1024], ids=["default", "split-configmaps"])
def test_k8s_daemonset_commands_load_the_datapath(
    host: Host, work: Path, budget: int | None
) -> None:
    docs = manifests_for(host.node, budget)
    artifacts = assemble(docs, host.node, work / "pod")  # the init container's command
    loader = container(docs, "loader")
    (work / "tmp").mkdir()
    env = environment(
        loader,
        host.node,
        NETCC_ARTIFACTS=str(artifacts),
        NETCC_COMPILED=str(work / "pod" / "compiled"),
        TMPDIR=str(work / "tmp"),
        NETCC_STATE_BASE=str(work / "state"),  # the host's /run/netcc
    )

    def probe(name: str) -> list[str]:
        return as_container(loader, loader[name]["exec"]["command"])

    command = as_container(loader, script_of(loader))
    assert host.run(probe("readinessProbe"), env).returncode != 0  # nothing applied yet
    try:
        log = work / "loader.log"
        first = host.start(command, env, log)
        try:
            wait_ready(host, probe("readinessProbe"), env, first, log)
            for name in ("startupProbe", "livenessProbe"):
                assert host.run(probe(name), env).returncode == 0, name
            status = host.run(as_container(loader, [*_status(host.node)]), env)
            report = json.loads(status.stdout)["nodes"][0]
            hooks = [h for i in report["interfaces"] for h in i["hooks"].values()]
            assert len(hooks) == 4 and all(h["ok"] for h in hooks), report
        finally:
            assert stop(first) == 0, log.read_text()  # the TERM trap exits cleanly
        assert "applied artifacts" in log.read_text()

        # The pod is gone: nothing was detached, the node still enforces.
        assert host.run(probe("livenessProbe"), env).returncode == 0

        # A new pod: the same artifacts are already there.
        second = host.start(command, env, log)
        try:
            wait_ready(host, probe("readinessProbe"), env, second, log)
        finally:
            stop(second)
        assert "unchanged" in log.read_text()

        # What the kustomization's notes say to run before removing netcc.
        detach = host.run(as_container(loader, ["netcc", "load", "detach"]), env)
        assert detach.returncode == 0, detach.stderr
        assert not (PIN_BASE / host.node).exists()
        assert host.run(probe("livenessProbe"), env).returncode != 0
    finally:
        if (work / "state" / host.node).exists():
            host.run(["netcc", "load", "detach", "--node", host.node], env)


def _status(node: str) -> list[str]:
    return ["netcc", "load", "status", "--node", node, "--json"]


@pytest.mark.parametrize("missing", ["BPF", "NET_ADMIN", "PERFMON"])
def test_k8s_each_loader_capability_is_needed(host: Host, work: Path, missing: str) -> None:
    """Without any one of the loader's three capabilities, the apply fails and leaves
    nothing behind (why each is in the DaemonSet)."""
    docs = manifests_for(host.node, None)
    artifacts = assemble(docs, host.node, work / "pod")
    loader = container(docs, "loader")
    add = loader["securityContext"]["capabilities"]["add"]
    assert missing in add
    fewer = {**loader, "securityContext": {**loader["securityContext"]}}
    fewer["securityContext"]["capabilities"] = {
        "add": [c for c in add if c != missing],
        "drop": ["ALL"],
    }
    (work / "tmp").mkdir()
    env = environment(
        loader,
        host.node,
        NETCC_ARTIFACTS=str(artifacts),
        TMPDIR=str(work / "tmp"),
        NETCC_STATE_BASE=str(work / "state"),
    )
    apply = ["netcc", "load", "apply", str(artifacts), "--node", host.node]
    try:
        failed = host.run(as_container(fewer, apply), env)
        assert failed.returncode == 1, failed.stdout
        assert "netcc: error:" in failed.stderr
        assert not (work / "state" / host.node / "state.json").exists()
        ok = host.run(as_container(loader, apply), env)  # the control: all three suffice
        assert ok.returncode == 0, ok.stderr
    finally:
        if (work / "state" / host.node).exists():
            host.run(["netcc", "load", "detach", "--node", host.node], env)
