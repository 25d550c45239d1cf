"""netcc.plan.planner on small hand-written specs: entries, profiles, peer classes, flags,
verdicts."""

from dataclasses import replace

import pytest
from unitspecs import (
    BASE,
    cluster_of,
    deny_verdict,
    endpoint,
    entries,
    node,
    peer_of,
    plan_of,
    policy,
    region_peer,
    rule_verdict,
    spec_text,
)

from netcc import contract as layout
from netcc.contract import capacity
from netcc.contract.entries import EntryError
from netcc.diagnostics import SpecError
from netcc.pipeline import compile_spec
from netcc.plan.planner import CapacityError, plan
from netcc.resolve.cidr import port_range_prefixes
from netcc.resolve.resolution import resolve

IN, EG = layout.DIR_INGRESS, layout.DIR_EGRESS
TCP, UDP, SCTP = 6, 17, 132
ALL_PROTOS = layout.POLICY_PREFIX_ALL_PROTOCOLS  # 72
ALL_PORTS = layout.POLICY_PREFIX_ALL_PORTS  # 80
FULL = layout.POLICY_PREFIX_FULL  # 96
F = layout.ENDPOINT_FLAGS
ANY = layout.PEER_ANY


def test_policy_prefix_constants():
    assert (ALL_PROTOS, ALL_PORTS, FULL) == (72, 80, 96)


# --- no policy ----------------------------------------------------------------------------


def test_without_policies_nothing_is_isolated_and_no_entries():
    p = plan_of()
    assert [v.number for v in p.verdicts] == [v.number for v in layout.RESERVED_VERDICTS]
    for n in p.nodes:
        assert n.maps["netcc_policy"] == n.maps["netcc_policy_exact"] == ()
        for e in n.maps["netcc_endpoints"]:
            assert e.value.flags == 0
            assert e.value.ingress_deny == e.value.egress_deny == 0
    assert p.capacities["NETCC_MAX_VERDICTS"] == layout.RESERVED_VERDICTS[-1].number + 1
    assert p.capacities["NETCC_MAX_CT"] == capacity.BY_NAME["NETCC_MAX_CT"].limit  # fixed
    for name in ("NETCC_MAX_ENDPOINTS", "NETCC_MAX_IPCACHE", "NETCC_MAX_CIDRS", "NETCC_MAX_POLICY"):
        assert p.capacities[name] == 64  # the floor, a power of two
    # Without ipBlocks the LPM ipcache holds the whole space only: world.
    (world,) = p.nodes[0].maps["netcc_ipcache_cidr"]
    assert world.key._asdict() == {"prefixlen": 0, "ip": "0.0.0.0"}
    assert world.value.identity == layout.IDENTITY_WORLD


def test_workload_numbers_follow_sorted_keys():
    p = plan_of()
    assert p.workload_numbers == {
        "a/api": 1,
        "a/web-1": 2,
        "a/web-2": 3,
        "a/web-3": 4,
        "a/web-4": 5,
        "b/db": 6,
    }
    assert endpoint(p, "a/web-2")["workload"] == 3


# --- profiles -------------------------------------------------------------------------------


def test_pods_with_same_identity_and_ports_share_a_profile():
    p = plan_of()
    n1 = node(p, "node-1")
    assert n1.profiles == ((1, ("a/web-1", "a/web-2")), (2, ("a/web-3",)))
    assert endpoint(p, "a/web-1")["profile"] == endpoint(p, "a/web-2")["profile"] == 1
    assert endpoint(p, "a/web-3")["profile"] == 2  # same identity, other ports
    assert node(p, "node-2").profiles == ((1, ("a/api",)), (2, ("a/web-4",)), (3, ("b/db",)))


def test_endpoints_map_one_entry_per_address():
    base = BASE.replace("ips: [10.244.1.10]", "ips: [10.244.1.10, 10.244.1.100]")
    p = plan_of(base=base)
    eps = node(p, "node-1").maps["netcc_endpoints"]
    assert [e.key.ip for e in eps] == [
        "10.244.1.10",
        "10.244.1.11",
        "10.244.1.12",
        "10.244.1.100",
    ]
    assert eps[0].value == eps[3].value
    assert eps[0].note == eps[3].note == "a/web-1"


