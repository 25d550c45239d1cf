"""The node daemon under parallel pod starts and stops, as a runtime with parallel pod
operations drives it: many CNI ADDs at once through the real shim, CHECKs and a GC among
them, then the DELs at once. Every pod gets a distinct address of its class's block, with its
interface, endpoint entry and hooks; a full block refuses exactly the overflow (error 101)
and keeps nothing of it; after the DELs nothing is left. Every verdict is a state, never a
duration."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest
from daemon_node import DaemonNode

from netcc.lab.cniruntime import Attachment, CniRuntimeError
from netcc.loader.daemon.podnet import host_name
from netcc.loader.daemon.run import FULL_APPLY_ENV

BLOCKS = {"web": IPv4Network("10.244.1.16/28"), "db": IPv4Network("10.244.1.32/29")}
PODS = {"web": 14, "db": 10}  # 24 pods: web fits its block, db overflows by two
THREADS = 8


@pytest.fixture(params=["incremental", "full-apply"])
def node(
    request: pytest.FixtureRequest, outs: dict[str, Path], shim: Path, tmp_path: Path
) -> Iterator[DaemonNode]:
    """A node running the daemon on v1: pod changes incremental (`fastpath`), or each one a
    full apply (`NETCC_DAEMON_FULL_APPLY=1`)."""
    link = tmp_path / "out"
    link.symlink_to(outs["v1"])
    n = DaemonNode(link, shim)
    if request.param == "full-apply":
        n.extra_env[FULL_APPLY_ENV] = "1"
    try:
        yield n.create()
    finally:
        print(n.logs())  # shown for a failing test
        n.remove()


def _bound(node: DaemonNode) -> dict[str, str]:
    """pod address -> host interface, as `netcc load status` finds them bound (exit 0)."""
    code, doc = node.status()
    (n,) = doc["nodes"]
    assert code == 0, n["problems"]
    return {p["ip"]: i["ifname"] for i in n["interfaces"] for p in i["pods"]}


def _endpoint_keys(node: DaemonNode) -> set[str]:
    """The keys of the pinned `netcc_endpoints`, as bpftool dumps them."""
    (pin,) = node.pins.rglob("netcc_endpoints")
    dump = subprocess.run(
        ["bpftool", "-j", "map", "dump", "pinned", str(pin)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return {json.dumps(e["key"], sort_keys=True) for e in json.loads(dump)}


def _routes(node: DaemonNode) -> list[str]:
    """The node's routes into the class blocks (one per pod, `ip` prints a /32 bare)."""
    out = subprocess.run(
        ["nsenter", f"--net=/run/netns/{node.netns}", "ip", "-j", "-4", "route", "show"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return sorted(
        r["dst"]
        for r in json.loads(out)
        if r["dst"] != "default"
        and any(IPv4Network(r["dst"]).subnet_of(b) for b in BLOCKS.values())
    )


def _at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run every call from THREADS threads; each one's return value or its exception."""

    def run(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except Exception as e:  # returned: each outcome is checked by the test
            return e

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(run, calls))


def _ip(result: dict[str, Any]) -> IPv4Address:
    (ip,) = result["ips"]
    return IPv4Address(ip["address"].split("/")[0])


def test_parallel_adds_checks_gc_and_dels(node: DaemonNode) -> None:
    endpoints_before = _endpoint_keys(node)
    pods: list[tuple[str, Attachment]] = []
    for app, count in PODS.items():  # interleaved, so both classes are added at once
        pods += [(app, node.pod(f"shop/{app}-{i}", {"app": app})) for i in range(count)]
    pods.sort(key=lambda p: p[1].container_id)
    atts = [att for _, att in pods]

    # -- ADDs at once, with a GC among them that lists every attachment (in flight too)
    calls: list[Callable[[], Any]] = [lambda a=att: node.add(a) for att in atts]
    calls.insert(len(calls) // 2, lambda: node.gc(atts))
    outcomes = _at_once(calls)
    gc = outcomes.pop(len(calls) // 2)
    assert gc.returncode == 0, gc.stdout + gc.stderr

    added: dict[str, tuple[str, Attachment, dict[str, Any]]] = {}  # address -> what holds it
    refused: list[tuple[str, Attachment, CniRuntimeError]] = []
    for (app, att), got in zip(pods, outcomes, strict=True):
        if isinstance(got, CniRuntimeError):
            refused.append((app, att, got))
            continue
        assert isinstance(got, dict), f"{att.args['K8S_POD_NAME']}: {got!r}\n{node.logs()}"
        ip = _ip(got)
        assert str(ip) not in added, f"{ip} handed out twice"
        assert ip in BLOCKS[app]
        added[str(ip)] = (app, att, got)

    for app, count in PODS.items():
        got = sum(1 for a, _, _ in added.values() if a == app)
        assert got == min(count, BLOCKS[app].num_addresses), f"{app}: {got} of {count}"
    assert {app for app, _, _ in refused} == {"db"}
    assert len(refused) == PODS["db"] - BLOCKS["db"].num_addresses
    for _, att, e in refused:
        assert e.code == 101 and "full" in e.msg, e
        assert node.pod_addresses(att) == []
        assert node.runtime.cached(node.conflist(), att) is None
    assert {IPv4Address(ip) for ip, (a, _, _) in added.items() if a == "db"} == set(BLOCKS["db"])

    # -- every pod: its address inside the pod, its record, its veth, its endpoint and hooks
    records = node.allocations()
    assert sorted(map(str, records)) == sorted(added)
    bound = _bound(node)
    assert set(bound) == set(added)
    for ip, (app, att, result) in added.items():
        owner = records[IPv4Address(ip)]
        assert owner is not None and owner.key == (att.container_id, att.ifname)
        assert owner.klass == f"shop/{app}"
        assert node.pod_addresses(att) == [ip]
        assert bound[ip] == result["interfaces"][0]["name"] == host_name(att.container_id)
    assert sorted(node.host_links()) == sorted(bound.values())
    assert _routes(node) == sorted(added)
    endpoints = _endpoint_keys(node)
    assert endpoints >= endpoints_before
    assert len(endpoints - endpoints_before) == len(added)

    # -- CHECKs at once, with a GC among them that keeps every pod
    live = [att for _, att, _ in added.values()]
    calls = [lambda a=att: node.check(a) for att in live]
    calls.insert(len(calls) // 2, lambda: node.gc(live))
    outcomes = _at_once(calls)
    gc = outcomes.pop(len(calls) // 2)
    assert gc.returncode == 0, gc.stdout + gc.stderr
    assert [o for o in outcomes if o is not None] == []
    assert sorted(map(str, node.allocations())) == sorted(added)

    # -- DELs at once (the refused pods' too: DEL always succeeds), a GC among them
    calls = [lambda a=att: node.delete(a) for att in atts]
    calls.insert(len(calls) // 2, lambda: node.gc([]))
    outcomes = _at_once(calls)
    gc = outcomes.pop(len(calls) // 2)
    assert gc.returncode == 0, gc.stdout + gc.stderr
    assert [o for o in outcomes if o is not None] == []

    assert node.allocations() == {}
    assert node.host_links() == []
    assert _routes(node) == []
    assert _bound(node) == {}
    assert _endpoint_keys(node) == endpoints_before
    for att in atts:
        assert node.pod_addresses(att) == []
    assert node.report()["pods"] == []
    assert all(b["inUse"] == 0 for b in node.report()["blocks"])
