"""Enforcement in the lab: the node loader's datapath on real veths, real TCP and UDP.

One lab (3 nodes, 9 pods, two external hosts) with `labspecs.SPEC_POLICY` loaded on every
node. Every flow where a pod is at either end (pods, nodes and external hosts as the other
end) is probed on a set of TCP and UDP ports, and every verdict must equal the Python model
(`netcc.semantics.policy.evaluate`). The tests after that pick out what each feature must do:
default deny, pod and namespace selectors, ipBlock with except, named ports, endPort,
stateful replies, on one node and across nodes.
"""

from __future__ import annotations

import json
import os
from ipaddress import IPv4Address
from itertools import permutations

import pytest
from labspecs import (
    EXTERNAL_BLOCKED,
    EXTERNAL_OK,
    EXTERNALS,
    NODES,
    PODS,
    SPEC_POLICY,
    lab_namespaces,
    netcc,
    teardown_lab,
)

from netcc.frontend import parse_spec
from netcc.lab import core as lab
from netcc.lab import netns as lab_netns
from netcc.lab.state import STATE_DIR
from netcc.model.types import PROTOCOL_NUMBERS
from netcc.pipeline import compile_spec
from netcc.semantics.policy import evaluate
from netcc.write.tree import write_tree

PORTS = [(p, "TCP") for p in (7000, 7100, 8080, 6379, 50051, 9100, 9150, 9999)]
PORTS += [(p, "UDP") for p in (53, 5353, 4005, 4011)]


@pytest.fixture(scope="module")
def enforced(module_root, loader, spec_files, tmp_path_factory):
    """The policy lab, loaded from a precompiled OUT; down at the end, whatever happens."""
    out = tmp_path_factory.mktemp("lab-out") / "out"
    write_tree(compile_spec(SPEC_POLICY.encode(), "lab-policy.yaml"), out)
    before = lab_namespaces()
    try:
        report = lab.up(spec_files["policy"], external=EXTERNALS, artifacts=out)
        t = report.timings
        print(
            f"\nlab up with the loader (3 nodes, 9 pods, external): {t['total']:.2f} s "
            f"(topology {t['topology']:.2f} s, loader {t['loader']:.2f} s)"
        )
        yield {"out": out, "report": report, "before": before}
    finally:
        teardown_lab()


@pytest.fixture(scope="module")
def cluster():
    return parse_spec(SPEC_POLICY, "lab-policy.yaml")[0]


def _flows() -> list[tuple[str, str]]:
    others = [*EXTERNALS, *NODES]
    pairs = list(permutations(PODS, 2))
    pairs += [(p, o) for p in PODS for o in others] + [(o, p) for p in PODS for o in others]
    return pairs


@pytest.fixture(scope="module")
def matrix(enforced, cluster):
    """(src, dst, port, protocol) -> (real allowed, model allowed, detail), all probed at once."""
    probes = [(s, d, port, proto) for s, d in _flows() for port, proto in PORTS]
    results = lab.probe_many(probes)
    table = {}
    for key, r in zip(probes, results, strict=True):
        model = evaluate(
            cluster,
            IPv4Address(r.probe.src_ip),
            IPv4Address(r.probe.dst_ip),
            PROTOCOL_NUMBERS[key[3]],
            key[2],
        )
        table[key] = (r.allowed, model.allowed, r.detail)
    return table


def test_up_time_with_loader(enforced):
    t = enforced["report"].timings
    print(f"\nmeasured up time with the loader: {t['total']:.2f} s (limit 5 s)")
    assert t["total"] <= 5.0
    assert set(enforced["report"].loaded) == set(NODES)