# --- ipcache --------------------------------------------------------------------------------


def test_ipcache_pods_and_nodes():
    p = plan_of()
    for n in p.nodes:
        by_ip = {e.key.ip: e for e in n.maps["netcc_ipcache"]}
        assert len(by_ip) == 6 + 4
        pod = by_ip["10.244.2.20"].value._asdict()
        assert pod["identity"] == p.identities["b/db"].number
        assert pod["workload"] == p.workload_numbers["b/db"]
        assert pod["flags"] == layout.IPCACHE_FLAGS["IPCACHE_F_POD"]
        for other in p.nodes:
            for addr in {
                "node-1": ("192.168.77.11", "10.244.1.1"),
                "node-2": ("192.168.77.12", "10.244.2.1"),
            }[other.name]:
                v = by_ip[addr].value._asdict()
                if other.name == n.name:
                    assert v["identity"] == layout.IDENTITY_HOST
                    assert v["flags"] == layout.IPCACHE_FLAGS["IPCACHE_F_HOST"]
                else:
                    assert v["identity"] == layout.IDENTITY_REMOTE_NODE
                    assert v["flags"] == 0
                assert v["workload"] == 0
    # Every node sees the same peer classes.
    assert [e.value.peer for e in p.nodes[0].maps["netcc_ipcache"]] == [
        e.value.peer for e in p.nodes[1].maps["netcc_ipcache"]
    ]


# --- isolation and default denies ---------------------------------------------------------


DENY_INGRESS_A = policy("deny-in", "a", "podSelector: {}\npolicyTypes: [Ingress]")


def test_default_deny_ingress_isolates_its_namespace_only():
    p = plan_of(DENY_INGRESS_A)
    for pod in ("a/web-1", "a/web-2", "a/web-3", "a/web-4", "a/api"):
        ep = endpoint(p, pod)
        assert ep["flags"] == F["ENDPOINT_F_INGRESS_ISOLATED"]
        assert ep["ingress_deny"] == deny_verdict(p, pod, "ingress")
        assert ep["egress_deny"] == 0
    db = endpoint(p, "b/db")
    assert (db["flags"], db["ingress_deny"], db["egress_deny"]) == (0, 0, 0)
    for n in p.nodes:
        assert n.maps["netcc_policy"] == n.maps["netcc_policy_exact"] == ()


def test_deny_verdicts_follow_rule_verdicts_one_per_pod_and_direction():
    p = plan_of(
        policy(
            "both",
            "a",
            "podSelector: {matchLabels: {app: api}}\npolicyTypes: [Ingress, Egress]\ningress: [{}]",
        ),
        DENY_INGRESS_A,
    )
    rules = [v for v in p.verdicts if v.name.startswith("RULE_")]
    denies = [v for v in p.verdicts if v.name.startswith("DENY_")]
    assert [v.number for v in rules] == [layout.FIRST_RULE_VERDICT]
    assert [(v.pod, v.direction) for v in denies] == [
        ("a/api", "ingress"),
        ("a/api", "egress"),
        ("a/web-1", "ingress"),
        ("a/web-2", "ingress"),
        ("a/web-3", "ingress"),
        ("a/web-4", "ingress"),
    ]
    assert [v.number for v in denies] == list(range(33, 39))
    assert all(v.action == "drop" for v in denies)
    assert denies[0].doc == "a/api ingress: isolated by a/both, a/deny-in; no rule allows"
    assert denies[0].path == "spec.workloads[4]"
    assert p.capacities["NETCC_MAX_VERDICTS"] == 39
    ep = endpoint(p, "a/api")
    assert ep["flags"] == (
        F["ENDPOINT_F_INGRESS_ISOLATED"]
        | F["ENDPOINT_F_EGRESS_ISOLATED"]
        | F["ENDPOINT_F_INGRESS_ANY"]
        | F["ENDPOINT_F_INGRESS_RANGES"]  # ingress: [{}] is a wildcard entry in the LPM trie
    )
    assert (ep["ingress_deny"], ep["egress_deny"]) == (33, 34)


