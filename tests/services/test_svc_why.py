"""`netcc why` through a service agrees with the compiled programs in the kernel: for every pod
and service port, many connections are sent through the client's `netcc_from_container`
(translation and egress policy) and the chosen backend's `netcc_to_container` (ingress policy);
what the kernel lets through to each backend is what `why` says of that backend. Plus the
NodePort answers and the lint finding for NodePorts that undo ipBlock rules."""

import json

import pytest
from clirun import run as cli
from kernelenv import compile_to
from svcpackets import fields, run
from svcspecs import SPEC

from netcc.frontend import parse_spec
from netcc.loader.testrun import TC_ACT_OK, TC_ACT_REDIRECT, ipv4_packet
from netcc.review.lint import lint
from netcc.review.services import service_target, why_service
from netcc.review.why import resolve_address


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return compile_to(SPEC, tmp_path_factory.mktemp("why") / "out")


@pytest.fixture(scope="module")
def cluster():
    return parse_spec(SPEC.encode(), "spec.yaml")[0]


def _why(cluster, src: str, dst: str, port: int, protocol: str = "TCP") -> dict:
    target = service_target(cluster, dst, port, protocol)
    assert target is not None
    return why_service(cluster, resolve_address(cluster, src), target, None)


def test_kernel_why_through_cluster_ips_matches_the_datapath(k, out, cluster):
    pods = {w.key: w for w in cluster.workloads if w.ips}
    checked = 0
    for service in cluster.services:
        for sp in service.ports:
            if sp.protocol not in ("TCP", "UDP"):
                continue
            proto = sp.protocol.lower()
            for client in pods.values():
                ip = str(client.ips[0])
                answer = _why(cluster, client.key, str(service.cluster_ip), sp.port, sp.protocol)
                expected = {b["address"]: b["verdict"] == "allow" for b in answer["backends"]}
                seen: dict[str, bool] = {}
                for sport in range(52000, 52040):
                    pkt = ipv4_packet(ip, str(service.cluster_ip), proto, sport, sp.port, "S")
                    r = run(k, client.node, "netcc_from_container", pkt)
                    if not expected:  # no backend: dropped, whatever the policy
                        assert r.retval != TC_ACT_OK
                        continue
                    if r.retval == TC_ACT_REDIRECT:  # hairpin: back into the client itself
                        seen[ip] = True
                        continue
                    f = fields(r.data_out)
                    backend = next(w for w in pods.values() if str(w.ips[0]) == f["dst"])
                    ok = r.retval == TC_ACT_OK
                    if ok:
                        r2 = run(k, backend.node, "netcc_to_container", r.data_out)
                        ok = r2.retval == TC_ACT_OK
                    assert seen.setdefault(f["dst"], ok) == ok, (client.key, service.key, f)
                for address, ok in seen.items():
                    assert ok == expected[address], (client.key, service.key, address, answer)
                    checked += 1
    assert checked >= 30


def test_why_nodeport_from_outside(cluster):
    # np-cluster reached at node-1: web-1 (on node-1) sees the client, the others node-1
    doc = _why(cluster, "198.51.100.7", "node-1", 30081)
    by = {b["backend"]: b for b in doc["backends"]}
    assert by["app/web-1"]["source_seen"] == "198.51.100.7"
    assert by["app/web-2"]["source_seen"] == "192.168.50.11"
    assert doc["service"]["kind"] == "NodePort" and doc["verdict"] == "allow"
    # np-local at node-1 serves only web-1
    doc = _why(cluster, "198.51.100.7", "192.168.50.11", 30080)
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
