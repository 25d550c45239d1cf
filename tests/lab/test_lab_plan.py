"""The lab's plan (names, addresses, inventory): pure, no root needed."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from labspecs import EXTERNALS, NODES, PODS, SPEC_NO_POLICY

from netcc.frontend import parse_spec
from netcc.lab.plan import (
    LabPlanError,
    host_veth_name,
    plan_from_doc,
    plan_lab,
    plan_to_doc,
    resolve_endpoint,
)


@pytest.fixture(scope="module")
def cluster():
    return parse_spec(SPEC_NO_POLICY, "lab.yaml")[0]


def test_names_are_prefixed_and_short(cluster):
    plan = plan_lab(cluster, EXTERNALS)
    assert all(n.startswith("netcc-") for n in plan.namespaces())
    assert len(set(plan.namespaces())) == len(plan.namespaces()) == 1 + 3 + 1 + 9
    assert [n.netns for n in plan.nodes] == ["netcc-node-1", "netcc-node-2", "netcc-node-3"]
    for p in plan.pods:
        assert p.veth.startswith("lxc") and len(p.veth) == 11 <= 15
    assert len({p.veth for p in plan.pods}) == 9
    assert host_veth_name("shop/frontend") == host_veth_name("shop/frontend")


def test_inventory_shape(cluster):
    inv = plan_lab(cluster, EXTERNALS).inventory()
    assert set(inv) == {"nodes", "workloads", "external"}
    assert inv["nodes"]["node-1"] == {"netns": "netcc-node-1", "address": "192.168.77.11"}
    assert inv["workloads"]["shop/frontend"] == {
        "netns": "netcc-pod-shop.frontend",
        "node": "node-1",
        "ips": ["10.244.1.10"],
    }
    assert set(inv["workloads"]) == set(PODS) and set(inv["nodes"]) == set(NODES)
    assert inv["external"] == {"netns": "netcc-external", "ips": list(EXTERNALS)}
    assert "external" not in plan_lab(cluster).inventory()


def test_plan_round_trips_through_the_state_file(cluster):
    plan = plan_lab(cluster, EXTERNALS)
    assert plan_from_doc(plan_to_doc(plan)) == plan


@pytest.mark.parametrize(
    ("ip", "why"),
    [
        ("10.244.1.77", "pod CIDR"),
        ("192.168.77.12", "node's address"),
        ("10.244.1.1", "pod CIDR"),
        ("2001:db8::1", "IPv4 only"),
        ("127.0.0.1", "unicast"),
        ("nonsense", "not an IP"),
    ],
)
def test_bad_external_addresses(cluster, ip, why):
    with pytest.raises(LabPlanError, match=why):
        plan_lab(cluster, [ip])


def test_duplicate_external(cluster):
    with pytest.raises(LabPlanError, match="twice"):
        plan_lab(cluster, ["192.0.2.10", "192.0.2.10"])


def test_resolve_endpoints(cluster):
    plan = plan_lab(cluster, EXTERNALS)
    e = resolve_endpoint(plan, "shop/cart")
    assert (e.kind, e.netns, e.ip) == ("pod", "netcc-pod-shop.cart", IPv4Address("10.244.2.10"))
    e = resolve_endpoint(plan, "node-3")
    assert (e.kind, e.netns, e.ip) == ("node", "netcc-node-3", IPv4Address("192.168.77.13"))
    e = resolve_endpoint(plan, "203.0.113.5")
    assert (e.kind, e.netns) == ("external", "netcc-external")
    assert resolve_endpoint(plan, "10.244.3.20").name == "monitoring/prometheus"
    for bad in ("shop/nope", "node-9", "198.51.100.1"):
        with pytest.raises(LabPlanError):
            resolve_endpoint(plan, bad)


def test_node_names_that_would_collide(cluster):
    """A node called `underlay` cannot take `netcc-underlay`."""
    from dataclasses import replace

    odd = replace(cluster, nodes=(replace(cluster.nodes[0], name="underlay"), *cluster.nodes[1:]))
    plan = plan_lab(odd)
    assert plan.nodes[0].netns == "netcc-node-underlay"
    assert len(set(plan.namespaces())) == len(plan.namespaces())
