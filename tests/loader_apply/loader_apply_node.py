"""The loader on a test topology's node, through the CLI or in-process; bpftool helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loader_apply_net import Topology, in_ns

from netcc.loader import apply as apply_mod
from netcc.loader import detach as detach_mod
from netcc.loader import status as status_mod
from netcc.loader.netns import enter_netns


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


def bpftool_json(*args: str) -> Any:
    out = subprocess.run(["bpftool", "-j", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout or "[]")


def env_without_mode() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "NETCC_ATTACH"}
