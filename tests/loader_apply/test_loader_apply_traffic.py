"""`netcc load apply` with real traffic between pod namespaces: enforcement, no-op re-apply,
in-place update under an open connection, renumbered verdicts, conntrack capacity change,
rollback of a failed swap and of an object the verifier refuses. Both attach modes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from loader_apply_net import Topology
from loader_apply_node import Node

from netcc.loader import attach, libbpf, migrate, state
from netcc.loader.apply import ApplyError
from netcc.loader.libbpf import BpfObject


def hook_ids(status: dict) -> dict[tuple[str, str], int]:
    return {
        (i["ifname"], d): h["prog_id"] for i in status["interfaces"] for d, h in i["hooks"].items()
    }


def counter(status: dict, policy: str) -> int:
    return sum(c["packets"] for c in status["counters"] if c.get("policy") == policy)


def test_apply_enforces_and_second_apply_is_a_noop(
    mode: str, topo: Topology, node: Node, outs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert topo.connect("client", "server", 9090) == "ok"  # nothing enforced yet
    proc = node.cli_apply(outs["v1"])
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "applied" and result["mode"] == mode
    assert {h["action"] for h in result["hooks"]} == {"attached"}
    assert len(result["hooks"]) == 4

    assert topo.connect("client", "server", 8080) == "ok"
    assert topo.connect("client", "server", 9090) == "timeout"  # default deny, SYN dropped

    rc, st = node.cli_status()
    assert rc == 0, st
    n = st["nodes"][0]
    assert n["ok"] and n["mode"] == mode
    assert {i["ifname"] for i in n["interfaces"]} == {p.host_if for p in topo.pods.values()}
    assert counter(n, "app/server-ingress") > 0
    denies = [c for c in n["counters"] if c.get("pod") == "app/server"]
    assert sum(c["packets"] for c in denies) > 0

    # Same OUT again: nothing may be written to the kernel or the state.
    def boom(*a: object, **k: object) -> None:
        raise AssertionError("a second apply of the same OUT wrote something")

    for mod, name in [
        (libbpf, "map_update"),
        (libbpf, "map_update_percpu"),
        (libbpf, "map_delete"),
        (libbpf, "obj_pin"),
        (attach, "attach"),
        (attach, "replace"),
        (attach, "detach"),
        (attach, "ensure_clsact"),
        (state, "save_state"),
    ]:
        monkeypatch.setattr(mod, name, boom)
    monkeypatch.setattr(BpfObject, "load", boom)
    again = node.apply(outs["v1"])
    assert again.status == "unchanged"
    assert hook_ids(node.status()) == hook_ids(n)
    assert topo.connect("client", "server", 8080) == "ok"


def test_update_keeps_established_connections(
    mode: str, topo: Topology, node: Node, outs: dict[str, Path]
) -> None:
    first = node.apply(outs["v1"])
    stream = topo.stream("client", "server", 8080)

    # v2: the server takes 9090 instead of 8080; same verdict numbers, maps synced in place.
    r2 = node.apply(outs["v2"])
    assert r2.status == "updated"
    assert {h["action"] for h in r2.hooks} == {"replaced"}
    assert r2.maps["netcc_ct"]["plan"] == "reuse"
    assert topo.connect("client", "server", 9090) == "ok"
    assert topo.connect("client", "server", 8080) == "timeout"
    s = stream.rounds_after(0.2)
    assert s["alive"] and s["error"] is None, s

    # v3: a new policy renumbers the verdicts: conntrack and counters are carried over.
    before = counter(node.status(), "app/server-ingress")
    r3 = node.apply(outs["v3"])
    assert r3.maps["netcc_ct"]["plan"] == "migrate"
    assert r3.maps["netcc_ct"]["migrated"]["copied"] >= 2  # both ends of the stream
    assert r3.maps["netcc_stats"]["plan"] == "migrate"
    rounds = stream.ask("ping")["rounds"]
    s = stream.rounds_after(0.3)
    assert s["alive"] and s["error"] is None and s["rounds"] > rounds, s
    assert topo.connect("client", "server", 9090) == "ok"
    assert topo.connect("client", "server", 8080) == "timeout"
    st = node.status()
    assert st["ok"], st["problems"]
    assert counter(st, "app/server-ingress") >= before  # carried to the new number
    assert {h["prog_id"] for h in first.hooks}.isdisjoint(hook_ids(st).values())
    # only the applied version's programs stay pinned
    assert [p.name for p in (node.pin_root / "progs").iterdir()] == [r3.digest]

    # Back to v1: the client's egress policy is gone, and with it the rule that allowed the
    # client's side of a 9090 connection. The connection is kept (conntrack), counted
    # under the loader's stale verdict; new 9090 connections are refused again.
    stream9090 = topo.stream("client", "server", 9090)
    r1 = node.apply(outs["v1"])
    assert r1.maps["netcc_ct"]["plan"] == "migrate"
    for s in (stream.rounds_after(0.3), stream9090.ask("ping")):
        assert s["alive"] and s["error"] is None, s
    assert topo.connect("client", "server", 9090) == "timeout"
    assert topo.connect("client", "server", 8080) == "ok"
    st = node.status()
    stale = [c for c in st["counters"] if c["name"] == migrate.STALE_NAME]
    assert stale and stale[0]["action"] == "allow" and stale[0]["packets"] > 0, st["counters"]


@pytest.mark.parametrize("target", ["v2", "v3"])  # maps synced in place / maps migrated
def test_failed_swap_rolls_back_to_the_old_programs(
    mode: str,
    target: str,
    topo: Topology,
    node: Node,
    outs: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    node.apply(outs["v1"])
    old = node.status()
    stream = topo.stream("client", "server", 8080)
    real_replace, calls = attach.replace, []

    def flaky_replace(*args: object, **kwargs: object) -> None:
        calls.append(args)
        if len(calls) == 3:  # two hooks already run the new programs
            raise OSError("injected failure")
        real_replace(*args, **kwargs)

    monkeypatch.setattr(attach, "replace", flaky_replace)
    with pytest.raises(ApplyError) as e:
        node.apply(outs[target])
    assert "injected failure" in str(e.value) and e.value.rolled_back
    assert "previous datapath restored" in str(e.value)
    monkeypatch.undo()

    st = node.status()
    assert st["ok"], st["problems"]
    assert st["digest"] == old["digest"]
    assert hook_ids(st) == hook_ids(old)
    assert [p.name for p in (node.pin_root / "progs").iterdir()] == [old["digest"]]
    assert not (node.pin_root / "next").exists()
    assert topo.connect("client", "server", 8080) == "ok"
    assert topo.connect("client", "server", 9090) == "timeout"
    s = stream.rounds_after(0.1)
    assert s["alive"] and s["error"] is None, s
    # and the update goes through once nothing fails
    assert node.apply(outs[target]).status == "updated"
    assert topo.connect("client", "server", 9090) == "ok"


def test_no_moment_without_enforcement(
    mode: str,
    topo: Topology,
    node: Node,
    outs: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """New connections to a denied port, back to back, while the programs are swapped four
    times (two of them migrating conntrack): not one gets through. Right after every hook is
    swapped, while the apply is still under way, the test waits until the prober has failed
    once more, so probes provably run between the swaps, however fast or slow the machine."""
    node.apply(outs["v1"])
    probe = topo.probe("client", "server", 9090)
    while probe.ask("ping")["failed"] < 4:
        time.sleep(0.05)
    swaps = []
    real_replace = attach.replace

    def replace_then_probe(*args, **kwargs):
        real_replace(*args, **kwargs)
        seen = probe.ask("ping")["failed"]
        deadline = time.monotonic() + 60
        while (counts := probe.ask("ping"))["failed"] <= seen:
            assert time.monotonic() < deadline, f"the prober stopped: {counts}"
            time.sleep(0.01)
        swaps.append(counts)

    monkeypatch.setattr(attach, "replace", replace_then_probe)
    for out in ("ct", "v1", "ct", "v1"):
        assert node.apply(outs[out]).status == "updated"
    counts = probe.ask("ping")
    assert counts["ok"] == 0, counts
    assert len(swaps) == 4 * 4  # every hook of the two pods, at each of the four updates


def test_object_refused_by_the_verifier_changes_nothing(
    mode: str, topo: Topology, node: Node, outs: dict[str, Path]
) -> None:
    assert node.cli_apply(outs["v1"]).returncode == 0
    old = node.status()
    proc = node.cli_apply(outs["bad"])
    assert proc.returncode == 1
    assert "kernel refused" in proc.stderr and "nothing was changed" in proc.stderr
    assert "invalid access to packet" in proc.stderr  # the verifier's log is printed
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False and "processed" in doc["log"]
    st = node.status()
    assert st["ok"] and st["digest"] == old["digest"] and hook_ids(st) == hook_ids(old)
    assert not (node.pin_root / "next").exists()
    assert topo.connect("client", "server", 8080) == "ok"
    assert topo.connect("client", "server", 9090) == "timeout"


def test_conntrack_capacity_change_is_migrated(
    topo: Topology, node: Node, outs: dict[str, Path]
) -> None:
    node.apply(outs["v1"])
    stream = topo.stream("client", "server", 8080)
    r = node.apply(outs["ct"])
    ct = r.maps["netcc_ct"]
    assert ct["plan"] == "migrate" and "max_entries 262144 -> 4096" in ct["why"]
    assert ct["migrated"]["copied"] >= 2
    fd = libbpf.obj_get(node.pin_root / "maps" / "netcc_ct")
    try:
        assert libbpf.map_info(fd)["max_entries"] == 4096
    finally:
        os.close(fd)
    s = stream.rounds_after(0.3)
    assert s["alive"] and s["error"] is None, s
    assert node.status()["ok"]
    # back to the original size: migrated again, still alive
    assert node.apply(outs["v1"]).maps["netcc_ct"]["plan"] == "migrate"
    s = stream.rounds_after(0.2)
    assert s["alive"] and s["error"] is None, s
