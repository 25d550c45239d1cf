"""A node network namespace with pod namespaces on veth pairs, and traffic between the pods.

    netcctest-<id>-node           the "node": host side veths netcctest<id>h<N>, /32 routes
      |-- netcctest<id>h1 <-> eth0 in netcctest-<id>-pod1  (10.77.1.10)
      |-- netcctest<id>h2 <-> eth0 in netcctest-<id>-pod2  (10.77.1.11)

Pods route everything to the node (proxy ARP on the host side), the node forwards between
them. Traffic runs in subprocesses inside the pod namespaces (`nsenter --net`), driven by
`podnet_helper.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

HELPER = Path(__file__).with_name("podnet_helper.py")
POD_IPS = {"client": "10.77.1.10", "server": "10.77.1.11"}
SERVER_PORTS = (8080, 9090)


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def in_ns(ns: str, *cmd: str) -> list[str]:
    """A command line run in a named network namespace without remounting /sys."""
    return ["nsenter", f"--net=/run/netns/{ns}", *cmd]


@dataclass
class Pod:
    name: str
    ip: str
    ns: str
    host_if: str


@dataclass
class Topology:
    """The namespaces and links of one test; `remove` takes everything away."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:4])
    node_ns: str = ""
    pods: dict[str, Pod] = field(default_factory=dict)
    procs: list[subprocess.Popen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.node_ns = f"netcctest-{self.tag}-node"

    def create(self, pods: dict[str, str] = POD_IPS) -> Topology:
        """Make the namespaces and links; on failure remove what was made."""
        try:
            sh("ip", "netns", "add", self.node_ns)
            self._node("sysctl", "-qw", "net.ipv4.ip_forward=1")
            self._node("ip", "link", "set", "lo", "up")
            for i, (name, ip) in enumerate(sorted(pods.items()), start=1):
                self.add_pod(name, ip, i)
        except BaseException:
            self.remove()
            raise
        return self

    def _node(self, *cmd: str) -> None:
        sh(*in_ns(self.node_ns, *cmd))

    def add_pod(self, name: str, ip: str, index: int) -> Pod:
        pod = Pod(name, ip, f"netcctest-{self.tag}-pod{index}", f"netcctest{self.tag}h{index}")
        self.pods[name] = pod
        if not os.path.exists(f"/run/netns/{pod.ns}"):
            sh("ip", "netns", "add", pod.ns)
        self._node("ip", "link", "add", pod.host_if, "type", "veth", "peer", "name", "eth0",
                   "netns", pod.ns)  # fmt: skip
        self._node("sysctl", "-qw", f"net.ipv4.conf.{pod.host_if}.proxy_arp=1")
        self._node("sysctl", "-qw", f"net.ipv4.neigh.{pod.host_if}.proxy_delay=0")
        self._node("ip", "link", "set", pod.host_if, "up")
        self._node("ip", "route", "add", f"{ip}/32", "dev", pod.host_if)
        for cmd in (
            ("ip", "link", "set", "lo", "up"),
            ("ip", "addr", "add", f"{ip}/32", "dev", "eth0"),
            ("ip", "link", "set", "eth0", "up"),
            ("ip", "route", "add", "default", "dev", "eth0"),
        ):
            sh(*in_ns(pod.ns, *cmd))
        return pod

    def remove_pod_link(self, name: str) -> None:
        """Delete a pod's veth pair (its route goes with it)."""
        self._node("ip", "link", "del", self.pods[name].host_if)

    def ifindex(self, name: str) -> int:
        """ifindex of a pod's host-side interface (/sys is the host's under nsenter)."""
        out = sh(*in_ns(self.node_ns, "ip", "-j", "link", "show", "dev", self.pods[name].host_if))
        return int(json.loads(out.stdout)[0]["ifindex"])

    # --- traffic ---

    def serve(self, pod: str = "server", ports: tuple[int, ...] = SERVER_PORTS) -> None:
        """Start echo servers in a pod; returns once they listen."""
        p = subprocess.Popen(
            in_ns(self.pods[pod].ns, sys.executable, str(HELPER), "serve", *map(str, ports)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(p)
        assert p.stdout is not None
        line = p.stdout.readline()
        assert line.strip() == "listening", line + (p.stderr.read() if p.stderr else "")

    def connect(self, src: str, dst: str, port: int, timeout: float = 0.6) -> str:
        """One TCP connection with a round trip: "ok", "timeout" or "refused"."""
        out = sh(
            *in_ns(
                self.pods[src].ns,
                sys.executable,
                str(HELPER),
                "connect",
                self.pods[dst].ip,
                str(port),
                str(timeout),
            ),
            check=False,
        )
        return out.stdout.strip() or f"error: {out.stderr.strip()}"

    def _helper(self, pod: str, *args: str) -> Stream:
        p = subprocess.Popen(
            in_ns(self.pods[pod].ns, sys.executable, str(HELPER), *args),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(p)
        return Stream(p)

    def stream(self, src: str, dst: str, port: int) -> Stream:
        """A long-lived TCP connection exchanging data every 20 ms until stopped."""
        s = self._helper(src, "stream", self.pods[dst].ip, str(port))
        assert s.ask("ping")["rounds"] >= 1
        return s

    def probe(self, src: str, dst: str, port: int) -> Stream:
        """New connections back to back; `ask("ping")` gives {"ok", "failed"} counts."""
        return self._helper(src, "probe", self.pods[dst].ip, str(port))

    def remove(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            for f in (p.stdin, p.stdout, p.stderr):
                if f is not None:
                    f.close()
        for pod in self.pods.values():
            sh("ip", "netns", "del", pod.ns, check=False)
        sh("ip", "netns", "del", self.node_ns, check=False)


class Stream:
    """Handle on a `podnet_helper.py stream` process."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc

    def ask(self, command: str) -> dict:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"stream helper died: {self.proc.stderr.read()}")  # type: ignore[union-attr]
        return json.loads(line)

    def rounds_after(self, seconds: float) -> dict:
        """Status after letting it run `seconds` more."""
        time.sleep(seconds)
        return self.ask("ping")
