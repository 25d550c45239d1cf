"""How the node daemon names a flow event's ends and verdict, from a compiled OUT and the node's
CNI state (`netcc.loader.daemon.flows`), without a kernel: decoded events in, records out.
"""

from __future__ import annotations

import json
import time
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from netcc.contract import flows
from netcc.loader.cni.ipam import Owner
from netcc.loader.daemon import flows as daemon_flows
from netcc.loader.daemon.flows import Catalog, Names, PodTable, describe, make_record
from netcc.pipeline import compile_spec
from netcc.write.tree import write_tree

REPO = Path(__file__).resolve().parents[2]
WEB_1 = "10.244.1.33"  # a shop/web pod on node-1 (its block: 10.244.1.32/28)


@pytest.fixture(scope="module")
def outs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("flows-outs")
    found = {}
    for name in ("pods", "shop"):
        spec = (REPO / "examples" / f"{name}.yaml").read_bytes()
        write_tree(compile_spec(spec, f"{name}.yaml"), root / name)
        found[name] = root / name
    return found


def owner(ns: str, name: str, klass: str) -> Owner:
    return Owner("c" * 64, "eth0", ns, name, klass)


def pods_of(table: dict[str, Owner | None]):
    calls = []

    def read():
        calls.append(time.monotonic())
        return {IPv4Address(ip): o for ip, o in table.items()}

    return read, calls


def verdict(out: Path, **match) -> int:
    doc = json.loads((out / "verdicts.json").read_text())["verdicts"]
    return next(v["number"] for v in doc if all(v.get(k) == x for k, x in match.items()))


def event(**fields):
    base = dict(
        time_ns=5_000_000_000,
        verdict=1,
        ifindex=9,
        saddr=WEB_1,
        daddr="10.244.2.208",
        sport=41234,
        dport=9000,
        svc_addr="0.0.0.0",
        svc_port=0,
        proto=6,
        dir=2,
        kind=1,
        tcp_flags=2,
        len=60,
    )
    return base | fields


def test_every_kind_of_address_on_a_node_with_classes(outs):
    names = Names.of_out(outs["pods"], "node-1")
    read, _ = pods_of({WEB_1: owner("shop", "web-7c9", "shop/web")})
    pods = PodTable(read)
    got = {
        ip: describe(ip, 80, names, pods)
        for ip in (
            WEB_1,
            "10.244.1.34",
            "10.244.2.208",
            "10.244.3.49",
            "10.244.3.10",
            "192.168.77.12",
            "10.244.1.1",
            "10.96.0.11",
            "203.0.113.9",
            "0.0.0.0",
        )
    }
    assert got[WEB_1] == {
        "ip": WEB_1,
        "port": 80,
        "kind": "pod",
        "pod": "shop/web-7c9",
        "class": "shop/web",
        "namespace": "shop",
        "node": "node-1",
    }
    # an address of this node's web block that no pod holds: its class, here
    assert got["10.244.1.34"]["kind"] == "class" and got["10.244.1.34"]["node"] == "node-1"
    assert got["10.244.2.208"] == {
        "ip": "10.244.2.208",
        "port": 80,
        "kind": "class",
        "class": "shop/api",
        "namespace": "shop",
        "node": "node-2",
    }
    assert got["10.244.3.49"]["class"] == "monitoring/prometheus"
    assert got["10.244.3.10"] == {
        "ip": "10.244.3.10",
        "port": 80,
        "kind": "workload",
        "workload": "shop/db",
        "namespace": "shop",
        "node": "node-3",
    }
    assert got["192.168.77.12"] == {
        "ip": "192.168.77.12",
        "port": 80,
        "kind": "node",
        "node": "node-2",
    }
    assert got["10.244.1.1"]["kind"] == "node" and got["10.244.1.1"]["router"] is True
    assert got["10.244.1.1"]["node"] == "node-1"
    assert got["10.96.0.11"]["kind"] == "service" and got["10.96.0.11"]["service"] == "shop/api"
    assert got["203.0.113.9"]["kind"] == "world"
    assert got["0.0.0.0"]["kind"] == "unknown"


def test_static_workloads_and_nodes_without_classes(outs):
    names = Names.of_out(outs["shop"], "node-2")
    pods = PodTable(lambda: {})
    cache = describe("10.244.2.11", 6379, names, pods)
    assert (cache["kind"], cache["workload"], cache["node"]) == ("workload", "shop/cache", "node-2")
    assert describe("192.168.77.11", 0, names, pods)["node"] == "node-1"
    assert describe("10.244.2.1", 0, names, pods)["router"] is True
    assert describe("10.96.0.20", 7000, names, pods)["service"] == "shop/cart"
    assert names.blocks == []


