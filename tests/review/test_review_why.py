"""`netcc why` gives Kubernetes' verdict, with the chain behind it, and fails cleanly."""

import json
from pathlib import Path

import pytest
from review_support import SHOP, run
from scenarios import load, scenario_names, scenario_spec


@pytest.fixture(scope="module")
def scenario_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("scenarios")
    files = {}
    for name in scenario_names():
        files[name] = d / f"{name}.yaml"
        files[name].write_text(scenario_spec(name))
    return files


@pytest.mark.parametrize("name", scenario_names())
def test_why_json_gives_the_kubernetes_verdict(name, scenario_files):
    _, probes = load(name)
    wrong = []
    for p in probes:
        proto = {6: "TCP", 17: "UDP", 132: "SCTP", 1: "ICMP"}[p.proto]
        args = ["why", scenario_files[name], "--from", p.src, "--to", p.dst, "--protocol", proto]
        if p.proto != 1:
            args += ["--port", p.port]
        r = run(*args, "--json")
        assert r.code == 0, r.stderr
        doc = json.loads(r.stdout)
        if doc["verdict"] != ("allow" if p.allowed else "deny"):
            wrong.append(f"{p}: {doc['verdict']}")
        # the verdict is both sides' verdicts
        assert (doc["verdict"] == "allow") == (
            doc["egress"]["allowed"] and doc["ingress"]["allowed"]
        )
    assert not wrong, "\n".join(wrong)


def why_json(*args) -> dict:
    r = run("why", SHOP, *args, "--json")
    assert r.code == 0, r.stderr
    return json.loads(r.stdout)


def test_allowed_chain_cites_both_rules_with_positions():
    doc = why_json("--from", "shop/frontend", "--to", "shop/cart", "--port", "7000")
    assert doc["verdict"] == "allow"
    assert doc["from"] == {
        "ip": "10.244.1.10",
        "kind": "pod",
        "workload": "shop/frontend",
        "node": "node-1",
    }
    eg, ing = doc["egress"], doc["ingress"]
    assert (eg["reason"], ing["reason"]) == ("rule", "rule")
    assert [(r["policy"], r["index"], r["line"]) for r in eg["rules"]] == [
        ("shop/frontend-egress", 0, 96)
    ]
    assert [(r["policy"], r["path"], r["line"], r["col"]) for r in ing["rules"]] == [
        ("shop/cart", "spec.policies[3].spec.ingress[0]", 104, 13)
    ]
    assert "shop/default-deny" in eg["isolated_by"]


def test_default_deny_names_the_isolating_policies_and_the_near_misses():
    doc = why_json("--from", "shop/frontend", "--to", "shop/cache", "--port", "6379")
    assert doc["verdict"] == "deny"
    eg = doc["egress"]
    assert eg["reason"] == "default-deny" and not eg["allowed"] and eg["rules"] == []
    assert eg["isolated_by"] == ["shop/default-deny", "shop/frontend-egress"]
    assert [(r["policy"], r["peers_match"], r["ports_match"]) for r in eg["considered"]] == [
        ("shop/frontend-egress", False, False)
    ]
    ing = doc["ingress"]
    assert ing["reason"] == "default-deny"
    assert [(r["policy"], r["peers_match"], r["ports_match"]) for r in ing["considered"]] == [
        ("shop/cache", False, True)
    ]


def test_external_source_and_own_node():
    doc = why_json("--from", "203.0.113.9", "--to", "shop/frontend", "--port", "8080")
    assert doc["verdict"] == "deny"
    assert doc["egress"]["reason"] == "not-a-pod" and doc["egress"]["pod"] is None
    assert doc["ingress"]["reason"] == "default-deny"
    doc = why_json("--from", "192.0.2.7", "--to", "10.244.1.10", "--port", "8080")
    assert doc["verdict"] == "allow"
    doc = why_json("--from", "10.244.1.1", "--to", "shop/frontend", "--port", "22")
    assert doc["verdict"] == "allow" and doc["ingress"]["reason"] == "host"
    doc = why_json("--from", "monitoring/prometheus", "--to", "shop/cart", "--protocol", "icmp")
    assert doc["verdict"] == "deny" and doc["port"] == 0 and doc["protocol"] == "ICMP"
    assert doc["egress"]["reason"] == "unisolated"


def test_text_answer():
    r = run("why", SHOP, "--from", "shop/frontend", "--to", "shop/cart", "--port", "7000")
    assert r.code == 0
    lines = r.stdout.splitlines()
    assert lines[0] == "shop/frontend (10.244.1.10) -> shop/cart (10.244.2.10) 7000/TCP: allow"
    assert any("shop/frontend-egress egress[0] at" in line and ":96:13" in line for line in lines)
    r = run("why", SHOP, "--from", "shop/cart", "--to", "shop/frontend", "--port", "8080")
    assert "egress of shop/cart: DROP, default deny" in r.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "x/y", "--to", "shop/cart", "--port", "1"], "no workload x/y in the spec"),
        (["--from", "shop/cart", "--to", "300.1.1.1", "--port", "1"], "neither an IPv4"),
        (["--from", "shop/cart", "--to", "shop/cart"], "--port is required for TCP"),
        (["--from", "shop/cart", "--to", "shop/cart", "--port", "0"], "not a port"),
        (
            ["--from", "shop/cart", "--to", "shop/cart", "--port", "1", "--protocol", "x"],
            "unknown protocol",
        ),
    ],
)
def test_bad_questions_fail_cleanly(args, message):
    r = run("why", SHOP, *args)
    assert r.code == 1
    assert r.stdout == ""
    assert message in r.stderr and "Traceback" not in r.stderr


def test_bad_spec_gives_the_compile_diagnostics(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SHOP.read_text().replace("ips: [10.244.1.10]", "ips: [10.250.1.10]"))
    compiled = run("compile", bad, "-o", tmp_path / "out")
    why = run("why", bad, "--from", "1.1.1.1", "--to", "2.2.2.2", "--port", "1")
    assert compiled.code == why.code == 1
    diagnostics = [line for line in compiled.stderr.splitlines() if ": error: " in line]
    assert diagnostics and diagnostics == [
        line for line in why.stderr.splitlines() if ": error: " in line
    ]
    assert "Traceback" not in why.stderr
