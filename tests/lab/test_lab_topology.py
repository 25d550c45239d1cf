"""The lab's topology without BPF: 3 nodes, 9 pods and an external host, no loader.

Every pod reaches every other pod, the external host and every node over real TCP and UDP
(no policy is loaded), and the inventory has the documented shape.
"""

from __future__ import annotations

import json
import subprocess
from itertools import permutations

import pytest
from labspecs import EXTERNALS, NODES, PODS, lab_namespaces, netcc, teardown_lab, up_seconds

from netcc.lab import core as lab


@pytest.fixture(scope="module")
def topo(module_root, spec_files):
    """`netcc lab up SPEC --external ... --no-load --json`; down at the end, whatever happens."""
    before = lab_namespaces()
    try:
        r = netcc(
            "lab", "up", str(spec_files["none"]), "--external", *EXTERNALS, "--no-load", "--json"
        )
        assert r.returncode == 0, r.stderr
        seconds = up_seconds(r.stderr)
        print(f"\nlab up (3 nodes, 9 pods, external, no loader): {seconds:.2f} s")
        yield {"inventory": json.loads(r.stdout), "seconds": seconds, "before": before}
    finally:
        teardown_lab()


def test_up_time(topo):
    print(f"\nmeasured up time: {topo['seconds']:.2f} s (limit 5 s)")
    assert topo["seconds"] <= 5.0


def test_inventory_json(topo):
    inv = topo["inventory"]
    assert set(inv) == {"nodes", "workloads", "external"}
    assert set(inv["nodes"]) == set(NODES)
    assert set(inv["workloads"]) == set(PODS)
    for name, n in inv["nodes"].items():
        assert set(n) == {"netns", "address"}
        assert n["netns"] == f"netcc-{name}"
    for w in inv["workloads"].values():
        assert set(w) == {"netns", "node", "ips"} and w["node"] in NODES and w["ips"]
    assert inv["external"] == {"netns": "netcc-external", "ips": list(EXTERNALS)}
    made = {n["netns"] for n in inv["nodes"].values()}
    made |= {w["netns"] for w in inv["workloads"].values()}
    made |= {"netcc-external", "netcc-underlay"}
    assert lab_namespaces() - topo["before"] == made


def test_status_json(topo):
    r = netcc("lab", "status", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "up"
    for key in ("nodes", "workloads", "external"):
        assert doc[key] == topo["inventory"][key]
    assert "loader" not in doc  # nothing was loaded


def test_addresses_and_routes(topo):
    """The node routes each pod IP through its veth, and the pod via its router address."""
    out = subprocess.run(
        ["ip", "-n", "netcc-node-1", "-j", "route"], capture_output=True, text=True, check=True
    )
    routes = {r["dst"]: r for r in json.loads(out.stdout)}
    assert routes["10.244.1.10"]["dev"].startswith("lxc")
    assert routes["10.244.2.0/24"]["gateway"] == "192.168.77.12"
    assert routes["192.0.2.10"]["dev"] == "eth0"
    out = subprocess.run(
        ["ip", "-n", "netcc-pod-shop.frontend", "-j", "route"],
        capture_output=True,
        text=True,
        check=True,
    )
    default = next(r for r in json.loads(out.stdout) if r["dst"] == "default")
    assert default["gateway"] == "10.244.1.1"
    for sysctl, want in (("net/ipv4/ip_forward", "1"), ("net/ipv4/conf/all/rp_filter", "2")):
        got = subprocess.run(
            ["nsenter", "--net=/run/netns/netcc-node-2", "cat", f"/proc/sys/{sysctl}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert got == want, sysctl


@pytest.mark.parametrize("protocol", ["TCP", "UDP"])
def test_everything_reaches_everything(topo, protocol):
    """Pod to pod (same node and across nodes), pod to external and back, node to pod."""
    pairs = list(permutations(PODS, 2))
    pairs += [(p, x) for p in PODS for x in EXTERNALS] + [(x, p) for p in PODS for x in EXTERNALS]
    pairs += [(n, p) for n in NODES for p in PODS] + [(p, n) for n in NODES for p in PODS]
    results = lab.probe_many([(s, d, 8080, protocol) for s, d in pairs])
    failed = [f"{r.probe.src_ip} -> {r.probe.dst_ip}: {r.detail}" for r in results if not r.allowed]
    print(f"\n{len(results)} {protocol} probes, {len(failed)} failed")
    assert not failed


def test_probe_cli(topo):
    r = netcc("lab", "probe", "shop/frontend", "payments/ledger", "5000/udp", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["verdict"] == "allow"
    assert (doc["src"], doc["dst"], doc["port"], doc["protocol"]) == (
        "shop/frontend",
        "payments/ledger",
        5000,
        "UDP",
    )
    assert doc["decided_by"] == []  # no artifacts loaded
    r = netcc("lab", "probe", EXTERNALS[0], "node-2", "22/tcp")
    assert r.returncode == 0, r.stderr
    assert "allowed" in r.stdout
    r = netcc("lab", "probe", "shop/frontend", "nowhere/at-all", "1/tcp")
    assert r.returncode == 1 and "not a workload" in r.stderr
