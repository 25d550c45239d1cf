"""The node daemon's flow reader on real ring buffers: examples/pods.yaml loaded per node
(`KernelCluster`), each node's `netcc_events` and `netcc_event_budget` pinned where an apply
pins them, packets run through the programs, and the reader (`netcc.loader.daemon.flows`)
turning what the kernel wrote into named records: both pods, the rule or the default deny in
`netcc why`'s words, the wall clock time; a ring pinned anew after an apply; losses under a
flood reported as a lost record; the whole service answering on its socket.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path
from types import SimpleNamespace

import pytest
from kernelenv import compile_to

from netcc.contract.events import BUDGET_MAP, EVENT_BURST, EVENTS_MAP
from netcc.loader import libbpf
from netcc.loader.cni.ipam import Owner
from netcc.loader.daemon import flows as daemon_flows
from netcc.loader.daemon.flows import Catalog, FlowReader, FlowService, History, PodTable
from netcc.loader.kernel_cluster import KernelCluster

REPO = Path(__file__).resolve().parents[2]
WEB, API, PROM = "10.244.1.33", "10.244.2.209", "10.244.3.49"  # one pod of each class
RUNTIME = {WEB: "node-1", API: "node-2", PROM: "node-3"}
OWNERS = {
    WEB: Owner("a" * 64, "eth0", "shop", "web-7c9", "shop/web"),
    API: Owner("b" * 64, "eth0", "shop", "api-5d8", "shop/api"),
    PROM: Owner("c" * 64, "eth0", "monitoring", "prom-0", "monitoring/prometheus"),
}
WAIT = 30.0


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    spec = (REPO / "examples" / "pods.yaml").read_bytes()
    return compile_to(spec, tmp_path_factory.mktemp("pods") / "out")


@pytest.fixture
def cluster(out: Path) -> Iterator[tuple[KernelCluster, Path]]:
    """Every node's datapath, its event maps pinned under NODE/maps in a bpffs directory of
    this test (removed whatever happens)."""
    pins = Path(f"/sys/fs/bpf/netcc-test-flows-{os.getpid()}")
    try:
        with KernelCluster(out, RUNTIME) as k:
            for node, dp in k.nodes.items():
                (pins / node / "maps").mkdir(parents=True)
                for name in (EVENTS_MAP, BUDGET_MAP):
                    libbpf.obj_pin(dp.obj.map_fd(name), pins / node / "maps" / name)
            yield k, pins
    finally:
        shutil.rmtree(pins, ignore_errors=True)  # unlinking a pin drops its reference


def reader(out: Path, pins: Path, node: str, history: History) -> FlowReader:
    catalog = Catalog.of_out(out, node, "digest")
    local = {IPv4Address(ip): o for ip, o in OWNERS.items() if RUNTIME[ip] == node}
    return FlowReader(node, pins / node / "maps", lambda: catalog, PodTable(lambda: local), history)


def flows_of(history: History) -> list[dict]:
    return [r for r in history.last(10_000, daemon_flows.flows.Filter()) if r["type"] == "flow"]


def test_records_name_both_pods_and_the_rule(cluster, out):
    k, pins = cluster
    h1, h2 = History(), History()
    r1, r2 = reader(out, pins, "node-1", h1), reader(out, pins, "node-2", h2)
    try:
        before = time.time()
        assert k.allows(WEB, API, 6, 41000, 9000)  # allowed: api takes web on 9000
        assert not k.allows(WEB, API, 6, 41001, 8080)  # web's egress passes, api's ingress drops
        for r in (r1, r2):
            r.cycle()
        egress = flows_of(h1)
        ingress = flows_of(h2)
    finally:
        r1.release()
        r2.release()
    assert [(r["direction"], r["verdict"]) for r in egress] == [
        ("egress", "forwarded"),
        ("egress", "forwarded"),
    ]
    assert egress[0]["source"]["pod"] == "shop/web-7c9"
    assert egress[0]["destination"] == {
        "ip": API,
        "port": 9000,
        "kind": "class",
        "class": "shop/api",
        "namespace": "shop",
        "node": "node-2",
    }
    assert egress[0]["reason"] == "not isolated: no policy selects shop/web for egress"
    allowed, dropped = ingress
    assert allowed["kind"] == "new" and allowed["destination"]["pod"] == "shop/api-5d8"
    assert allowed["source"]["class"] == "shop/web" and allowed["source"]["node"] == "node-1"
    assert allowed["policy"] == {
        "policy": "shop/api-from-web",
        "direction": "ingress",
        "index": 0,
        "path": "spec.policies[2].spec.ingress[0]",
    }
    assert allowed["reason"] == "allowed by shop/api-from-web ingress[0]"
    assert dropped["kind"] == "drop" and dropped["verdict"] == "dropped"
    assert dropped["deny"]["pod"] == "shop/api" and dropped["deny"]["direction"] == "ingress"
    assert dropped["reason"] == "default deny: shop/api is isolated for ingress and no rule matches"
    assert (dropped["source"]["port"], dropped["destination"]["port"]) == (41001, 8080)
    assert dropped["tcpFlags"] == "SYN" and dropped["protocol"] == "TCP"
    # the kernel's monotonic time made wall time (a generous bound: never judged by speed)
    when = daemon_flows.flows.parse_time(dropped["time"]).timestamp()
    assert before - 5 <= when <= time.time() + 5


def test_a_ring_pinned_anew_is_read_after_what_the_old_one_held(cluster, out, monkeypatch):
    k, pins = cluster
    monkeypatch.setattr(daemon_flows, "PIN_CHECK", 0.0)
    h = History()
    r = reader(out, pins, "node-1", h)
    try:
        r.cycle()
        first = r.ring_id
        assert not k.allows(PROM, WEB, 17, 5000, 8080)  # node-3's ring: prometheus' egress
        assert k.allows(WEB, "10.244.3.10", 6, 41002, 5432) is False  # node-1's, then node-3's
        # an apply pinned another ring at the path (here: node-3's)
        ring = pins / "node-1" / "maps" / EVENTS_MAP
        ring.unlink()
        libbpf.obj_pin(k.nodes["node-3"].obj.map_fd(EVENTS_MAP), ring)
        r.cycle()
        assert r.ring_id != first
        got = flows_of(h)
    finally:
        r.release()
    # node-1's event first (it was in the old ring), then what node-3's ring holds
    assert got[0]["source"]["pod"] == "shop/web-7c9" and got[0]["direction"] == "egress"
    assert {(x["source"]["ip"], x["direction"]) for x in got[1:]} >= {(PROM, "egress")}


def test_a_flood_is_reported_as_lost_events(cluster, out):
    k, pins = cluster
    h = History()
    r = reader(out, pins, "node-3", h)
    dp = k.nodes["node-3"]
    try:
        r.cycle()  # opened: earlier losses are not news
        runs = EVENT_BURST * 3
        pkt = k.packet(PROM, WEB, 17, 5001, 8080)
        res = libbpf.prog_test_run(dp.prog_fd("netcc_from_container"), pkt, repeat=runs)
        assert res.retval == 2  # every packet dropped
        deadline = time.monotonic() + WAIT
        while len(flows_of(h)) + _lost(h) < runs and time.monotonic() < deadline:
            r.cycle()
    finally:
        r.release()
    drops = flows_of(h)
    assert all(d["deny"]["pod"] == "monitoring/prometheus" for d in drops)
    assert _lost(h) > 0 and len(drops) + _lost(h) == runs
    lost = [x for x in h.last(10_000, daemon_flows.flows.Filter()) if x["type"] == "lost"]
    assert all(x["node"] == "node-3" and x["lostRing"] == 0 for x in lost)


def _lost(h: History) -> int:
    return sum(
        x["lostBudget"] + x["lostRing"]
        for x in h.last(10_000, daemon_flows.flows.Filter())
        if x["type"] == "lost"
    )


def test_the_service_serves_what_the_kernel_wrote(cluster, out, tmp_path):
    k, pins = cluster
    view = SimpleNamespace(out=out, digest="digest", node="node-2")
    local = {IPv4Address(API): OWNERS[API]}
    service = FlowService(
        "node-2", pins / "node-2" / "maps", tmp_path / "f.sock", lambda: view, lambda: local
    )
    service.start()
    try:
        deadline = time.monotonic() + WAIT
        while service.reader.ring_id is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not k.allows(PROM, API, 6, 41003, 9000)  # prometheus' egress: dropped on node-3
        assert not k.allows(WEB, API, 6, 41004, 9999)  # api's ingress: dropped on node-2
        got: list[dict] = []
        while not got and time.monotonic() < deadline:
            got = _ask(tmp_path / "f.sock", {"last": 10, "filter": {"verdict": ["dropped"]}})
            got = [g for g in got if g["type"] == "flow"]
            time.sleep(0.05)
    finally:
        service.stop()
    assert not (tmp_path / "f.sock").exists()
    (drop,) = got
    assert drop["destination"]["pod"] == "shop/api-5d8" and drop["source"]["port"] == 41004


def _ask(path: Path, request: dict) -> list[dict]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(WAIT)
        s.connect(str(path))
        s.sendall(json.dumps(request).encode() + b"\n")
        with s.makefile("rb") as f:
            return [json.loads(line) for line in f]
