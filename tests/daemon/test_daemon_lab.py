"""Runtime pods in the lab: `netcc lab up` starts a node daemon per node when its artifacts
declare classes; `lab pod add|del` run CNI through the real plugin binary; `lab status`
lists the pods; `lab down` leaves no namespace, process, interface or file behind."""

from __future__ import annotations

import json
import subprocess
import sys
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
from lab_cli import REPO, leftovers, netcc

from netcc.lab.state import STATE_DIR, LabState


def test_lab_runtime_pods(lab_out: Path) -> None:
    added = json.loads(
        netcc("lab", "pod", "add", "shop/web-1", "--node", "node-1", "--labels",
              "app=web,pod-template-hash=1", "--json").stdout
    )  # fmt: skip
    assert set(added) == {"pod", "node", "netns", "ips", "class", "ready"}
    assert added["ready"] is False  # like a pod whose readiness probe has not passed yet
    assert added["class"] == "shop/web" and added["node"] == "node-1"
    assert IPv4Address(added["ips"][0]) in IPv4Network("10.244.1.16/28")
    db = json.loads(
        netcc("lab", "pod", "add", "shop/db-1", "--node", "node-2", "--labels", "app=db",
              "--json").stdout
    )  # fmt: skip
    assert IPv4Address(db["ips"][0]) in IPv4Network("10.244.2.32/29")
    refused = netcc(
        "lab", "pod", "add", "shop/stray", "--node", "node-2", "--labels", "app=x", check=False
    )
    assert refused.returncode == 1 and "matches no workload class" in refused.stderr
    status = json.loads(netcc("lab", "status", "--json").stdout)
    assert set(status["pods"]) == {"shop/web-1", "shop/db-1"}
    assert status["pods"]["shop/db-1"]["class"] == "shop/db"
    assert "netcc-rpod-shop.stray" not in leftovers()
    netcc("lab", "pod", "del", "shop/web-1")
    assert "netcc-rpod-shop.web-1" not in leftovers()
    status = json.loads(netcc("lab", "status", "--json").stdout)
    assert set(status["pods"]) == {"shop/db-1"}


def test_lab_down_removes_runtime_pods_and_daemons(lab_out: Path) -> None:
    netcc("lab", "pod", "add", "shop/web-1", "--node", "node-1", "--labels", "app=web")
    netcc("lab", "down")
    assert leftovers() == []
    assert not STATE_DIR.exists() or not any(STATE_DIR.iterdir())
    netcc("lab", "up", str(REPO / "examples" / "shop.yaml"), "--artifacts", str(lab_out))


CLASS_SPEC = """\
apiVersion: netcc.io/v1alpha1
kind: ClusterNetwork
metadata: {name: classes}
spec:
  podCIDR: 10.244.0.0/16
  serviceCIDR: 10.96.0.0/16
  nodes:
    - {name: node-1, address: 192.168.77.11, podCIDR: 10.244.1.0/24}
    - {name: node-2, address: 192.168.77.12, podCIDR: 10.244.2.0/24}
  namespaces:
    - {name: shop, labels: {team: shop}}
  workloads:
    - {name: web, namespace: shop, labels: {app: web}}
    - {name: cache, namespace: shop, labels: {app: cache}}
    - {name: db, namespace: shop, labels: {app: db}, ports: [{name: sql, port: 5432}]}
  policies:
    - apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: db-in, namespace: shop}
      spec:
        podSelector: {matchLabels: {app: db}}
        policyTypes: [Ingress]
        ingress:
          - from: [{podSelector: {matchLabels: {app: web}}}]
            ports: [{port: 5432}]
"""
SERVER = """\
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5432)); s.listen(); print("listening", flush=True)
while True:
    c, _ = s.accept(); c.sendall(b"hi"); c.close()
"""
CLIENT = """\
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], 5432), 3); print(c.recv(2).decode())
except OSError as e:
    print("failed", e)
"""


def _in_pod(netns: str, code: str, *args: str) -> list[str]:
    return ["nsenter", f"--net=/run/netns/{netns}", sys.executable, "-c", code, *args]


