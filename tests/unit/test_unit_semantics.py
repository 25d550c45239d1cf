"""netcc.semantics.policy: the reference NetworkPolicy model."""

from ipaddress import IPv4Address, IPv4Network, IPv6Network

import pytest
from unitspecs import cluster_of, policy

from netcc.model.types import IPBlock, LabelSelector, PolicyPort, Requirement
from netcc.semantics.policy import (
    Endpoint,
    RuleRef,
    endpoint_of,
    evaluate,
    ip_in_block,
    port_matches,
    requirement_matches,
    selector_matches,
    side_verdict,
)

LABELS = {"app": "web", "tier": "front", "empty": ""}


@pytest.mark.parametrize(
    ("operator", "key", "values", "want"),
    [
        ("In", "app", ("web", "api"), True),
        ("In", "app", ("api",), False),
        ("In", "missing", ("web",), False),
        ("In", "empty", ("",), True),
        ("NotIn", "app", ("api",), True),
        ("NotIn", "app", ("web",), False),
        ("NotIn", "missing", ("web",), True),  # a missing key matches NotIn
        ("NotIn", "empty", ("",), False),
        ("Exists", "app", (), True),
        ("Exists", "empty", (), True),
        ("Exists", "missing", (), False),
        ("DoesNotExist", "missing", (), True),
        ("DoesNotExist", "app", (), False),
        ("DoesNotExist", "empty", (), False),
    ],
)
def test_requirement_matches(operator, key, values, want):
    assert requirement_matches(Requirement(key, operator, values), LABELS) is want


def test_requirement_unknown_operator_is_an_error():
    with pytest.raises(ValueError, match="unknown operator"):
        requirement_matches(Requirement("app", "Gt", ("1",)), LABELS)


def test_selector_matches():
    assert selector_matches(LabelSelector(), {})
    assert selector_matches(LabelSelector(), LABELS)
    assert LabelSelector().is_empty
    ml = LabelSelector(match_labels=(("app", "web"), ("tier", "front")))
    assert selector_matches(ml, LABELS)
    assert not selector_matches(ml, {"app": "web"})
    assert not selector_matches(LabelSelector(match_labels=(("empty", "x"),)), LABELS)
    assert selector_matches(LabelSelector(match_labels=(("empty", ""),)), LABELS)
    # A required empty value does not match a missing key.
    assert not selector_matches(LabelSelector(match_labels=(("missing", ""),)), LABELS)
    both = LabelSelector(
        match_labels=(("app", "web"),),
        match_expressions=(
            Requirement("tier", "NotIn", ("back",)),
            Requirement("x", "DoesNotExist"),
        ),
    )
    assert selector_matches(both, LABELS)
    assert not selector_matches(both, {**LABELS, "x": "1"})
    assert not selector_matches(both, {**LABELS, "app": "api"})


def test_ip_in_block_ipv4_with_excepts():
    block = IPBlock(IPv4Network("10.0.0.0/8"), (IPv4Network("10.1.0.0/16"),))
    assert ip_in_block(IPv4Address("10.0.0.0"), block)
    assert ip_in_block(IPv4Address("10.255.255.255"), block)
    assert ip_in_block(IPv4Address("10.0.255.255"), block)
    assert ip_in_block(IPv4Address("10.2.0.0"), block)
    assert not ip_in_block(IPv4Address("10.1.0.0"), block)
    assert not ip_in_block(IPv4Address("10.1.255.255"), block)
    assert not ip_in_block(IPv4Address("11.0.0.0"), block)
    assert ip_in_block(IPv4Address("1.2.3.4"), IPBlock(IPv4Network("0.0.0.0/0")))


def test_ip_in_block_ipv6_blocks_hold_no_ipv4_address():
    for cidr in ("::/0", "::ffff:0:0/96", "2001:db8::/32"):
        block = IPBlock(IPv6Network(cidr))
        for ip in ("0.0.0.0", "10.0.0.1", "255.255.255.255"):
            assert not ip_in_block(IPv4Address(ip), block)
    # IPv6 excepts of an IPv4 block are ignored for IPv4 addresses.
    mixed = IPBlock(IPv4Network("10.0.0.0/8"), (IPv6Network("::/0"),))
    assert ip_in_block(IPv4Address("10.0.0.1"), mixed)


def test_port_matches():
    web = next(w for w in cluster_of().workloads if w.key == "a/api")
    assert port_matches(PolicyPort("TCP", 80), 6, 80, None)
    assert not port_matches(PolicyPort("TCP", 80), 17, 80, None)
    assert not port_matches(PolicyPort("TCP", 80), 6, 81, None)
    assert port_matches(PolicyPort("UDP"), 17, 12345, None)
    assert port_matches(PolicyPort("SCTP", 100, 200), 132, 200, None)
    assert not port_matches(PolicyPort("SCTP", 100, 200), 132, 201, None)
    assert port_matches(PolicyPort("TCP", "http"), 6, 9090, web)
    assert not port_matches(PolicyPort("TCP", "http"), 6, 9090, None)
    assert not port_matches(PolicyPort("TCP", "dns"), 6, 53, web)  # dns is UDP on api
    assert port_matches(PolicyPort("UDP", "dns"), 17, 53, web)


# --- side_verdict ---------------------------------------------------------------------------