def test_records_from_decoded_events(outs):
    out = outs["pods"]
    catalog = Catalog.of_out(out, "node-2", "digest")
    api = "10.244.2.208"
    read, _ = pods_of({api: owner("shop", "api-5d8", "shop/api")})
    pods = PodTable(read)
    deny = verdict(out, pod="shop/api", direction="ingress")
    offset = 1733608200_000_000_000 - 5_000_000_000
    r = make_record(
        event(daddr=api, dir=1, kind=2, verdict=deny, dport=8080), catalog, pods, offset
    )
    assert r["time"] == "2024-12-07T21:50:00.000000000Z"
    assert r["node"] == "node-2" and r["verdict"] == "dropped" and r["direction"] == "ingress"
    assert r["source"]["kind"] == "class" and r["source"]["class"] == "shop/web"
    assert r["destination"]["pod"] == "shop/api-5d8"
    assert r["deny"] == {"pod": "shop/api", "direction": "ingress", "path": "spec.workloads[1]"}
    assert r["reason"] == "default deny: shop/api is isolated for ingress and no rule matches"
    rule = verdict(out, policy="shop/api-from-web", index=0)
    r = make_record(event(daddr=api, dir=1, verdict=rule), catalog, pods, 0)
    assert r["policy"]["path"] == "spec.policies[2].spec.ingress[0]"
    assert r["reason"] == "allowed by shop/api-from-web ingress[0]"
    # a pod of this node reaching a cluster IP, and a nodePort through another node's address
    svc = make_record(
        event(saddr=api, daddr=WEB_1, dport=8080, svc_addr="10.96.0.10", svc_port=80, verdict=2),
        catalog,
        pods,
        0,
    )
    assert svc["service"] == {"name": "shop/web", "ip": "10.96.0.10", "port": 80}
    assert svc["reason"] == "not isolated: no policy selects shop/api for egress"
    nodeport = make_record(
        event(saddr=api, daddr="10.244.3.40", dport=8080, svc_addr="192.168.77.11", svc_port=30080),
        catalog,
        pods,
        0,
    )
    assert nodeport["service"]["name"] == "shop/web"
    # at node-2's uplink: an outside client's NodePort flow, translated
    uplink = make_record(
        event(
            saddr="192.0.2.7",
            daddr="10.244.1.40",
            dport=8080,
            svc_addr="192.168.77.12",
            svc_port=30080,
            dir=3,
            kind=3,
            verdict=7,
        ),
        catalog,
        pods,
        0,
    )
    assert uplink["direction"] == "uplink" and uplink["kind"] == "nodeport"
    assert uplink["service"]["name"] == "shop/web" and uplink["source"]["kind"] == "world"
    assert uplink["reserved"]["name"] == "ALLOW_NODEPORT"
    assert "uplink FORWARDED (NodePort flow translated" in flows.format_line(uplink)


def test_the_pod_table_is_read_again_for_an_unknown_pod_of_this_node(outs, monkeypatch):
    names = Names.of_out(outs["pods"], "node-1")
    table: dict[str, Owner | None] = {}
    read, calls = pods_of(table)
    pods = PodTable(read)
    monkeypatch.setattr(daemon_flows, "POD_RETRY", 0.0)
    monkeypatch.setattr(daemon_flows, "POD_TTL", 3600.0)
    assert describe(WEB_1, 1, names, pods)["kind"] == "class"
    table[WEB_1] = owner("shop", "web-new", "shop/web")  # a pod added since
    assert describe(WEB_1, 1, names, pods)["pod"] == "shop/web-new"
    n = len(calls)
    describe("10.244.2.208", 1, names, pods)  # another node's: no reason to read again
    describe("203.0.113.9", 1, names, pods)
    assert len(calls) == n
    assert pods.table("node-1") == {
        WEB_1: {"pod": "shop/web-new", "class": "shop/web", "node": "node-1"}
    }


def test_a_damaged_address_record_names_no_pod(outs):
    names = Names.of_out(outs["pods"], "node-1")
    pods = PodTable(lambda: {IPv4Address(WEB_1): None})
    assert describe(WEB_1, 1, names, pods)["kind"] == "class"
    assert pods.table("node-1") == {}
