"""Model construction: defaults, ordering, paths and types."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Network

import pytest
from frontend_helpers import SPECS, parse, shop

from netcc.diagnostics import SpecError
from netcc.frontend import INTERNAL_ERROR, parse_spec
from netcc.model.types import Cluster, LabelSelector, Requirement


def policy_doc(**spec_fields: object) -> dict:
    d = shop()
    d["spec"]["policies"] = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "p", "namespace": "shop"},
            "spec": {"podSelector": {}, **spec_fields},
        }
    ]
    return d


def only_policy(**spec_fields: object):
    return parse(policy_doc(**spec_fields)).policies[0]


def test_shop_model() -> None:
    cluster, smap = parse_spec((SPECS / "shop.yaml").read_bytes(), "shop.yaml")
    assert isinstance(cluster, Cluster)
    assert cluster.name == "shop"
    assert cluster.pod_cidr == IPv4Network("10.244.0.0/16")
    assert [n.name for n in cluster.nodes] == ["node-1", "node-2"]
    assert cluster.node("node-2").router_ip == IPv4Address("10.244.2.1")
    assert [w.path for w in cluster.workloads] == [f"spec.workloads[{i}]" for i in range(3)]
    assert cluster.workload_by_ip(IPv4Address("10.244.2.21")).name == "backend"
    assert smap.locate(cluster.policies[1].ingress[0].path) == (118, 13)  # "- from:"


def test_minimal_spec_from_the_docs() -> None:
    cluster, _ = parse_spec((SPECS / "minimal.yaml").read_text(), "minimal.yaml")
    assert cluster.services[0].ports[0].target_port == "http"
    assert cluster.policies[0].ingress[0].peers == ()
    assert cluster.wireguard is not None and cluster.wireguard.listen_port == 51871


@pytest.mark.parametrize(
    ("fields", "types"),
    [
        ({}, ("Ingress",)),
        ({"ingress": [{}]}, ("Ingress",)),
        ({"egress": []}, ("Ingress",)),
        ({"egress": [{}]}, ("Ingress", "Egress")),
        ({"policyTypes": []}, ("Ingress",)),
        ({"policyTypes": ["Egress"]}, ("Egress",)),
        ({"policyTypes": ["Egress", "Ingress"]}, ("Ingress", "Egress")),
        ({"policyTypes": ["Ingress"], "egress": [{}]}, ("Ingress",)),
    ],
)
def test_policy_types_defaulting(fields: dict, types: tuple[str, ...]) -> None:
    assert only_policy(**fields).policy_types == types


def test_rules_keep_index_direction_and_path() -> None:
    p = only_policy(
        ingress=[{}, {"from": []}], egress=[{"ports": [{"port": 53, "protocol": "UDP"}]}]
    )
    assert [(r.direction, r.index, r.path) for r in p.ingress] == [
        ("ingress", 0, "spec.policies[0].spec.ingress[0]"),
        ("ingress", 1, "spec.policies[0].spec.ingress[1]"),
    ]
    assert p.egress[0].path == "spec.policies[0].spec.egress[0]"
    assert p.egress[0].ports[0].protocol == "UDP"
    assert p.path == "spec.policies[0]" and p.key == "shop/p"


def test_empty_and_missing_peer_and_port_lists_are_the_same() -> None:
    p = only_policy(ingress=[{}, {"from": [], "ports": []}])
    assert p.ingress[0].peers == p.ingress[1].peers == ()
    assert p.ingress[0].ports == p.ingress[1].ports == ()


def test_missing_rule_lists() -> None:
    p = only_policy()
    assert p.ingress == () and p.egress == ()


def test_peers() -> None:
    p = only_policy(
        ingress=[
            {
                "from": [
                    {"podSelector": {}},
                    {"namespaceSelector": {"matchLabels": {"b": "2", "a": "1"}}},
                    {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                    {"ipBlock": {"cidr": "fd00::/8"}},
                ]
            }
        ]
    )
    peers = p.ingress[0].peers
    assert peers[0].pod_selector == LabelSelector() and peers[0].namespace_selector is None
    assert peers[1].pod_selector is None
    assert peers[1].namespace_selector.match_labels == (("a", "1"), ("b", "2"))
    assert peers[2].ip_block.cidr == IPv4Network("10.0.0.0/8")
    assert peers[2].ip_block.excepts == (IPv4Network("10.1.0.0/16"),)
    assert isinstance(peers[3].ip_block.cidr, IPv6Network)


def test_selector_requirements() -> None:
    p = only_policy(
        podSelector={
            "matchExpressions": [
                {"key": "app", "operator": "In", "values": ["b", "a", "b"]},
                {"key": "tier", "operator": "DoesNotExist"},
            ]
        }
    )
    assert p.pod_selector.match_expressions == (
        Requirement("app", "In", ("a", "b")),
        Requirement("tier", "DoesNotExist", ()),
    )


def test_policy_ports() -> None:
    p = only_policy(
        ingress=[{"ports": [{}, {"port": "http"}, {"port": 80, "endPort": 90, "protocol": "SCTP"}]}]
    )
    ports = p.ingress[0].ports
    assert (ports[0].protocol, ports[0].port, ports[0].end_port) == ("TCP", None, None)
    assert ports[1].port == "http"
    assert (ports[2].protocol, ports[2].port, ports[2].end_port) == ("SCTP", 80, 90)


def test_namespace_name_label_added() -> None:
    cluster = parse(shop())
    assert cluster.namespace("shop").labels == (
        ("kubernetes.io/metadata.name", "shop"),
        ("team", "shop"),
    )
    assert cluster.namespace("monitoring").labels == (
        ("kubernetes.io/metadata.name", "monitoring"),
    )


def test_labels_sorted() -> None:
    d = shop()
    d["spec"]["workloads"][0]["labels"] = {"z": "1", "a": "2", "m": "3"}
    assert parse(d).workloads[0].labels == (("a", "2"), ("m", "3"), ("z", "1"))


def test_service_defaults() -> None:
    d = shop()
    d["spec"]["services"][0] = {
        "name": "plain",
        "namespace": "shop",
        "clusterIP": "10.96.1.1",
        "ports": [{"port": 443}],
    }
    s = parse(d).services[0]
    assert (s.type, s.session_affinity, s.session_affinity_timeout) == ("ClusterIP", "None", 10800)
    assert s.external_traffic_policy == "Cluster" and s.selector == ()
    assert (s.ports[0].target_port, s.ports[0].protocol, s.ports[0].name) == (443, "TCP", None)
    assert s.ports[0].node_port is None


def test_client_ip_default_timeout() -> None:
    d = shop()
    d["spec"]["services"][1]["sessionAffinityConfig"] = {"clientIP": {}}
    assert parse(d).services[1].session_affinity_timeout == 10800


def test_service_model() -> None:
    s = parse(shop()).services[1]
    assert s.cluster_ip == IPv4Address("10.96.0.20") and s.type == "NodePort"
    assert s.session_affinity == "ClientIP" and s.session_affinity_timeout == 600
    assert s.external_traffic_policy == "Local" and s.key == "shop/api"
    assert s.ports[0].node_port == 30900


def test_optional_sections_missing() -> None:
    d = shop()
    for key in ("namespaces", "workloads", "services", "policies", "encryption"):
        del d["spec"][key]
    cluster = parse(d)
    assert cluster.namespaces == cluster.workloads == cluster.services == cluster.policies == ()
    assert cluster.wireguard is None


def test_optional_sections_empty() -> None:
    d = shop()
    for key in ("namespaces", "workloads", "services", "policies"):
        d["spec"][key] = []
    d["spec"]["encryption"] = {}
    cluster = parse(d)
    assert cluster.namespaces == cluster.workloads == cluster.services == cluster.policies == ()
    assert cluster.wireguard is None


def test_workload_model() -> None:
    w = parse(shop()).workloads[1]
    assert w.ips == (IPv4Address("10.244.2.20"), IPv4Address("10.244.2.21"))
    assert w.resolve_port("api", "TCP") == 9000
    assert w.ports[1].name is None and w.ports[1].protocol == "UDP"
    assert w.key == "shop/backend"


def test_wireguard_model() -> None:
    d = shop()
    del d["spec"]["encryption"]["wireguard"]["listenPort"]
    wg = parse(d).wireguard
    assert wg.enabled and wg.listen_port == 51871 and wg.path == "spec.encryption.wireguard"
    assert [(n.node, n.path) for n in wg.nodes] == [
        ("node-1", 'spec.encryption.wireguard.nodes["node-1"]'),
        ("node-2", 'spec.encryption.wireguard.nodes["node-2"]'),
    ]
    assert wg.nodes[0].private_key_file == "/etc/netcc/wg/private.key"


def test_models_are_deterministic_and_hashable() -> None:
    a, b = parse(shop()), parse(shop())
    assert a == b
    assert hash(a.policies) == hash(b.policies)


def test_internal_errors_become_diagnostics(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(_document: object) -> None:
        raise KeyError("oops")

    monkeypatch.setattr("netcc.frontend.build_cluster", boom)
    with pytest.raises(SpecError) as info:
        parse(shop())
    [d] = info.value.diagnostics
    assert d.message.startswith(INTERNAL_ERROR)