def test_rule_verdicts_numbered_by_policy_key_then_direction_then_index():
    p = plan_of(
        policy("z", "a", "podSelector: {}\ningress: [{}, {}]\negress: [{}]"),
        policy("m", "b", "podSelector: {}\negress: [{}]"),
        policy("b", "a", "podSelector: {}\ningress: [{}]"),
    )
    rules = [(v.number, v.policy, v.direction, v.index) for v in p.verdicts if v.policy]
    assert rules == [
        (32, "a/b", "ingress", 0),
        (33, "a/z", "ingress", 0),
        (34, "a/z", "ingress", 1),
        (35, "a/z", "egress", 0),
        (36, "b/m", "egress", 0),
    ]
    v = next(v for v in p.verdicts if v.number == 34)
    assert v.path == "spec.policies[0].spec.ingress[1]"
    assert v.doc == (
        "a/z ingress rule 1 (spec.policies[0].spec.ingress[1]): any peer; all ports and protocols"
    )


# --- expansion -----------------------------------------------------------------------------


def test_rule_without_peers_or_ports_is_one_any_entry_for_all_protocols():
    p = plan_of(policy("all", "a", "podSelector: {matchLabels: {app: api}}\ningress: [{}]"))
    v = rule_verdict(p, "a/all", "ingress", 0)
    prof = endpoint(p, "a/api")["profile"]
    assert entries(p, "node-2") == {(prof, ANY, IN, 0, 0, ALL_PROTOS, v)}
    assert entries(p, "node-1") == set()
    assert endpoint(p, "a/api")["flags"] & F["ENDPOINT_F_INGRESS_ANY"]
    assert not endpoint(p, "a/api")["flags"] & F["ENDPOINT_F_EGRESS_ANY"]


def test_ports_without_peers_give_any_entries_per_port_prefix():
    p = plan_of(
        policy(
            "ports",
            "a",
            """
            podSelector: {matchLabels: {app: api}}
            ingress:
              - ports:
                  - {port: 443}
                  - {protocol: UDP, port: 1000, endPort: 1003}
                  - {protocol: SCTP}
            """,
        )
    )
    v = rule_verdict(p, "a/ports", "ingress", 0)
    prof = endpoint(p, "a/api")["profile"]
    assert entries(p, "node-2") == {
        (prof, ANY, IN, TCP, 443, FULL, v),
        (prof, ANY, IN, UDP, 1000, FULL - 2, v),
        (prof, ANY, IN, SCTP, 0, ALL_PORTS, v),
    }


def test_port_range_expands_to_its_prefixes():
    p = plan_of(
        policy(
            "range",
            "a",
            "podSelector: {matchLabels: {app: api}}\n"
            "ingress: [{ports: [{port: 1, endPort: 65535}]}]",
        )
    )
    got = sorted((e[4], e[5]) for e in entries(p, "node-2"))
    want = sorted((port, ALL_PORTS + bits) for port, bits in port_range_prefixes(1, 65535))
    assert got == want
    assert len(got) == 16


def test_pod_selector_peer_gives_entries_for_matching_classes_only():
    p = plan_of(
        policy(
            "from-web",
            "a",
            "podSelector: {matchLabels: {app: api}}\n"
            "ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 80}]}]",
        )
    )
    v = rule_verdict(p, "a/from-web", "ingress", 0)
    prof = endpoint(p, "a/api")["profile"]
    web_a, web_b = peer_of(p, "a/web-1"), peer_of(p, "a/web-3")
    assert web_a != web_b  # same identity, other ports: other class
    assert peer_of(p, "a/web-2") == peer_of(p, "a/web-4") == web_a
    assert entries(p, "node-2") == {
        (prof, web_a, IN, TCP, 80, FULL, v),
        (prof, web_b, IN, TCP, 80, FULL, v),
    }
    assert not endpoint(p, "a/api")["flags"] & F["ENDPOINT_F_INGRESS_ANY"]


