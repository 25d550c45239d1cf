"""`netcc why` through a service (NodePort answers, errors, text), the lint finding for
NodePorts that undo ipBlock rules, and the review's services. That `why` agrees with the
compiled programs is test_svc_why_matches_the_kernel.py's job."""

import json

import pytest
from clirun import run as cli
from svcspecs import SPEC, why

from netcc.frontend import parse_spec
from netcc.review.lint import lint


@pytest.fixture(scope="module")
def cluster():
    return parse_spec(SPEC.encode(), "spec.yaml")[0]


def test_why_nodeport_from_outside(cluster):
    # np-cluster reached at node-1: web-1 (on node-1) sees the client, the others node-1
    doc = why(cluster, "198.51.100.7", "node-1", 30081)
    by = {b["backend"]: b for b in doc["backends"]}
    assert by["app/web-1"]["source_seen"] == "198.51.100.7"
    assert by["app/web-2"]["source_seen"] == "192.168.50.11"
    assert doc["service"]["kind"] == "NodePort" and doc["verdict"] == "allow"
    # np-local at node-1 serves only web-1
    doc = why(cluster, "198.51.100.7", "192.168.50.11", 30080)
    served = [b["backend"] for b in doc["backends"] if b["verdict"] == "allow"]
    assert served == ["app/web-1"] and doc["verdict"] == "partial"
    assert all(b["reason"] == "not-served" for b in doc["backends"] if b["verdict"] != "allow")


def test_why_service_errors_and_text(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    r = cli("why", spec, "--from", "app/client", "--to", "svc:app/nope", "--port", "80")
    assert r.code == 1 and "no service app/nope" in r.stderr
    r = cli("why", spec, "--from", "app/client", "--to", "svc:app/web", "--port", "81")
    assert r.code == 1 and "has no port 81/TCP" in r.stderr
    r = cli("why", spec, "--from", "app/client", "--to", "svc:app/empty", "--port", "80")
    assert r.code == 0 and "no backend" in r.stdout
    r = cli("why", spec, "--from", "app/client", "--to", "10.96.0.10", "--port", "80", "--json")
    doc = json.loads(r.stdout)
    assert doc["verdict"] == "allow" and {b["backend"] for b in doc["backends"]} == {
        "app/web-1",
        "app/web-2",
        "app/web-3",
    }


def test_lint_flags_nodeports_that_undo_ipblock_rules(cluster):
    """web-from-clients denies 10.244.0.0/16 from outside... which only pods use, so nothing is
    undone here; a spec whose policy excepts an outside range is flagged, and Local is not."""
    sources = parse_spec(SPEC.encode(), "spec.yaml")[1]
    assert not [d for d in lint(cluster, sources) if "NodePort" in d.message]
    text = SPEC.replace("except: [10.244.0.0/16]", "except: [10.244.0.0/16, 203.0.113.0/24]")
    c, sources = parse_spec(text.encode(), "spec.yaml")
    found = [d for d in lint(c, sources) if "NodePort" in d.message]
    assert len(found) == 1 and "app/np-cluster" in found[0].message
    assert "203.0.113.0/24" in found[0].message and found[0].path.endswith("externalTrafficPolicy")


def test_review_lists_services_and_what_outside_reaches_through_which_node():
    from netcc.review.report import build_report
    from netcc.review.report_md import render_markdown
    from netcc.review.source import Spec

    text = SPEC.replace("except: [10.244.0.0/16]", "except: [10.244.0.0/16, 203.0.113.0/24]")
    c, sources = parse_spec(text.encode(), "spec.yaml")
    report = build_report(Spec(text.encode(), "spec.yaml", c, sources))
    by = {e["port"]: e for e in report["services"]}
    cluster_np = by["app/np-cluster port http (TCP 80)"]
    assert "203.0.113.0/24" in cluster_np["warning"]
    blocked = next(
        o for o in cluster_np["from_outside"] if "203.0.113.0/24" in o["from"].split("; ")
    )
    # denied where the backend sees the client, let in where another node's address replaces it
    assert ("node-1", "app/web-1") not in {(r["node"], r["backend"]) for r in blocked["reaches"]}
    assert ("node-2", "app/web-1") in {(r["node"], r["backend"]) for r in blocked["reaches"]}
    local_np = by["app/np-local port http (TCP 80)"]
    assert local_np["warning"] is None
    blocked = next(o for o in local_np["from_outside"] if "203.0.113.0/24" in o["from"].split("; "))
    assert blocked["reaches"] == []
    assert by["app/empty port http (TCP 80)"]["backends"] == []
    md = render_markdown(report)
    assert "**Services**" in md and "⚠️ NodePort app/np-cluster" in md and "no backend" in md
