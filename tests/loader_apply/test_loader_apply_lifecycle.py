"""`netcc load` around the traffic: refusing bad artifacts, pods whose interface comes and
goes, status as a probe, switching attach modes, and detach leaving nothing behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from loader_apply_net import POD_IPS, Topology, in_ns, sh
from loader_apply_node import Node, bpftool_json

from netcc.loader import attach, libbpf


def _ids_of_pins(root: Path) -> dict[str, set[int]]:
    """Kernel ids of the maps, programs and links pinned under a pin root."""
    found: dict[str, set[int]] = {"map": set(), "prog": set(), "link": set()}
    for sub, kind in (("maps", "map"), ("progs", "prog"), ("links", "link")):
        for path in (root / sub).rglob("*") if (root / sub).exists() else []:
            if path.is_dir():
                continue
            fd = libbpf.obj_get(path)
            try:
                if kind == "map":
                    found[kind].add(libbpf.map_info(fd)["id"])
                elif kind == "prog":
                    found[kind].add(libbpf.prog_info(fd)["id"])
                else:
                    found[kind].add(attach.link_info(fd)["id"])
            finally:
                os.close(fd)
    return found


def _live_ids() -> dict[str, set[int]]:
    return {k: {o["id"] for o in bpftool_json(k, "list")} for k in ("map", "prog", "link")}


def _qdiscs(topo: Topology, ifname: str) -> str:
    return sh(*in_ns(topo.node_ns, "tc", "qdisc", "show", "dev", ifname)).stdout


def test_tampered_or_foreign_artifacts_are_refused(
    topo: Topology, node: Node, outs: dict[str, Path], tmp_path: Path
) -> None:
    bad = tmp_path / "tampered"
    shutil.copytree(outs["v1"], bad)
    ep = bad / "maps" / "netcc_endpoints.json"  # the only node's: all shared
    ep.write_text(ep.read_text().replace("10.77.1.10", "10.77.1.99"))
    proc = node.cli_apply(bad)
    assert proc.returncode == 1
    assert "netcc_endpoints.json: sha256" in proc.stderr and "does not match" in proc.stderr
    assert not node.pin_root.exists() and not node.state_dir.exists()

    extra = tmp_path / "extra"
    shutil.copytree(outs["v1"], extra)
    (extra / "bpf" / "evil.o").write_bytes(b"\0")
    proc = node.cli_apply(extra)
    assert proc.returncode == 1 and "bpf/evil.o: not in the lock" in proc.stderr

    proc = node.cli("apply", str(outs["v1"]), "--node", "n9")
    assert proc.returncode == 1 and "has no node 'n9' (nodes: n1)" in proc.stderr
    assert not node.pin_root.exists() and not node.state_dir.exists()

    # applied under one pin root, the same node can't be applied under another
    assert node.cli_apply(outs["v1"]).returncode == 0
    other = Node(topo, Path(str(node.pin_root) + "-other"), node.state_dir)
    proc = other.cli_apply(outs["v1"])
    assert proc.returncode == 1 and "detach it first" in proc.stderr
    assert not other.pin_root.exists()


def test_pod_interfaces_that_come_and_go(mode: str, tmp_path: Path, outs: dict[str, Path]) -> None:
    topo = Topology().create({"client": POD_IPS["client"]})
    node = Node(topo, Path("/sys/fs/bpf") / f"netcctest-{topo.tag}" / "n1", tmp_path / "st")
    try:
        proc = node.cli_apply(outs["v1"])
        assert proc.returncode == 0, proc.stderr
        assert "warning: pod 10.77.1.11 (app/server)" in proc.stderr
        assert "skipped" in proc.stderr
        result = json.loads(proc.stdout)
        assert len(result["hooks"]) == 2  # the client's interface only
        rc, st = node.cli_status()
        assert rc == 0 and st["nodes"][0]["pending"][0]["ip"] == "10.77.1.11"

        topo.add_pod("server", POD_IPS["server"], 2)
        topo.serve()
        rc, st = node.cli_status()
        assert rc == 1
        assert any("now routed to" in p for p in st["nodes"][0]["problems"])
        r = node.apply(outs["v1"])
        assert r.status == "repaired"
        assert sorted(h["action"] for h in r.hooks) == ["attached"] * 2 + ["kept"] * 2
        assert node.cli_status()[0] == 0
        assert topo.connect("client", "server", 8080) == "ok"
        assert topo.connect("client", "server", 9090) == "timeout"

        topo.remove_pod_link("server")
        rc, st = node.cli_status()
        assert rc == 1 and st["nodes"][0]["problems"]
        r = node.apply(outs["v1"])
        assert r.status == "repaired"
        assert sorted(h["action"] for h in r.hooks) == ["detached"] * 2 + ["kept"] * 2
        assert node.status()["pending"][0]["ip"] == "10.77.1.11"
        assert node.cli_status()[0] == 0
        assert node.apply(outs["v1"]).status == "unchanged"
        links = node.pin_root / "links"
        pins = sorted(p.name for p in links.iterdir()) if links.exists() else []
        client = topo.ifindex("client")
        assert pins == ([f"{client}-egress", f"{client}-ingress"] if mode == "tcx" else [])
    finally:
        try:
            node.detach()
        finally:
            topo.remove()
            shutil.rmtree(node.pin_root.parent, ignore_errors=True)


def test_status_notices_a_hook_removed_behind_its_back(
    mode: str, topo: Topology, node: Node, outs: dict[str, Path]
) -> None:
    node.apply(outs["v1"])
    assert node.cli_status()[0] == 0
    assert topo.connect("client", "server", 9090) == "timeout"
    host_if = topo.pods["server"].host_if
    # the server's ingress policy runs on its interface's egress hook
    if mode == "tc":
        sh(*in_ns(topo.node_ns, "tc", "filter", "del", "dev", host_if, "egress", "pref", "1"))
    else:
        fd = libbpf.obj_get(node.pin_root / "links" / f"{topo.ifindex('server')}-egress")
        try:
            attach.link_detach(fd)  # what `bpftool link detach` does
        finally:
            os.close(fd)
    assert topo.connect("client", "server", 9090) == "ok"  # nothing enforces it now
    rc, st = node.cli_status()
    assert rc == 1
    assert st["nodes"][0]["problems"] == [f"{host_if} egress: nothing attached ({mode})"]
    r = node.apply(outs["v1"])
    assert r.status == "repaired"
    assert [(h["ifname"], h["direction"]) for h in r.hooks if h["action"] == "attached"] == [
        (host_if, "egress")
    ]
    assert node.cli_status()[0] == 0
    assert topo.connect("client", "server", 9090) == "timeout"


def test_switching_attach_mode(topo: Topology, node: Node, outs: dict[str, Path]) -> None:
    os.environ["NETCC_ATTACH"] = "tc"
    try:
        node.apply(outs["v1"])
        os.environ["NETCC_ATTACH"] = "tcx"
        r = node.apply(outs["v1"])
    finally:
        del os.environ["NETCC_ATTACH"]
    assert r.status == "repaired" and r.mode == "tcx"
    assert {h["action"] for h in r.hooks if h["mode"] == "tcx"} == {"attached"}
    for pod in topo.pods.values():
        assert "clsact" not in _qdiscs(topo, pod.host_if)  # netcc made it, netcc removed it
    assert node.status()["ok"]
    assert topo.connect("client", "server", 8080) == "ok"
    assert topo.connect("client", "server", 9090) == "timeout"


def test_detach_leaves_nothing(
    mode: str, topo: Topology, node: Node, outs: dict[str, Path]
) -> None:
    node.apply(outs["v1"])
    ids = _ids_of_pins(node.pin_root)
    node.apply(outs["v3"])  # migrates maps: the old ones must go too
    for kind, found in _ids_of_pins(node.pin_root).items():
        ids[kind] |= found
    assert ids["prog"] and ids["map"] and (ids["link"] or mode == "tc")
    if mode == "tc":
        assert "clsact" in _qdiscs(topo, topo.pods["client"].host_if)

    proc = node.cli("detach", "--node", "n1")
    assert proc.returncode == 0, proc.stderr
    assert "detached" in proc.stdout
    assert not node.pin_root.exists() and not node.state_dir.exists()
    assert list(node.pin_root.parent.iterdir()) == []
    for pod in topo.pods.values():
        assert "clsact" not in _qdiscs(topo, pod.host_if)
        for d in ("ingress", "egress"):
            filters = sh(*in_ns(topo.node_ns, "tc", "filter", "show", "dev", pod.host_if, d))
            assert filters.stdout == ""
    deadline = time.monotonic() + 5  # programs and maps are freed after an RCU grace period
    while True:
        live = _live_ids()
        left = {k: ids[k] & live[k] for k in ids}
        if not any(left.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert left == {"map": set(), "prog": set(), "link": set()}

    again = node.cli("detach", "--node", "n1")
    assert again.returncode == 0 and "nothing was applied" in again.stdout
    rc = node.cli("status").returncode
    assert rc == 1  # nothing applied: not ready
    assert topo.connect("client", "server", 9090) == "ok"


def test_detach_keeps_a_clsact_qdisc_it_did_not_make(
    topo: Topology, node: Node, outs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NETCC_ATTACH", "tc")
    host_if = topo.pods["client"].host_if
    tc = ["tc", "filter", "add", "dev", host_if, "ingress", "pref", "100", "u32"]
    sh(*in_ns(topo.node_ns, "tc", "qdisc", "add", "dev", host_if, "clsact"))
    sh(*in_ns(topo.node_ns, *tc, "match", "u32", "0", "0"))
    node.apply(outs["v1"])
    proc = node.cli("detach")  # without --node: every node applied in this namespace
    assert proc.returncode == 0, proc.stderr
    assert "n1: detached" in proc.stdout
    assert "clsact" in _qdiscs(topo, host_if)
    out = sh(*in_ns(topo.node_ns, "tc", "filter", "show", "dev", host_if, "ingress")).stdout
    assert "u32" in out and "bpf" not in out
    assert "clsact" not in _qdiscs(topo, topo.pods["server"].host_if)


def test_cli_status_output(topo: Topology, node: Node, outs: dict[str, Path]) -> None:
    node.apply(outs["v1"])
    topo.connect("client", "server", 8080)
    proc = node.cli("status", "--node", "n1")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "node n1: OK" in text
    assert "10.77.1.11 app/server" in text
    assert "netcc_from_container" in text and "netcc_to_container" in text
    assert "app/server-ingress ingress rule 0" in text
    applied = json.loads(subprocess.check_output(["cat", str(node.state_dir / "state.json")]))
    assert (
        applied["digest"] in json.loads(node.cli("status", "--json").stdout)["nodes"][0]["digest"]
    )