def test_namespace_selector_peer_and_pod_selector_are_anded():
    p = plan_of(
        policy(
            "ns",
            "b",
            """
            podSelector: {}
            ingress:
              - from:
                  - namespaceSelector: {matchLabels: {team: red}}
                    podSelector: {matchLabels: {app: api}}
              - from:
                  - namespaceSelector: {}
            """,
        )
    )
    prof = endpoint(p, "b/db")["profile"]
    v0, v1 = rule_verdict(p, "b/ns", "ingress", 0), rule_verdict(p, "b/ns", "ingress", 1)
    got = entries(p, "node-2")
    assert (prof, peer_of(p, "a/api"), IN, 0, 0, ALL_PROTOS, v0) in got
    pods = {peer_of(p, k) for k in ("a/web-1", "a/web-3", "a/api", "b/db")}
    # Rule 1 allows every pod; for api's class rule 0 gives the same key, and the lower verdict
    # stands.
    assert {e[1] for e in got} == pods
    assert {e[1] for e in got if e[6] == v0} == {peer_of(p, "a/api")}
    assert {e[1] for e in got if e[6] == v1} == pods - {peer_of(p, "a/api")}


def test_same_key_from_two_rules_keeps_the_lowest_verdict():
    p = plan_of(
        policy(
            "x",
            "a",
            "podSelector: {matchLabels: {app: api}}\n"
            "ingress: [{ports: [{port: 80}]}, {ports: [{port: 80}, {port: 81}]}]",
        )
    )
    v0, v1 = rule_verdict(p, "a/x", "ingress", 0), rule_verdict(p, "a/x", "ingress", 1)
    prof = endpoint(p, "a/api")["profile"]
    assert entries(p, "node-2") == {
        (prof, ANY, IN, TCP, 80, FULL, v0),
        (prof, ANY, IN, TCP, 81, FULL, v1),
    }
    notes = {e.key.port: e.note for e in node(p, "node-2").maps["netcc_policy_exact"]}
    assert notes == {80: "a/x ingress[0]", 81: "a/x ingress[1]"}


def test_profiles_sharing_entries_on_one_node():
    p = plan_of(policy("w", "a", "podSelector: {matchLabels: {app: web}}\ningress: [{}]"))
    v = rule_verdict(p, "a/w", "ingress", 0)
    # web-1/web-2 share profile 1, web-3 is profile 2: one entry each.
    assert entries(p, "node-1") == {
        (1, ANY, IN, 0, 0, ALL_PROTOS, v),
        (2, ANY, IN, 0, 0, ALL_PROTOS, v),
    }


# --- peer classes and ipBlocks --------------------------------------------------------------


def test_ipblock_except_splits_pods_of_one_identity_into_classes():
    before = plan_of()
    assert peer_of(before, "a/web-1") == peer_of(before, "a/web-4")
    p = plan_of(
        policy(
            "blk",
            "b",
            "podSelector: {}\ningress: [{from: [{ipBlock: "
            "{cidr: 10.244.0.0/16, except: [10.244.1.0/24]}}]}]",
        )
    )
    assert peer_of(p, "a/web-1") != peer_of(p, "a/web-4")
    assert peer_of(p, "a/web-1") == peer_of(p, "a/web-2")
    v = rule_verdict(p, "b/blk", "ingress", 0)
    prof = endpoint(p, "b/db")["profile"]
    allowed = {e[1] for e in entries(p, "node-2")}
    # node-2's pods (inside the block) and the region 10.244.0.0/16 minus node-1's /24.
    assert allowed == {
        peer_of(p, "a/web-4"),
        peer_of(p, "a/api"),
        peer_of(p, "b/db"),
        peer_of(p, "10.244.2.1"),  # node-2's router address is in the block
        region_peer(p, "10.244.0.0/16"),
    }
    assert peer_of(p, "a/web-1") not in allowed
    assert region_peer(p, "10.244.1.0/24") not in allowed
    assert region_peer(p, "0.0.0.0/0") not in allowed
    assert (prof, region_peer(p, "10.244.0.0/16"), IN, 0, 0, ALL_PROTOS, v) in entries(p, "node-2")
    # Addresses in the except and in no block are alike: one external class.
    assert region_peer(p, "10.244.1.0/24") == region_peer(p, "0.0.0.0/0")
    assert peer_of(p, "192.168.77.11") == region_peer(p, "0.0.0.0/0")
    assert peer_of(p, "10.244.1.1") == region_peer(p, "0.0.0.0/0")


