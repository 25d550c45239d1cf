"""The lab's runtime side: one node daemon (`netcc load run`) per node, the pod API they ask
for labels, and the CNI plugin binary the lab's container runtime executes.

Started by `netcc lab up` when its artifacts declare workload classes (`classes.json`). Each
daemon runs inside its node's namespace through `nsenter --net` (setns only: /sys is not
remounted, so the bpffs pins stay shared), on the same pin root and state dir the lab's first
apply used, so it takes that datapath over. Its CNI socket, flows socket (`netcc observe`),
address store and conf dir live under the lab's state dir (`nodes/NODE/`). Every process is
recorded in the lab's state file before it starts (`daemon`, `kubeapi`) and is stopped by
`netcc lab down` only when /proc/PID still shows that command line (a reused pid is left
alone). A daemon that died is started again only by `netcc lab daemon restart NODE`
(`restart_daemon`), never behind the user's back: `pod add` on its node refuses until then.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import netcc
from netcc.contract.cni import METRICS_PORT, PLUGIN_TYPE
from netcc.contract.flows import SOCKET_NAME as FLOWS_SOCKET
from netcc.lab.kubeapi import PODS_FILE
from netcc.lab.state import LabState

CNI_BIN_ENV = "NETCC_CNI_BIN"
PLUGIN = PLUGIN_TYPE
KUBE_SOCKET = "kube.sock"
KUBEAPI = "netcc.lab.kubeapi"
READY_WAIT = 120.0  # seconds a daemon may take to apply its node's datapath


class LabRuntimeError(Exception):
    """The lab's runtime side cannot do what was asked."""


def node_dir(state: LabState, node: str) -> Path:
    return state.path.parent / "nodes" / node


def cni_binary() -> Path:
    """`$NETCC_CNI_BIN`, else the repository's `build/netcc-cni` (`make cni`)."""
    given = os.environ.get(CNI_BIN_ENV)
    path = Path(given) if given else Path(netcc.__file__).resolve().parents[1] / "build" / PLUGIN
    if not os.access(path, os.X_OK):
        raise LabRuntimeError(
            f"no CNI plugin binary at {path}: run `make cni` (or set {CNI_BIN_ENV})"
        )
    return path


