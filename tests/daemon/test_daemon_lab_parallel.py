"""`netcc lab pod add|del` run as many processes at once, as a kubelet starts pods in
parallel: every pod is recorded in the lab's state and pod API, networked on its node (its
address inside its class's block, its veth, its endpoint bound), a name taken twice at once
goes to exactly one of them, and the parallel DELs leave nothing behind."""

from __future__ import annotations

import json
import subprocess
import sys
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from lab_cli import leftovers, netcc

from netcc.lab import netns as lab_netns
from netcc.lab.kubeapi import read_pods
from netcc.lab.pods import pod_netns
from netcc.lab.state import STATE_DIR, LabState

NODES = {"node-1": 1, "node-2": 2, "node-3": 3}  # node -> third octet of its podCIDR
BLOCKS = {"web": "16/28", "db": "32/29"}  # each class's block inside a node's podCIDR
DUPLICATE = "shop/twice"  # added by two processes at once on node-1


def _pods() -> dict[str, tuple[str, str]]:
    """key -> (node, app): two of each class on every node."""
    return {
        f"shop/{app}-{node}-{i}": (node, app) for node in NODES for app in BLOCKS for i in range(2)
    }


def _spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "netcc", "lab", "pod", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _finish(procs: dict[str, subprocess.Popen]) -> dict[str, tuple[int, str, str]]:
    """Each process's exit code, stdout and stderr."""
    out = {}
    for key, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=600)
        out[key] = (proc.returncode, stdout, stderr)
    return out


def _in_netns(netns: str, *cmd: str) -> str:
    return subprocess.run(
        ["nsenter", f"--net=/run/netns/{netns}", *cmd],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def _addresses(netns: str) -> list[str]:
    links = json.loads(_in_netns(netns, "ip", "-j", "-4", "addr", "show"))
    return [a["local"] for link in links if link["ifname"] != "lo" for a in link["addr_info"]]


def _host_links(netns: str) -> list[str]:
    links = json.loads(_in_netns(netns, "ip", "-j", "link", "show"))
    return [link["ifname"] for link in links if link["ifname"].startswith("nc")]


def _bound(status: dict, node: str) -> set[str]:
    """The pod addresses bound to an interface on `node`, as the loader's status says."""
    (loaded,) = status["loader"][node]["nodes"]
    assert loaded["ok"], loaded["problems"]
    return {p["ip"] for i in loaded["interfaces"] for p in i["pods"]}


def _rpod_netns() -> list[str]:
    return [n for n in leftovers() if n.startswith("netcc-rpod")]


def test_parallel_pod_adds_and_dels(lab_out: Path) -> None:
    keys = [*_pods(), DUPLICATE]
    try:
        _adds_and_dels()
    finally:  # what a lost record would leave: `lab down` removes only what is recorded
        for key in keys:
            lab_netns.remove(pod_netns(key))


def _adds_and_dels() -> None:
    before = json.loads(netcc("lab", "status", "--json").stdout)
    pods = _pods()
    procs = {
        key: _spawn("add", key, "--node", node, "--labels", f"app={app}", "--json")
        for key, (node, app) in pods.items()
    }
    twice = [_spawn("add", DUPLICATE, "--node", "node-1", "--labels", "app=web", "--json")]
    twice.append(_spawn("add", DUPLICATE, "--node", "node-1", "--labels", "app=web", "--json"))
    done = _finish(procs)
    dup = _finish(dict(enumerate(twice)))

    failed = {k: err for k, (code, _, err) in done.items() if code != 0}
    assert failed == {}
    codes = sorted(code for code, _, _ in dup.values())
    assert codes == [0, 1], dup
    (refusal,) = [err for code, _, err in dup.values() if code == 1]
    assert f"pod {DUPLICATE} exists already" in refusal
    (won,) = [json.loads(out) for code, out, _ in dup.values() if code == 0]
    added = {k: json.loads(out) for k, (_, out, _) in done.items()} | {DUPLICATE: won}
    pods[DUPLICATE] = ("node-1", "web")

    # -- every pod: one address of its class's block on its node, none handed out twice
    per_node: dict[str, set[str]] = {n: set() for n in NODES}
    for key, doc in added.items():
        node, app = pods[key]
        (ip,) = doc["ips"]
        assert (doc["pod"], doc["node"], doc["class"]) == (key, node, f"shop/{app}")
        assert IPv4Address(ip) in IPv4Network(f"10.244.{NODES[node]}.{BLOCKS[app]}")
        assert ip not in per_node[node], f"{ip} handed out twice on {node}"
        per_node[node].add(ip)

    # -- recorded: the lab's state, the pod API, `lab status`
    state = LabState.load(STATE_DIR)
    recorded = {r["key"]: r for r in state.of_kind("pod")}
    assert set(recorded) == set(added)
    assert {k: r["ips"] for k, r in recorded.items()} == {k: d["ips"] for k, d in added.items()}
    assert len({r["containerID"] for r in recorded.values()}) == len(recorded)
    assert set(read_pods(state.path.parent)) == set(added)
    status = json.loads(netcc("lab", "status", "--json").stdout)
    assert status["pods"] == added

    # -- networked: the address inside the pod, its veth and endpoint on its node
    for key, doc in added.items():
        assert _addresses(doc["netns"]) == doc["ips"], key
    for node in NODES:
        netns = status["nodes"][node]["netns"]
        assert len(_host_links(netns)) == len(per_node[node])
        assert _bound(status, node) == _bound(before, node) | per_node[node]
        (loaded,) = status["loader"][node]["nodes"]
        assert {p["ip"] for p in loaded["daemon"]["pods"]} == per_node[node]

    # -- DELs at once: nothing is left
    gone = _finish({key: _spawn("del", key) for key in added})
    assert {k: err for k, (code, _, err) in gone.items() if code != 0} == {}
    state = LabState.load(STATE_DIR)
    assert state.of_kind("pod") == []
    assert read_pods(state.path.parent) == {}
    assert _rpod_netns() == []
    status = json.loads(netcc("lab", "status", "--json").stdout)
    assert status["pods"] == {}
    for node in NODES:
        assert _host_links(status["nodes"][node]["netns"]) == []
        assert _bound(status, node) == _bound(before, node)
        (loaded,) = status["loader"][node]["nodes"]
        assert loaded["daemon"]["pods"] == []
