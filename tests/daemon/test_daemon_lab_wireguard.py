"""Runtime pods with WireGuard: examples/pods.yaml with `spec.encryption.wireguard` in the lab
(wireguard-go on every node, as `netcc lab up` runs it). Class pods on different nodes talk
through the tunnel and are judged as pods, the pod interface gets the tunnel's MTU, and each
peer's allowed IPs are its node's podCIDR, so every class block travels encrypted."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
from lab_cli import netcc, print_daemon_logs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "wireguard"))

from wgspecs import key_dir, with_wireguard

from netcc.keys import generate
from netcc.lab import core as lab
from netcc.lab import wireguard as lab_wireguard
from netcc.lab.state import STATE_DIR, LabState

REPO = Path(__file__).resolve().parents[2]
NODES = {"node-1": "10.244.1.0/24", "node-2": "10.244.2.0/24", "node-3": "10.244.3.0/24"}
DEVICE = "netcc-wg0"


@pytest.fixture(scope="module")
def wg_pods_lab(shim: Path) -> Iterator[dict[str, dict[str, str]]]:
    """The encrypted lab; the key entries by node. Torn down whatever happens."""
    if shutil.which("wireguard-go") is None:
        pytest.skip("wireguard-go is not installed (`make setup` installs it; CI has it)")
    if LabState.exists(STATE_DIR):
        pytest.fail(f"a lab is already up ({STATE_DIR}); not touching it")
    with key_dir() as keys, pytest.MonkeyPatch.context() as mp:
        mp.setenv("NETCC_CNI_BIN", str(shim))
        entries = generate(keys, list(NODES))
        spec = keys / "pods-encrypted.yaml"
        spec.write_text(with_wireguard((REPO / "examples" / "pods.yaml").read_text(), entries))
        try:
            netcc("lab", "up", str(spec))
            yield entries
        finally:
            print_daemon_logs()  # shown when a test failed
            down = netcc("lab", "down", check=False)
            assert down.returncode == 0, down.stderr


def _add(key: str, node: str, labels: str) -> dict:
    return json.loads(
        netcc("lab", "pod", "add", key, "--node", node, "--labels", labels, "--json").stdout
    )


def _transfer(node: str) -> dict[str, int]:
    """Bytes received plus sent per peer public key, from `wg show DEVICE transfer`."""
    text = lab_wireguard.show_node(LabState.load(STATE_DIR), node, "transfer")
    rows = (line.split("\t") for line in text.splitlines() if line)
    return {key: int(rx) + int(tx) for key, rx, tx in rows}


def test_class_pods_across_nodes_talk_through_the_tunnel(
    wg_pods_lab: dict[str, dict[str, str]],
) -> None:
    entries = wg_pods_lab
    node_of = {e["publicKey"]: n for n, e in entries.items()}
    plan = json.loads(
        (Path(LabState.load(STATE_DIR).doc["out"]) / "nodes/node-1/wireguard.json").read_text()
    )
    web = _add("shop/web-1", "node-1", "app=web")
    api = _add("shop/api-2", "node-2", "app=api")
    prom = _add("monitoring/prom-3", "node-3", "app=prometheus")

    # the pod's interface has the tunnel's MTU (underlay 1500 - 80)
    for pod in (web, api, prom):
        link = subprocess.run(
            ["ip", "netns", "exec", pod["netns"], "ip", "-j", "link", "show", "eth0"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert json.loads(link)[0]["mtu"] == plan["mtu"] == 1420

    # each peer's allowed IPs are exactly its node's podCIDR, which holds every class block
    for node in NODES:
        text = lab_wireguard.show_node(LabState.load(STATE_DIR), node, "allowed-ips")
        rows = (line.split("\t") for line in text.splitlines() if line)
        allowed = {node_of[key]: ips.split() for key, ips in rows}
        assert allowed == {n: [c] for n, c in NODES.items() if n != node}, text
    for pod in (web, api, prom):
        assert IPv4Address(pod["ips"][0]) in IPv4Network(NODES[pod["node"]])

    # pods across nodes: through the tunnel, judged by their classes
    before = {n: _transfer(n) for n in NODES}
    results = lab.probe_many(
        [
            ("shop/web-1", "shop/api-2", 9000, "TCP"),  # node-1 -> node-2: api from web
            ("shop/api-2", "shop/db", 5432, "TCP"),  # node-2 -> node-3 (static): db from api
            ("monitoring/prom-3", "shop/web-1", 8080, "TCP"),  # node-3 -> node-1
            ("monitoring/prom-3", "shop/api-2", 9000, "TCP"),  # denied: prometheus egress
            ("shop/web-1", "shop/db", 5432, "TCP"),  # denied: db not from web
            ("shop/api-2", "shop/web-1", 8080, "UDP"),  # denied: TCP only
        ],
        timeout=1.0,
    )
    assert [r.allowed for r in results] == [True, True, True, False, False, False], [
        r.detail for r in results
    ]
    after = {n: _transfer(n) for n in NODES}
    key = {n: e["publicKey"] for n, e in entries.items()}
    for a, b in (("node-1", "node-2"), ("node-2", "node-3"), ("node-3", "node-1")):
        assert after[a][key[b]] > before[a][key[b]], f"{a} sent nothing to {b} through {DEVICE}"
    for node in NODES:  # and pod CIDRs are routed only through the device
        for other, other_cidr in NODES.items():
            if other == node:
                continue
            route = subprocess.run(
                ["ip", "netns", "exec", f"netcc-{node}", "ip", "-j", "route", "get",
                 str(IPv4Network(other_cidr)[40])],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            assert json.loads(route)[0]["dev"] == DEVICE, (node, other, route)
    netcc("lab", "pod", "del", "shop/web-1")
    netcc("lab", "pod", "del", "shop/api-2")
    netcc("lab", "pod", "del", "monitoring/prom-3")
