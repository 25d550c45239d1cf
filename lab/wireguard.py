"""The lab's WireGuard tunnels: wireguard-go daemons, one per node namespace.

This machine's kernel has no WireGuard module, so the loader runs in userspace mode here: in
each node's namespace it starts `wireguard-go netcc-wg0`, with its UAPI socket directory bound
per namespace (see `netcc.loader.wireguard.uapi`). A daemon outlives the process that started it,
so before the loader runs, the lab records a `wireguard` resource per node (its namespace's
inode and socket directory), and `lab down` kills every wireguard-go in that namespace even
after a crash, or after the namespace's name is gone (the daemon keeps the namespace alive).

Handshake order: the loader applies node after node, each with persistent keepalive, so every
node's device initiates to the nodes already configured and the first handshake of every pair
is answered at once (a node that initiates to a peer not yet configured is lost until
WireGuard's 5 s retry; the later node's initiation does not wait for it).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from netcc.lab import netns as lab_netns
from netcc.lab.state import LabState
from netcc.loader.wireguard.uapi import process_alive

DAEMON = "wireguard-go"


def tunnel_ifname(out: Path, node: str) -> str | None:
    """The tunnel device OUT plans for `node`, None without encryption."""
    try:
        return json.loads((out / "nodes" / node / "wireguard.json").read_text())["ifname"]
    except FileNotFoundError:
        return None


def record(state: LabState, node: str, netns: str, ifname: str) -> None:
    """Note a node's daemon before the loader starts it."""
    from netcc.loader.wireguard.uapi import netns_socket_dir

    inode = lab_netns.inode(netns)
    socket_dir = str(netns_socket_dir(inode))
    state.record("wireguard", node=node, netns=netns, inode=inode, ifname=ifname, dir=socket_dir)


def daemon_pids(inodes: set[int]) -> list[int]:
    """wireguard-go processes whose network namespace is one of `inodes`."""
    found = []
    for pid in lab_netns.pids_in(inodes):
        try:
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if os.path.basename(argv0) == DAEMON.encode():
            found.append(pid)
    return found


def remove(r: dict[str, Any]) -> str | None:
    """Kill the node's daemons (TERM, then KILL) and remove its socket directory."""
    pids = daemon_pids({int(r["inode"])})
    killed = len(pids)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 2.0
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if process_alive(p)]
            time.sleep(0.02)
        if not pids:
            break
    if pids:
        raise OSError(f"{DAEMON} {pids} in {r['netns']} survived SIGKILL")
    socket_dir = Path(r["dir"])
    if socket_dir.is_dir():
        for leftover in socket_dir.iterdir():
            leftover.unlink()
        socket_dir.rmdir()
    return f"{DAEMON} on {r['node']} ({killed} killed)" if killed else None


def wg_show(netns: str, ifname: str, *args: str) -> str:
    """`wg show IFNAME ARGS` in a node's namespace, beside its daemon."""
    from netcc.loader.wireguard.uapi import wg_command

    with lab_netns.entered(netns):
        cmd = wg_command(ifname, "show", ifname, *args)
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=10).stdout


def show_node(state: LabState, node: str, *args: str) -> str:
    """`wg show` of `node`'s tunnel in a running lab (ARGS as for `wg show IFNAME`)."""
    for r in state.of_kind("wireguard"):
        if r["node"] == node:
            return wg_show(r["netns"], r["ifname"], *args)
    nodes = sorted(r["node"] for r in state.of_kind("wireguard"))
    known = ", ".join(nodes) if nodes else "none: the spec has no encryption"
    raise ValueError(f"no WireGuard tunnel on node {node!r} (tunnels: {known})")