POLICIES = (
    policy("deny-all", "a", "podSelector: {}\npolicyTypes: [Ingress, Egress]"),
    policy(
        "api-in",
        "a",
        """
        podSelector: {matchLabels: {app: api}}
        ingress:
          - from: [{podSelector: {matchLabels: {app: web}}}]
            ports: [{port: http}]
          - ports: [{port: 9090}]
        """,
    ),
    policy(
        "web-out",
        "a",
        """
        podSelector: {matchLabels: {app: web}}
        policyTypes: [Egress]
        egress:
          - to: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}}]
        """,
    ),
)


@pytest.fixture(scope="module")
def cluster():
    return cluster_of(*POLICIES)


def _pod(cluster, key):
    return next(w for w in cluster.workloads if w.key == key)


def test_side_verdict_self(cluster):
    api = _pod(cluster, "a/api")
    for direction in ("ingress", "egress"):
        v = side_verdict(cluster, api, direction, endpoint_of(cluster, api.ips[0]), 6, 1)
        assert (v.allowed, v.reason, v.rules) == (True, "self", ())


def test_side_verdict_host_only_for_ingress_from_own_node(cluster):
    api = _pod(cluster, "a/api")  # on node-2
    for own in ("192.168.77.12", "10.244.2.1"):
        remote = endpoint_of(cluster, IPv4Address(own))
        assert remote.kind == "node"
        v = side_verdict(cluster, api, "ingress", remote, 6, 1)
        assert (v.allowed, v.reason) == (True, "host")
        # Egress to its own node is judged by policy.
        v = side_verdict(cluster, api, "egress", remote, 6, 1)
        assert (v.allowed, v.reason) == (False, "default-deny")
    other = endpoint_of(cluster, IPv4Address("192.168.77.11"))
    v = side_verdict(cluster, api, "ingress", other, 6, 1)
    assert (v.allowed, v.reason) == (False, "default-deny")


def test_side_verdict_unisolated(cluster):
    db = _pod(cluster, "b/db")
    remote = endpoint_of(cluster, IPv4Address("8.8.8.8"))
    assert remote.kind == "external"
    for direction in ("ingress", "egress"):
        v = side_verdict(cluster, db, direction, remote, 17, 53)
        assert (v.allowed, v.reason, v.isolated_by) == (True, "unisolated", ())


def test_side_verdict_rule_lists_every_allowing_rule(cluster):
    api = _pod(cluster, "a/api")
    web = endpoint_of(cluster, IPv4Address("10.244.1.10"))
    v = side_verdict(cluster, api, "ingress", web, 6, 9090)
    assert v.allowed and v.reason == "rule"
    assert v.rules == (
        RuleRef("a/api-in", "ingress", 0, "spec.policies[1].spec.ingress[0]"),
        RuleRef("a/api-in", "ingress", 1, "spec.policies[1].spec.ingress[1]"),
    )
    assert str(v.rules[0]) == "a/api-in ingress[0]"
    assert v.isolated_by == ("a/deny-all", "a/api-in")
    # db is not a web pod: only the port-only rule.
    db = endpoint_of(cluster, IPv4Address("10.244.2.20"))
    v = side_verdict(cluster, api, "ingress", db, 6, 9090)
    assert [r.index for r in v.rules] == [1]


def test_side_verdict_default_deny(cluster):
    api = _pod(cluster, "a/api")
    web = endpoint_of(cluster, IPv4Address("10.244.1.10"))
    v = side_verdict(cluster, api, "ingress", web, 6, 8080)
    assert (v.allowed, v.reason, v.rules) == (False, "default-deny", ())
    assert v.isolated_by == ("a/deny-all", "a/api-in")
    assert v.pod == "a/api" and v.direction == "ingress"


def test_side_verdict_egress_ipblock_except(cluster):
    web = _pod(cluster, "a/web-1")
    out = side_verdict(cluster, web, "egress", endpoint_of(cluster, IPv4Address("1.1.1.1")), 6, 1)
    assert out.allowed and out.rules == (
        RuleRef("a/web-out", "egress", 0, "spec.policies[2].spec.egress[0]"),
    )
    inside = side_verdict(
        cluster, web, "egress", endpoint_of(cluster, IPv4Address("10.244.2.10")), 6, 9090
    )
    assert (inside.allowed, inside.reason) == (False, "default-deny")


def test_evaluate_needs_both_sides(cluster):
    # web -> api on 9090: api's ingress allows, web's egress (10/8 excepted) denies.
    v = evaluate(cluster, IPv4Address("10.244.1.10"), IPv4Address("10.244.2.10"), 6, 9090)
    assert v.ingress.allowed and not v.egress.allowed and not v.allowed
    # db -> api: db's egress unisolated, api's ingress by rule 1.
    v = evaluate(cluster, IPv4Address("10.244.2.20"), IPv4Address("10.244.2.10"), 6, 9090)
    assert v.allowed and v.egress.reason == "unisolated" and v.ingress.reason == "rule"
    # External to db: only the ingress side exists.
    v = evaluate(cluster, IPv4Address("8.8.8.8"), IPv4Address("10.244.2.20"), 6, 1)
    assert v.egress is None and v.ingress.reason == "unisolated" and v.allowed


def test_endpoint_of_and_str(cluster):
    pod = endpoint_of(cluster, IPv4Address("10.244.2.20"))
    assert pod.kind == "pod" and str(pod) == "b/db (10.244.2.20)"
    router = endpoint_of(cluster, IPv4Address("10.244.1.1"))
    assert router.kind == "node" and str(router) == "node node-1 (10.244.1.1)"
    world = endpoint_of(cluster, IPv4Address("10.244.9.9"))
    assert world.kind == "external" and str(world) == "10.244.9.9"
    assert Endpoint(IPv4Address("1.2.3.4")).workload is None