def test_ipcache_regions_are_every_block_and_except_plus_world():
    p = plan_of(
        policy(
            "blk",
            "a",
            """
            podSelector: {}
            egress:
              - to:
                  - ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8, 192.168.0.0/16]}
                  - ipBlock: {cidr: 10.1.0.0/16}
                  - ipBlock: {cidr: "fd00::/8"}
            """,
        )
    )
    cidr = p.nodes[0].maps["netcc_ipcache_cidr"]
    assert [e.note for e in cidr] == ["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "192.168.0.0/16"]
    assert all(e.value.identity == layout.IDENTITY_WORLD for e in cidr)
    assert all(e.value.workload == e.value.flags == 0 for e in cidr)
    assert [e.key._asdict() for e in cidr][1] == {"prefixlen": 8, "ip": "10.0.0.0"}
    # 10.0.0.0/8 and 192.168.0.0/16 are both "in no block"; 10.1.0.0/16 is in the second block.
    assert region_peer(p, "10.0.0.0/8") == region_peer(p, "192.168.0.0/16")
    assert len({region_peer(p, c) for c in ("0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16")}) == 3
    # IPv6 blocks are kept out of the address plan.
    assert all(":" not in str(b.cidr) for b in p.blocks)
    descriptions = [c.describe(p.blocks) for c in p.peers]
    assert "addresses outside the pods; in 10.1.0.0/16" in descriptions
    assert "addresses outside the pods; in no ipBlock" in descriptions


def test_ipv6_ipblock_matches_nothing_but_still_isolates():
    p = plan_of(
        policy(
            "v6",
            "a",
            "podSelector: {matchLabels: {app: api}}\n"
            'ingress: [{from: [{ipBlock: {cidr: "2001:db8::/32"}}]}]',
        )
    )
    assert entries(p, "node-2") == set()
    assert endpoint(p, "a/api")["flags"] == F["ENDPOINT_F_INGRESS_ISOLATED"]


def test_pod_classes_come_before_external_classes():
    p = plan_of()
    kinds = [c.kind for c in p.peers]
    assert kinds == sorted(kinds, key=lambda k: k != "pod")
    assert [c.number for c in p.peers] == list(range(1, len(p.peers) + 1))
    assert kinds.count("external") == 1  # nodes and world: one class without blocks


# --- named ports ---------------------------------------------------------------------------


def test_ingress_named_port_resolves_on_each_local_profile():
    p = plan_of(
        policy(
            "http",
            "a",
            "podSelector: {matchLabels: {app: web}}\ningress: [{ports: [{port: http}]}]",
        )
    )
    v = rule_verdict(p, "a/http", "ingress", 0)
    assert entries(p, "node-1") == {
        (1, ANY, IN, TCP, 8080, FULL, v),  # web-1, web-2
        (2, ANY, IN, TCP, 9090, FULL, v),  # web-3
    }


def test_egress_named_port_resolves_per_destination_class():
    p = plan_of(
        policy(
            "out",
            "b",
            """
            podSelector: {}
            egress:
              - to: [{namespaceSelector: {}}]
                ports: [{port: http}]
              - ports: [{port: dns, protocol: UDP}, {port: dns}]
            """,
        )
    )
    prof = endpoint(p, "b/db")["profile"]
    v0, v1 = rule_verdict(p, "b/out", "egress", 0), rule_verdict(p, "b/out", "egress", 1)
    assert entries(p, "node-2") == {
        (prof, peer_of(p, "a/web-1"), EG, TCP, 8080, FULL, v0),
        (prof, peer_of(p, "a/web-3"), EG, TCP, 9090, FULL, v0),
        (prof, peer_of(p, "a/api"), EG, TCP, 9090, FULL, v0),
        # No `to`: still one entry per pod class that has the port, never PEER_ANY; the TCP
        # port called dns exists nowhere.
        (prof, peer_of(p, "a/api"), EG, UDP, 53, FULL, v1),
    }
    flags = endpoint(p, "b/db")["flags"]
    assert flags == F["ENDPOINT_F_EGRESS_ISOLATED"] | F["ENDPOINT_F_INGRESS_ISOLATED"]


def test_unresolvable_named_port_gives_no_entry():
    p = plan_of(
        policy(
            "np",
            "a",
            "podSelector: {matchLabels: {app: api}}\n"
            "ingress: [{ports: [{port: pg}, {port: http, protocol: UDP}]}]",
        )
    )
    assert entries(p, "node-2") == set()


# --- capacity -------------------------------------------------------------------------------


def test_capacities_are_powers_of_two_with_headroom():
    many = "".join(
        policy(f"p{i}", "a", f"podSelector: {{}}\ningress: [{{ports: [{{port: {1000 + i}}}]}}]")
        for i in range(60)
    )
    p = plan_of(many)
    n = max(len(x.maps["netcc_policy_exact"]) for x in p.nodes)
    cap = p.capacities["NETCC_MAX_POLICY_EXACT"]
    assert n == 120  # two profiles in namespace a on each node, 60 entries each
    assert cap >= n + n // 4 and cap & (cap - 1) == 0


def lower_limits(monkeypatch: pytest.MonkeyPatch, **limits: int) -> None:
    """The capacity registry with some limits lowered (the planner reads it, nothing else)."""
    lowered = tuple(
        replace(c, limit=limits[c.name]) if c.name in limits else c for c in capacity.CAPACITIES
    )
    monkeypatch.setattr(capacity, "CAPACITIES", lowered)


def test_capacity_error_names_the_table(monkeypatch):
    lower_limits(monkeypatch, NETCC_MAX_POLICY=1, NETCC_MAX_VERDICTS=33)
    cluster = cluster_of(policy("p", "a", "podSelector: {}\ningress: [{}, {ports: [{port: 1}]}]"))
    with pytest.raises(CapacityError) as e:
        plan(resolve(cluster))
    msgs = [m for m, _ in e.value.problems]
    assert any("NETCC_MAX_POLICY" in m and "at most 1" in m for m in msgs)
    assert any("NETCC_MAX_VERDICTS" in m for m in msgs)
    assert all(path == "spec" for _, path in e.value.problems)


def test_capacity_error_through_compile_spec_is_a_located_spec_error(monkeypatch, tmp_path):
    monkeypatch.setenv("NETCC_CACHE_DIR", str(tmp_path))  # no cached tree for this spec
    lower_limits(monkeypatch, NETCC_MAX_ENDPOINTS=2)
    text = spec_text()
    with pytest.raises(SpecError) as e:
        compile_spec(text.encode(), "unit.yaml")
    (d,) = e.value.diagnostics
    assert d.severity == "error"
    assert d.path == "spec"
    assert "needs 3 entries in NETCC_MAX_ENDPOINTS" in d.message
    assert "at most 2" in d.message
    # Located at the value of `spec:` (its first key, on the next line).
    spec_line = text.splitlines().index("spec:") + 1
    assert (d.line, d.col) == (spec_line + 1, 3)
    assert d.format("unit.yaml").startswith(f"unit.yaml:{spec_line + 1}:3: error: needs 3 ")


def test_capacity_within_limits_is_capped_at_the_limit(monkeypatch):
    lower_limits(monkeypatch, NETCC_MAX_ENDPOINTS=3)
    p = plan_of()
    assert p.capacities["NETCC_MAX_ENDPOINTS"] == 3


def test_the_planner_refuses_a_wrong_entry_before_anything_is_emitted(monkeypatch) -> None:
    import netcc.plan.endpoints

    monkeypatch.setattr(netcc.plan.endpoints, "UNBOUND", 2**32)  # ifindex: 32 bits
    with pytest.raises(EntryError) as e:
        plan_of()
    assert str(e.value) == (
        "map netcc_endpoints on node node-1 entry 0 (a/web-1): value field ifindex: "
        "4294967296 is not an integer of 32 bits"
    )
