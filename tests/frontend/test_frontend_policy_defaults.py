"""NetworkPolicy fields networking.k8s.io/v1 marks optional are optional here too, with the
meaning Kubernetes gives them: an absent `spec` or `spec.podSelector` is the empty one, and a
policy without `metadata.namespace` is where `kubectl apply -n DEFAULT` puts it, DEFAULT being
the spec's `defaultNamespace` (`default` unless stated), which must then be declared."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from frontend_helpers import errors, parse

from netcc.model.types import LabelSelector

SCHEMA = json.loads((Path(__file__).parents[2] / "schemas/clusternetwork.schema.json").read_text())
# netcc's definition -> Kubernetes' own (the OpenAPI of the newest API kubernetes-validate has).
KUBERNETES = {
    "networkPolicy": "networkpolicy-networking-v1",
    "networkPolicySpec": "networkpolicyspec-networking-v1",
    "ingressRule": "networkpolicyingressrule-networking-v1",
    "egressRule": "networkpolicyegressrule-networking-v1",
    "peer": "networkpolicypeer-networking-v1",
    "policyPort": "networkpolicyport-networking-v1",
    "ipBlock": "ipblock-networking-v1",
    "labelSelector": "labelselector-meta-v1",
    "labelSelectorRequirement": "labelselectorrequirement-meta-v1",
}
# Required here though optional in the API: an object needs its kind, and netcc a name for it.
STRICTER = {"networkPolicy": {"apiVersion", "kind", "metadata"}, "policyMetadata": {"name"}}


def kubernetes_schema(name: str) -> dict[str, Any]:
    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    newest = max(
        (p for p in root.iterdir() if p.name.endswith("-local-strict")),
        key=lambda p: tuple(int(x) for x in p.name[1:].split("-")[0].split(".")),
    )
    return json.loads((newest / f"{name}.json").read_text())


def deny_all(name: str = "deny-all", namespace: str | None = None, **spec: Any) -> dict:
    """A NetworkPolicy as the recipes write it: no namespace unless given."""
    metadata = {"name": name} | ({"namespace": namespace} if namespace else {})
    policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": metadata}
    return policy | {"spec": spec}


def with_policies(doc: dict, *policies: dict, namespaces: tuple[str, ...] = ()) -> dict:
    doc["spec"]["namespaces"] += [{"name": n} for n in namespaces]
    doc["spec"]["policies"] = list(policies)
    return doc


def test_only_what_kubernetes_requires_is_required() -> None:
    for ours, theirs in KUBERNETES.items():
        required = set(SCHEMA["$defs"][ours].get("required", []))
        kubernetes = set(kubernetes_schema(theirs).get("required", []))
        assert required - STRICTER.get(ours, set()) <= kubernetes, ours
    assert set(SCHEMA["$defs"]["policyMetadata"]["required"]) == STRICTER["policyMetadata"]


def test_an_absent_pod_selector_is_the_empty_one(doc) -> None:
    policy = deny_all(namespace="shop", policyTypes=["Ingress"])
    [without] = parse(with_policies(doc, policy)).policies
    policy["spec"]["podSelector"] = {}
    [empty] = parse(with_policies(doc, policy)).policies
    assert without.pod_selector == LabelSelector() == empty.pod_selector
    assert without == empty


def test_an_absent_spec_isolates_every_pod_for_ingress(doc) -> None:
    policy = deny_all(namespace="shop")
    del policy["spec"]
    [p] = parse(with_policies(doc, policy)).policies
    assert (p.pod_selector, p.policy_types, p.ingress, p.egress) == (
        LabelSelector(),
        ("Ingress",),
        (),
        (),
    )


def test_a_policy_without_namespace_is_in_the_default_namespace(doc) -> None:
    named = deny_all("named", "shop")
    cluster = parse(with_policies(doc, deny_all(), named, namespaces=("default",)))
    unnamed, named_p = cluster.policies
    assert (unnamed.key, unnamed.namespace_defaulted) == ("default/deny-all", True)
    assert (named_p.key, named_p.namespace_defaulted) == ("shop/named", False)
    assert cluster.default_namespace == "default"


def test_the_spec_states_another_default_namespace(doc) -> None:
    doc["spec"]["defaultNamespace"] = "shop"
    cluster = parse(with_policies(doc, deny_all(), deny_all("elsewhere", "monitoring")))
    assert [(p.key, p.namespace_defaulted) for p in cluster.policies] == [
        ("shop/deny-all", True),
        ("monitoring/elsewhere", False),
    ]
    assert cluster.default_namespace == "shop"


def test_the_default_namespace_must_be_declared_when_a_policy_uses_it(doc) -> None:
    assert errors(with_policies(doc, deny_all())) == [
        (
            "spec.policies[0].metadata",
            'the policy names no namespace, and the default namespace "default" is not declared '
            "in spec.namespaces (declare it, set spec.defaultNamespace, or give the policy a "
            "metadata.namespace)",
        )
    ]
    doc["spec"]["defaultNamespace"] = "team-a"
    assert errors(doc) == [
        (
            "spec.policies[0].metadata",
            'the policy names no namespace, and spec.defaultNamespace "team-a" is not declared '
            "in spec.namespaces",
        )
    ]


def test_an_unused_default_namespace_need_not_be_declared(doc) -> None:
    doc["spec"]["defaultNamespace"] = "team-a"
    assert [p.namespace for p in parse(doc).policies] == ["shop", "shop", "monitoring"]


@pytest.mark.parametrize("value", ["Team_A", "-a", "a" * 64, ""])
def test_the_default_namespace_is_a_namespace_name(doc, value) -> None:
    doc["spec"]["defaultNamespace"] = value
    [(path, message)] = errors(with_policies(doc, deny_all()))
    assert path == "spec.defaultNamespace" and message.startswith("invalid namespace name")


def test_the_default_namespace_is_a_string(doc) -> None:
    doc["spec"]["defaultNamespace"] = 7
    assert [p for p, _ in errors(with_policies(doc, deny_all()))] == ["spec.defaultNamespace"]


def test_names_are_unique_in_the_namespace_a_policy_gets(doc) -> None:
    found = errors(
        with_policies(doc, deny_all(), deny_all(namespace="default"), namespaces=("default",))
    )
    assert found == [
        (
            "spec.policies[1].metadata.name",
            "policy default/deny-all is already declared by spec.policies[0]",
        )
    ]


def test_every_other_optional_field_may_be_left_out(doc) -> None:
    """policyTypes, ingress, egress, from/to, ports, port, protocol, endPort, except, and
    either selector of a peer: each absent, each with Kubernetes' default."""
    policy = deny_all(
        "sparse",
        "shop",
        podSelector={"matchLabels": {"app": "frontend"}},
        egress=[
            {},  # no to, no ports: everything
            {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]},  # no except, no ports
            {"ports": [{}]},  # a port entry without port or protocol: every TCP port
            {"ports": [{"port": 53, "protocol": "UDP"}]},  # no endPort
            {"to": [{"namespaceSelector": {}}, {"podSelector": {}}]},  # one selector each
        ],
    )
    [p] = parse(with_policies(doc, policy)).policies
    assert p.policy_types == ("Ingress", "Egress")  # egress rules: Egress too
    assert p.ingress == ()
    every, block, tcp, dns, selectors = p.egress
    assert (every.peers, every.ports) == ((), ())
    assert block.peers[0].ip_block.excepts == () and block.ports == ()
    assert [(x.protocol, x.port, x.end_port) for x in tcp.ports] == [("TCP", None, None)]
    assert [(x.protocol, x.port, x.end_port) for x in dns.ports] == [("UDP", 53, None)]
    first, second = selectors.peers
    assert (first.namespace_selector, first.pod_selector) == (LabelSelector(), None)
    assert (second.namespace_selector, second.pod_selector) == (None, LabelSelector())