def test_every_probe_matches_the_model(matrix):
    wrong = [
        f"{s} -> {d} {port}/{proto}: kernel {'allow' if real else 'deny'} ({detail}), "
        f"model {'allow' if model else 'deny'}"
        for (s, d, port, proto), (real, model, detail) in matrix.items()
        if real != model
    ]
    allowed = sum(1 for real, _, _ in matrix.values() if real)
    print(
        f"\n{len(matrix)} probes (TCP and UDP): {allowed} allowed, {len(matrix) - allowed} "
        f"denied, {len(matrix) - len(wrong)} agree with netcc.semantics.policy.evaluate"
    )
    assert not wrong, "\n".join(wrong[:40])
    assert 0 < allowed < len(matrix)


def expect(matrix, cases):
    """Each (src, dst, port, protocol, allowed) must be what the packets and the model say."""
    for src, dst, port, proto, want in cases:
        real, model, detail = matrix[(src, dst, port, proto)]
        where = f"{src} -> {dst} {port}/{proto}"
        assert model == want, f"{where}: the model says {model}, the test expects {want}"
        assert real == want, f"{where}: the packets say {real} ({detail}), expected {want}"


def test_default_deny(matrix):
    expect(
        matrix,
        [
            ("dev/tools", "shop/cache", 6379, "TCP", False),  # ingress: only the cart
            ("shop/cache", "dev/tools", 53, "UDP", False),  # egress: nothing allowed
            ("shop/cache", EXTERNAL_OK, 9999, "TCP", False),
            ("dev/tools", "monitoring/grafana", 9999, "TCP", True),  # no policy there
            ("monitoring/grafana", "dev/tools", 53, "UDP", True),
        ],
    )


def test_pod_and_namespace_selectors(matrix):
    expect(
        matrix,
        [
            ("shop/cart", "payments/payments-api", 50051, "TCP", True),  # ns AND pod
            ("shop/search", "payments/payments-api", 50051, "TCP", False),  # search egress
            ("dev/tools", "payments/payments-api", 50051, "TCP", False),  # wrong namespace
            ("monitoring/prometheus", "payments/payments-api", 9100, "TCP", True),
            ("dev/tools", "payments/payments-api", 9100, "TCP", False),
            ("payments/payments-api", "payments/ledger", 9999, "TCP", True),  # any port
            ("monitoring/prometheus", "payments/ledger", 9999, "TCP", False),
            ("shop/cart", "shop/cache", 6379, "TCP", True),
            ("shop/frontend", "shop/cache", 6379, "TCP", False),
        ],
    )


def test_ipblock_and_the_external_host(matrix):
    expect(
        matrix,
        [
            (EXTERNAL_OK, "shop/frontend", 8080, "TCP", True),
            (EXTERNAL_BLOCKED, "shop/frontend", 8080, "TCP", False),  # except
            (EXTERNAL_OK, "payments/ledger", 4005, "UDP", True),
            (EXTERNAL_BLOCKED, "payments/ledger", 4005, "UDP", False),  # outside the cidr
            ("dev/tools", "shop/frontend", 8080, "TCP", True),  # 0.0.0.0/0 holds pods too
            ("node-2", "shop/frontend", 8080, "TCP", True),  # and nodes
            ("shop/cart", EXTERNAL_OK, 53, "UDP", True),  # egress to any peer, UDP 53
            ("shop/cart", EXTERNAL_OK, 9999, "TCP", False),
            (EXTERNAL_OK, "shop/cart", 53, "UDP", False),
        ],
    )


def test_named_ports(matrix):
    expect(
        matrix,
        [
            ("shop/frontend", "shop/cart", 7000, "TCP", True),  # api = 7000 on the cart
            ("shop/frontend", "shop/search", 7100, "TCP", True),  # api = 7100 on search
            ("shop/frontend", "shop/cart", 7100, "TCP", False),
            ("shop/frontend", "shop/search", 7000, "TCP", False),
            ("shop/frontend", "shop/search", 5353, "UDP", True),  # query is UDP
            ("shop/frontend", "shop/cart", 5353, "UDP", False),  # the cart has no query port
            ("shop/frontend", "shop/search", 5353, "UDP", True),
        ],
    )


