"""A node namespace for loader tests of services: an uplink holding the node's address and a
veth per pod, no pod namespaces (packets are run through the pinned programs with
BPF_PROG_TEST_RUN, on the veth's ifindex). Specs: one node, a client and two servers, and
versions with and without a NodePort service."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from netcc.loader import apply as apply_mod
from netcc.loader import detach as detach_mod
from netcc.loader import status as status_mod
from netcc.loader.netns import enter_netns

NODE_ADDR = "192.168.251.1"
PODS = {"client": "10.78.1.10", "server-a": "10.78.1.11", "server-b": "10.78.1.12"}
VIP = "10.96.0.10"
NODE_PORT = 30080

BASE = """\
apiVersion: netcc.io/v1alpha1
kind: ClusterNetwork
metadata: {name: svcnode}
spec:
  podCIDR: 10.78.0.0/16
  serviceCIDR: 10.96.0.0/16
  nodes:
    - {name: n1, address: 192.168.251.1, podCIDR: 10.78.1.0/24}
  namespaces:
    - {name: app}
  workloads:
    - {name: client, namespace: app, node: n1, labels: {app: client}, ips: [10.78.1.10]}
    - {name: server-a, namespace: app, node: n1, labels: {app: server}, ips: [10.78.1.11],
       ports: [{name: http, port: 8080}]}
    - {name: server-b, namespace: app, node: n1, labels: {app: %(b_label)s}, ips: [10.78.1.12],
       ports: [{name: http, port: 8080}]}
"""
SERVICE = """\
  services:
    - name: web
      namespace: app
      type: NodePort
      clusterIP: 10.96.0.10
      selector: {app: server}
      ports: [{name: http, port: 80, targetPort: http, nodePort: 30080}]
"""


def spec(service: bool, both_backends: bool = True) -> str:
    """`service`: the NodePort service; `both_backends`: server-b is one of its backends."""
    text = BASE % {"b_label": "server" if both_backends else "retired"}
    return text + (SERVICE if service else "")


def sh(*cmd: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    return proc.stdout


@dataclass
class SvcNode:
    """The namespace, and the loader applied in it under a pin root of its own."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    state_dir: Path = Path()

    @property
    def ns(self) -> str:
        return f"netcctest-{self.tag}-svc"

    @property
    def pin_root(self) -> Path:
        return Path("/sys/fs/bpf") / f"netcctest-{self.tag}" / "n1"

    def run(self, *cmd: str) -> str:
        return sh("nsenter", f"--net=/run/netns/{self.ns}", *cmd)

    def create(self) -> None:
        sh("ip", "netns", "add", self.ns)
        self.run("ip", "link", "set", "lo", "up")
        self.run("ip", "link", "add", "uplink0", "type", "veth", "peer", "name", "underlay0")
        self.run("ip", "addr", "add", f"{NODE_ADDR}/24", "dev", "uplink0")
        self.run("ip", "link", "set", "uplink0", "up")
        self.run("ip", "link", "set", "underlay0", "up")
        for i, ip in enumerate(PODS.values(), start=1):
            self.run("ip", "link", "add", f"h{i}", "type", "veth", "peer", "name", f"p{i}")
            self.run("ip", "link", "set", f"h{i}", "up")
            self.run("ip", "link", "set", f"p{i}", "up")
            self.run("ip", "route", "add", f"{ip}/32", "dev", f"h{i}")

    def ifindex(self, name: str) -> int:
        return int(json.loads(self.run("ip", "-j", "link", "show", "dev", name))[0]["ifindex"])

    def pod_ifindex(self, pod: str) -> int:
        return self.ifindex(f"h{list(PODS).index(pod) + 1}")

    def apply(self, out: Path) -> apply_mod.ApplyResult:
        with enter_netns(self.ns):
            return apply_mod.apply(out, "n1", pin_root=self.pin_root, state_dir=self.state_dir)

    def status(self) -> dict:
        with enter_netns(self.ns):
            return status_mod.status("n1", self.pin_root, self.state_dir)["nodes"][0]

    def detach(self) -> dict:
        with enter_netns(self.ns):
            return detach_mod.detach("n1", self.pin_root, self.state_dir)

    def remove(self) -> None:
        try:
            if self.state_dir.exists() or self.pin_root.exists():
                self.detach()
        finally:
            shutil.rmtree(self.pin_root.parent, ignore_errors=True)
            shutil.rmtree(self.state_dir, ignore_errors=True)
            subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, check=False)


@contextmanager
def svc_node(state_dir: Path) -> Iterator[SvcNode]:
    """A fresh SvcNode, removed (detached, pins and namespace gone) whatever happens."""
    node = SvcNode(state_dir=state_dir)
    try:
        node.create()
        yield node
    finally:
        node.remove()