def bin_dir(state: LabState) -> Path:
    """Where the lab's runtime looks for plugins: `netcc-cni` linked to the built binary."""
    return state.path.parent / "cni-bin"


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _spawn(state: LabState, entry: dict[str, Any], argv: list[str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as f:
        proc = subprocess.Popen(
            argv, stdout=f, stderr=f, stdin=subprocess.DEVNULL, start_new_session=True
        )
    entry["pid"] = proc.pid
    entry["argv"] = argv
    state.save()
    return proc


def start_kubeapi(state: LabState) -> None:
    """The pod API on `STATE/kube.sock`, answering from `STATE/pods.json`."""
    sock = state.path.parent / KUBE_SOCKET
    entry = state.record("kubeapi", socket=str(sock))
    argv = [sys.executable, "-m", KUBEAPI, str(state.path.parent), str(sock)]
    proc = _spawn(state, entry, argv, state.path.parent / "kubeapi.log")
    _wait(lambda: sock.exists(), f"the lab's pod API at {sock}", proc)


def start_daemon(state: LabState, load: dict[str, Any], wireguard: str) -> None:
    """`netcc load run` for the node of a `load` resource, inside its namespace; returns once
    its datapath is applied (its `daemon.json` says ready)."""
    d = node_dir(state, load["node"])
    d.mkdir(parents=True, exist_ok=True)
    flows = d / FLOWS_SOCKET  # `netcc observe` reads every node's
    entry = state.record(
        "daemon", node=load["node"], netns=load["netns"], dir=str(d), flows=str(flows)
    )
    argv = [
        "nsenter", f"--net=/run/netns/{load['netns']}", sys.executable, "-m", "netcc",
        "load", "run", load["out"], "--node", load["node"],
        "--socket", str(d / "cni.sock"), "--data-dir", str(d / "data"),
        "--state-dir", load["state_dir"], "--pin-root", load["pin_root"],
        "--kube", f"unix://{state.path.parent / KUBE_SOCKET}",
        "--cni-conf-dir", str(d / "net.d"), "--wireguard", wireguard,
        "--metrics-address", f"0.0.0.0:{METRICS_PORT}",  # every address of the node's netns
        "--flows-socket", str(flows),
    ]  # fmt: skip
    proc = _spawn(state, entry, argv, d / "daemon.log")
    report = Path(load["state_dir"]) / "daemon.json"

    def ready() -> bool:
        try:
            doc = json.loads(report.read_text())
        except (OSError, ValueError):
            return False
        return bool(doc.get("ready")) and doc.get("pid") == proc.pid

    _wait(ready, f"the daemon of {load['node']} (log: {d / 'daemon.log'})", proc)


def restart_daemon(state: LabState, node: str, wireguard: str) -> int:
    """Stop `node`'s daemon if it still runs (SIGTERM), start it again on the same OUT,
    socket and address store, and return its pid once its datapath is applied. The new
    daemon adopts the pods recorded on disk and finishes the DELs the plugin spooled while
    no daemon ran (a daemon killed in the middle of an ADD leaves exactly that)."""
    load = next((r for r in state.of_kind("load") if r["node"] == node), None)
    old = [r for r in state.of_kind("daemon") if r["node"] == node]
    if load is None or not old:
        raise LabRuntimeError(
            f"no node daemon on {node}: no such node, or the lab's artifacts declare no class"
        )
    for r in old:
        _kill(r)
    state.forget(old)
    start_daemon(state, load, wireguard)
    return next(r["pid"] for r in reversed(state.of_kind("daemon")) if r["node"] == node)


def daemon_running(state: LabState, node: str) -> bool:
    """Whether `node`'s recorded daemon still runs."""
    return any(alive(r) for r in state.of_kind("daemon") if r["node"] == node)


def _wait(cond: Any, what: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + READY_WAIT
    while time.monotonic() < deadline:
        if cond():
            return
        if proc.poll() is not None:
            raise LabRuntimeError(f"{what} exited")
        time.sleep(0.05)
    raise LabRuntimeError(f"{what} was not ready in {READY_WAIT:.0f} s")


def _contains(argv: list[str], part: list[str]) -> bool:
    return any(argv[i : i + len(part)] == part for i in range(len(argv)))


def alive(entry: dict[str, Any]) -> bool:
    """Whether the recorded process still runs with the recorded command line."""
    pid, argv = entry.get("pid"), entry.get("argv") or []
    ours = ["-m", "netcc", "load", "run"] if entry["kind"] == "daemon" else ["-m", KUBEAPI]
    if not pid or not _contains(argv, ours):  # a damaged record never names another process
        return False
    found = _cmdline(pid)
    # nsenter execs the command it runs: then the command line is that command's
    inner = argv[2:] if argv[0] == "nsenter" else argv
    return found[: len(argv)] == argv or found[: len(inner)] == inner


def stop(entry: dict[str, Any]) -> str | None:
    """Stop a recorded process (SIGTERM, then SIGKILL) and remove the files it served; what
    went, or None if it was gone."""
    went = _kill(entry)
    if entry["kind"] == "kubeapi" and entry.get("socket"):  # its socket, log and pod list
        base = Path(entry["socket"]).parent
        for path in (Path(entry["socket"]), base / "kubeapi.log", base / PODS_FILE):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return went


def _kill(entry: dict[str, Any]) -> str | None:
    if not alive(entry):
        return None
    pid = entry["pid"]
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while alive(entry) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(entry):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    return f"{entry['kind']} {entry.get('node', '')} (pid {pid})".replace("  ", " ")


def daemon_pids(state: LabState) -> set[int]:
    """The pids of the lab's daemons that still run (they live in node namespaces)."""
    return {r["pid"] for r in state.of_kind("daemon") if alive(r)}


def has_classes(out: Path) -> bool:
    return (Path(out) / "classes.json").is_file()


def start_all(state: LabState, wireguard: str) -> dict[str, Any]:
    """The pod API, the plugin binary, and a daemon on every loaded node."""
    binary = cni_binary()
    bins = bin_dir(state)
    state.record("dir", path=str(bins))
    bins.mkdir(parents=True, exist_ok=True)
    (bins / PLUGIN).symlink_to(binary)
    cache = state.path.parent / "cni-cache"  # the lab runtime's result cache (libcni's)
    state.record("dir", path=str(cache))
    cache.mkdir(parents=True, exist_ok=True)
    start_kubeapi(state)
    started = {}
    for load in state.of_kind("load"):
        start_daemon(state, load, wireguard)
        started[load["node"]] = str(node_dir(state, load["node"]) / "cni.sock")
    return started
