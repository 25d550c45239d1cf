"""Helpers for the CNI tests: the shim's build and invocation, a fake daemon handler, and the
configuration a runtime passes. Imported by the tests and by conftest.py's fixtures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

import pytest

from netcc.loader.cni.protocol import IPConfig, Request, Result, Route
from netcc.loader.cni.results import Interface

REPO = Path(__file__).resolve().parents[2]
POD_UID = "1b2c3d4e-0000-4000-8000-0123456789ab"
POD_ARGS = f"IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=cart-1;K8S_POD_UID={POD_UID}"


def go_or_skip() -> str:
    go = shutil.which("go")
    if go is None:
        pytest.skip("go is not installed (`make setup` installs golang-go)")
    return go


def make_cni(binary: Path, makefile_dir: Path = REPO) -> None:
    """Build the shim with the Makefile's own `cni` target into `binary` (without its
    system-packages step: a test installs nothing)."""
    go_or_skip()
    make = ["make", "-s", "--no-print-directory", "-o", "system-packages", "-C", str(makefile_dir)]
    subprocess.run(
        [*make, "cni", f"CNI_BIN={binary}"],
        check=True,
        capture_output=True,
        timeout=300,
    )


def sample_result(req: Request) -> Result:
    """What a daemon answers for ADD: a veth in the pod, a /32, a default route."""
    gw = IPv4Address("10.244.1.1")
    return Result(
        interfaces=(
            Interface("nc0123456789a", mac="aa:bb:cc:00:00:01", mtu=1500),
            Interface(req.ifname, mac="aa:bb:cc:00:00:02", sandbox=req.netns, mtu=1500),
        ),
        ips=(IPConfig(IPv4Interface("10.244.1.17/32"), gateway=gw, interface=1),),
        routes=(
            Route(IPv4Network("10.244.1.1/32"), scope=253),
            Route(IPv4Network("0.0.0.0/0"), gw=gw, mtu=1420),
        ),
    )


@dataclass
class FakeHandler:
    """Records every call; `fail[command]` is raised instead, `delay[command]` slept first."""

    calls: list[tuple[str, Request]] = field(default_factory=list)
    fail: dict[str, BaseException] = field(default_factory=dict)
    delay: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _call(self, command: str, req: Request) -> None:
        time.sleep(self.delay.get(command, 0))
        with self.lock:
            self.calls.append((command, req))
        if command in self.fail:
            raise self.fail[command]

    def commands(self) -> list[str]:
        with self.lock:
            return [c for c, _ in self.calls]

    def add(self, req: Request) -> Result:
        self._call("ADD", req)
        return sample_result(req)

    def delete(self, req: Request) -> None:
        self._call("DEL", req)

    def check(self, req: Request) -> None:
        self._call("CHECK", req)

    def status(self, req: Request) -> None:
        self._call("STATUS", req)

    def gc(self, req: Request) -> None:
        self._call("GC", req)


def netconf(socket_path: Path, version: str = "1.1.0", **extra: object) -> dict:
    """A plugin's network configuration, as a runtime passes it on stdin."""
    conf = {"cniVersion": version, "name": "netcc", "type": "netcc", "socket": str(socket_path)}
    return {**conf, **extra}


def run_shim(
    shim: Path,
    command: str,
    config: Mapping | bytes,
    *,
    container_id: str = "0123456789abcdef",
    ifname: str = "eth0",
    netns: str = "/var/run/netns/cni-test",
    args: str = POD_ARGS,
    path: str = "/opt/cni/bin",
    timeout: float = 30,
) -> tuple[int, dict | None, str]:
    """Run the shim as a runtime does: CNI_* in a clean environment, the config on stdin.
    Returns (exit status, stdout as JSON or None when empty, stderr)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": netns,
        "CNI_IFNAME": ifname,
        "CNI_ARGS": args,
        "CNI_PATH": path,
    }
    data = config if isinstance(config, bytes) else json.dumps(config).encode()
    p = subprocess.run(
        [str(shim)], input=data, env=env, capture_output=True, timeout=timeout, check=False
    )
    out = p.stdout.decode()
    return p.returncode, (json.loads(out) if out.strip() else None), p.stderr.decode()