def _deny_counts(verdict: int) -> int:
    from netcc.lab.core import read_counters

    state = LabState.load(STATE_DIR)
    found = read_counters(state, ["node-2"]).get(("node-2", verdict))
    return found[1] if found else 0


@pytest.fixture
def class_lab(shim: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A lab of a spec whose workloads are all classes, compiled by `netcc lab up`."""
    if LabState.exists(STATE_DIR):
        pytest.fail(f"a lab is already up ({STATE_DIR}); not touching it")
    monkeypatch.setenv("NETCC_CNI_BIN", str(shim))
    spec = tmp_path / "classes.yaml"
    spec.write_text(CLASS_SPEC)
    try:
        netcc("lab", "up", str(spec))
        yield Path(LabState.load(STATE_DIR).doc["out"])
    finally:
        down = netcc("lab", "down", check=False)
        assert down.returncode == 0, down.stderr


def test_class_pods_on_two_nodes_are_enforced_from_the_first_packet(class_lab: Path) -> None:
    from netcc.contract.classes import load

    db_class = load((class_lab / "classes.json").read_bytes()).by_key("shop/db")
    assert db_class is not None
    deny = db_class.endpoint["ingress_deny"]

    def add(key: str, node: str, app: str) -> dict:
        out = netcc("lab", "pod", "add", key, "--node", node, "--labels", f"app={app}", "--json")
        return json.loads(out.stdout)

    db = add("shop/db-1", "node-2", "db")
    server = subprocess.Popen(
        _in_pod(db["netns"], SERVER), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "listening"
        for key, app in (("shop/web-1", "web"), ("shop/cache-1", "cache")):
            pod = add(key, "node-1", app)  # then at once: the first SYN gets the final verdict
            got = subprocess.run(
                _in_pod(pod["netns"], CLIENT, db["ips"][0]), capture_output=True, text=True
            ).stdout.strip()
            if app == "web":
                assert got == "hi"
                assert _deny_counts(deny) == 0  # not even a retransmitted first SYN was dropped
            else:
                assert got.startswith("failed")
                assert _deny_counts(deny) > 0  # dropped by db's ingress policy on node-2
    finally:
        server.kill()
        server.wait()


def _node_links(netns: str) -> list[str]:
    out = subprocess.run(
        ["nsenter", f"--net=/run/netns/{netns}", "ip", "-j", "link", "show"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [link["ifname"] for link in json.loads(out) if link["ifname"].startswith("nc")]


def test_pod_churn_across_three_nodes_leaves_nothing(lab_out: Path) -> None:
    nodes = {"node-1": 1, "node-2": 2, "node-3": 3}  # node -> third octet of its podCIDR

    def bound(status: dict, node: str) -> list:
        return [i["pods"] for i in status["loader"][node]["nodes"][0]["interfaces"]]

    before = json.loads(netcc("lab", "status", "--json").stdout)
    for i in range(8):
        app, block = ("web", "16/28") if i % 2 else ("db", "32/29")
        added = []
        for n, octet in nodes.items():
            key = f"shop/churn-{n}-{i}"
            doc = json.loads(
                netcc("lab", "pod", "add", key, "--node", n, "--labels", f"app={app}",
                      "--json").stdout
            )  # fmt: skip
            assert IPv4Address(doc["ips"][0]) in IPv4Network(f"10.244.{octet}.{block}")
            added.append(key)
        for key in added:
            netcc("lab", "pod", "del", key)
    status = json.loads(netcc("lab", "status", "--json").stdout)
    assert status["pods"] == {}
    for n in nodes:
        assert _node_links(status["nodes"][n]["netns"]) == []
        (loaded,) = status["loader"][n]["nodes"]
        assert loaded["ok"], loaded["problems"]
        assert loaded["daemon"]["pods"] == []
        assert bound(status, n) == bound(before, n)  # the static pods' entries alone
    assert not [line for line in leftovers() if line.startswith("netcc-rpod")]
