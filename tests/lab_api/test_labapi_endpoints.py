"""netcc.lab.endpoints: the lab's runtime pods as EndpointSlices of OUT's dynamic services."""

from __future__ import annotations

import random

import pytest
from labapi_docs import pod, pods, services_bytes

from netcc.contract.services import load
from netcc.lab import endpoints
from netcc.lab.endpoints import slices

SERVICES = load(services_bytes())


def of(service: str, out: list[dict]) -> list[dict]:
    ns, name = service.split("/")
    return [
        s
        for s in out
        if s["metadata"]["namespace"] == ns
        and s["metadata"]["labels"][endpoints.SERVICE_NAME] == name
    ]


def addresses(s: dict) -> list[str]:
    return [e["addresses"][0] for e in s["endpoints"]]


def test_no_services_no_slices():
    assert slices(None, pods(pod("a", "10.1.0.32"))) == []


def test_a_service_without_endpoints_has_one_empty_slice():
    out = slices(SERVICES, {}, "7")
    assert [s["metadata"]["namespace"] for s in out] == ["shop", "shop"]
    for s in out:
        assert s["endpoints"] == [] and s["ports"] == []
        assert s["apiVersion"] == "discovery.k8s.io/v1" and s["kind"] == "EndpointSlice"
        assert s["addressType"] == "IPv4"
        assert s["metadata"]["resourceVersion"] == "7"
        assert s["metadata"]["labels"][endpoints.MANAGED_BY] == "netcc-lab"
    assert {s["metadata"]["labels"][endpoints.SERVICE_NAME] for s in out} == {"web", "db"}


def test_the_slice_of_a_pod():
    [s] = of("shop/db", slices(SERVICES, pods(pod("db-1", "10.1.1.64", app="db", node="n2"))))
    assert s["metadata"]["name"].startswith("db-")
    assert s["endpoints"] == [
        {
            "addresses": ["10.1.1.64"],
            "conditions": {"ready": True, "serving": True, "terminating": False},
            "nodeName": "n2",
            "targetRef": {"kind": "Pod", "namespace": "shop", "name": "db-1", "uid": "uid-db-1"},
        }
    ]
    assert s["ports"] == [{"name": "", "port": 5432, "protocol": "TCP"}]


def test_selection_namespace_labels_and_address():
    listed = pods(
        pod("web-1", "10.1.0.33"),
        pod("other-ns", "10.1.0.34", namespace="shop2"),
        pod("other-app", "10.1.0.35", app="cart"),
        pod("no-ip", None),
        pod("bad-ip", "not-an-ip"),
        {**pod("int-ip", None), "ip": 167837729},
    )
    [s] = of("shop/web", slices(SERVICES, listed))
    assert addresses(s) == ["10.1.0.33"]


def test_not_ready_pods_are_published_not_ready():
    out = of(
        "shop/web", slices(SERVICES, pods(pod("a", "10.1.0.33"), pod("b", "10.1.0.34", False)))
    )
    [s] = out
    cond = {e["targetRef"]["name"]: e["conditions"] for e in s["endpoints"]}
    assert cond["a"] == {"ready": True, "serving": True, "terminating": False}
    assert cond["b"] == {"ready": False, "serving": False, "terminating": False}


def test_pods_whose_ports_differ_go_in_different_slices():
    listed = pods(
        pod("web-1", "10.1.0.33"),
        pod("web-2", "10.1.1.40", node="n2"),
        pod("canary-1", "10.1.0.50"),
    )
    out = of("shop/web", slices(SERVICES, listed))
    by_ports = {tuple((p["name"], p["port"]) for p in s["ports"]): addresses(s) for s in out}
    assert by_ports == {
        (("http", 8080), ("metrics", 9100)): ["10.1.0.33", "10.1.1.40"],
        (("http", 9090),): ["10.1.0.50"],  # the canary class serves no metrics
    }
    assert len({s["metadata"]["name"] for s in out}) == 2


def test_addresses_outside_every_class_block_are_no_endpoints():
    listed = pods(
        pod("in-block", "10.1.0.47"),
        pod("below", "10.1.0.31"),  # offset 31: before the web block
        pod("elsewhere", "10.9.0.40"),  # no node's podCIDR
        pod("db-block", "10.1.0.64"),  # a web pod in the db class's block
    )
    [s] = of("shop/web", slices(SERVICES, listed))
    assert addresses(s) == ["10.1.0.47"]


def test_output_is_deterministic_and_names_are_stable():
    records = [pod(f"p{i}", f"10.1.{i % 2}.{32 + i}", i % 3 == 0) for i in range(12)]
    want = slices(SERVICES, pods(*records), "3")
    for seed in range(5):
        shuffled = records[:]
        random.Random(seed).shuffle(shuffled)
        assert slices(SERVICES, pods(*shuffled), "3") == want
    names = {s["metadata"]["name"] for s in want}
    fewer = slices(SERVICES, pods(*records[:3]), "4")  # same port sets, fewer endpoints
    assert {s["metadata"]["name"] for s in fewer} == names
    assert want == sorted(want, key=lambda s: (s["metadata"]["namespace"], s["metadata"]["name"]))
    for s in want:
        ips = [tuple(int(x) for x in a.split(".")) for a in addresses(s)]
        assert ips == sorted(ips)


def test_many_endpoints_are_split_in_chunks(monkeypatch):
    monkeypatch.setattr(endpoints, "MAX_ENDPOINTS", 2)
    out = of(
        "shop/web", slices(SERVICES, pods(*(pod(f"p{i}", f"10.1.0.{33 + i}") for i in range(5))))
    )
    assert sorted(len(s["endpoints"]) for s in out) == [1, 2, 2]
    assert len({s["metadata"]["name"] for s in out}) == 3
    assert sorted(a for s in out for a in addresses(s)) == [f"10.1.0.{33 + i}" for i in range(5)]


def test_the_daemons_reader_takes_every_slice():
    mod = pytest.importorskip("netcc.loader.kube.endpointslices")
    listed = pods(pod("web-1", "10.1.0.33"), pod("canary", "10.1.0.50", False))
    for s in slices(SERVICES, listed, "9"):
        got = mod.EndpointSlice.from_json(s)
        assert got.resource_version == "9" and got.address_type == "IPv4"
        assert got.service in ("web", "db")


def test_malformed_records_are_no_endpoints():
    listed = {
        "shop/web-1": pod("web-1", "10.1.0.33"),
        "x/a": "not a record",
        "x/b": {"name": "b", "ip": "10.1.0.34", "labels": {"app": "web"}},
        "shop/c": {**pod("c", "10.1.0.35"), "labels": ["app=web"]},
    }
    [s] = of("shop/web", slices(SERVICES, listed))
    assert addresses(s) == ["10.1.0.33"]