def test_end_port(matrix):
    expect(
        matrix,
        [
            ("monitoring/prometheus", "shop/cart", 9150, "TCP", True),  # 9100-9199
            ("monitoring/grafana", "shop/search", 9100, "TCP", True),
            ("monitoring/prometheus", "shop/cart", 9999, "TCP", False),
            ("monitoring/prometheus", "shop/cache", 9100, "TCP", False),  # tier data
            (EXTERNAL_OK, "payments/ledger", 4011, "UDP", False),  # 4000-4010
        ],
    )


def test_stateful_replies(matrix):
    """Echoes come back through the other side's default deny; new flows that way do not."""
    expect(
        matrix,
        [
            ("shop/frontend", "shop/cart", 7000, "TCP", True),
            ("shop/cart", "shop/frontend", 8080, "TCP", False),
            ("shop/frontend", "shop/search", 5353, "UDP", True),
            ("shop/search", "shop/frontend", 5353, "UDP", False),
            ("shop/cart", EXTERNAL_OK, 53, "UDP", True),
            (EXTERNAL_OK, "shop/cart", 53, "UDP", False),
        ],
    )


def test_same_node_and_across_nodes(matrix):
    expect(
        matrix,
        [
            ("shop/frontend", "shop/search", 7100, "TCP", True),  # node-1, node-1
            ("shop/frontend", "shop/cart", 7000, "TCP", True),  # node-1, node-2
            ("shop/search", "shop/frontend", 8080, "TCP", False),  # node-1, node-1
            ("shop/cart", "shop/frontend", 8080, "TCP", False),  # node-2, node-1
            ("node-2", "shop/cache", 6379, "TCP", True),  # its own node: host
            ("node-2", "shop/cache", 9999, "TCP", True),
            ("node-1", "shop/cache", 9999, "TCP", False),  # another node: policy
        ],
    )


def test_probe_cli_names_the_rules(enforced):
    r = netcc("lab", "probe", "shop/frontend", "shop/cart", "7000/tcp", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["verdict"] == "allow" and doc["trace_agrees"] is True
    hops = [(h["node"], h["direction"], h["passed"]) for h in doc["decided_by"]]
    assert hops == [("node-1", "egress", True), ("node-2", "ingress", True)]
    assert "shop/frontend-egress" in doc["decided_by"][0]["rule"]
    assert "shop/api-ingress" in doc["decided_by"][1]["rule"]
    # The loaded datapath's own counters moved under the verdicts the trace names.
    moved = {(c["node"], c["verdict"]) for c in doc["counted"]}
    assert {(h["node"], h["verdict"]) for h in doc["decided_by"]} <= moved
    r = netcc("lab", "probe", EXTERNAL_BLOCKED, "shop/frontend", "8080/tcp")
    assert r.returncode == 4, r.stderr
    assert "denied" in r.stdout and "shop/frontend ingress" in r.stdout
    assert "counters moved on the loaded nodes: node-1 DENY_" in r.stdout


def test_status_reports_each_node(enforced):
    r = netcc("lab", "status", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "up" and doc["out"] == str(enforced["out"].resolve())
    assert set(doc["loader"]) == set(NODES)
    for node, info in doc["loader"].items():
        assert info, node
    r = netcc("lab", "status")
    assert r.returncode == 0 and "loader   node-1" in r.stdout


def test_down_removes_the_loaded_lab(enforced):
    """Last: down removes hooks, pins, the loader's state and the namespaces."""
    made = lab_namespaces() - enforced["before"]
    inodes = {lab_netns.inode(n) for n in made}
    assert os.path.isdir(lab.PIN_BASE)
    report = lab.down()
    assert not report.problems, report.problems
    assert {f"loader on {n}" for n in NODES} <= set(report.removed)  # the loader's detach
    assert not (lab_namespaces() & made)
    assert not os.path.exists(lab.PIN_BASE)
    assert not STATE_DIR.exists()
    assert not lab_netns.pids_in(inodes)
