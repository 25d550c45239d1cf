"""`review`, `why`, `diff` and `lint` on workload classes, and on a spec whose workloads are all
classes (`classes_only.yaml`): a class is one party, `NS/CLASS (class)`, standing for its pods
on every node; its flows agree with the reference model address by address."""

from __future__ import annotations

import json
import random
import re
import subprocess
from ipaddress import IPv4Address
from pathlib import Path

import pytest
import yaml
from review_support import (
    ROOT,
    assert_matrix_drawn,
    needs_browser,
    probe_ports,
    run,
    spec_of,
    write_spec,
)

from netcc.review.connectivity import Connectivity
from netcc.review.report import build_report
from netcc.review.report_html import render_html
from netcc.review.report_md import render_markdown
from netcc.semantics.policy import evaluate

HERE = Path(__file__).resolve().parent
ONLY = HERE / "classes_only.yaml"
MIXED = ROOT / "tests" / "golden" / "specs" / "classes.yaml"


def only_doc() -> dict:
    return yaml.safe_load(ONLY.read_text())


def report_of(path: Path) -> dict:
    return build_report(spec_of(path.read_text(), path.name))


def compile_to(spec: Path, out: Path) -> Path:
    r = run("compile", spec, "-o", out)
    assert r.code == 0, r.stderr
    return out


# -- connectivity ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [ONLY, MIXED], ids=lambda p: p.name)
def test_class_flows_agree_with_the_model_at_every_sampled_address(path):
    cluster = spec_of(path.read_text(), path.name).cluster
    c = Connectivity(cluster)
    rng = random.Random(7)
    addresses = [a for p in c.parties for a in p.sample_ips(c.taken())]
    for p in c.pods:  # the last address of each block on each node, too
        addresses += [net.broadcast_address for net in p.blocks]
    ports = [*probe_ports(cluster), 7000, 8080, 9000, 5432]
    wrong = []
    for _ in range(3000):
        src, dst = rng.choice(addresses), rng.choice(addresses)
        proto = rng.choice((6, 17, 1))
        port = 0 if proto == 1 else rng.choice(ports)
        model = evaluate(cluster, src, dst, proto, port)
        if model.egress is None and model.ingress is None:
            continue
        if c.allows(src, dst, proto, port) != model.allowed:
            wrong.append(f"{src} -> {dst} {port}/{proto}: model {model.allowed}")
    assert not wrong, "\n".join(wrong[:20])


def test_a_class_is_one_party_and_its_pods_are_judged_among_themselves():
    c = Connectivity(spec_of(ONLY.read_text(), "classes_only.yaml").cluster)
    cart = c.party_named("shop/cart (class)")
    assert cart is not None and cart.is_pod and cart.is_class
    assert [str(n) for n in cart.blocks] == ["10.244.1.128/26", "10.244.2.128/26"]
    assert c.party_of(IPv4Address("10.244.2.130")) is cart
    # cart's egress allows cart, its ingress admits only web (on api) and monitoring
    assert not c.flow(cart, cart).allowed
    web = c.party_named("shop/web-blue (class)")
    assert str(c.flow(web, cart).allowed) == "TCP 7000"
    worker = c.party_named("shop/worker (class)")
    assert c.flow(worker, worker).allowed.is_all


# -- review --------------------------------------------------------------------------------------


def test_review_of_a_spec_of_classes_only():
    report = report_of(ONLY)
    assert report["summary"]["workloads"] == 0 and report["summary"]["classes"] == 5
    names = [r["name"] for r in report["matrix"]["rows"]]
    assert names[:5] == [
        "monitoring/prometheus (class)",
        "shop/cart (class)",
        "shop/web-blue (class)",
        "shop/web-green (class)",
        "shop/worker (class)",
    ]
    i = names.index("shop/cart (class)")
    assert report["matrix"]["cells"][i][i]["level"] == "none"  # not "self": other pods
    cart = next(w for w in report["workloads"] if w["name"] == "shop/cart (class)")
    assert cart["kind"] == "class" and cart["node"] is None
    assert cart["blocks"] == ["10.244.1.128/26", "10.244.2.128/26"]
    incoming = {x["from"]: x["ports"] for x in cart["ingress"]}
    assert incoming["shop/web-blue (class)"] == "TCP 7000"
    assert incoming["monitoring/prometheus (class)"] == "all"
    assert "shop/worker (class)" not in incoming
    exposed = {(e["workload"], e["from"]): e["ports"] for e in report["exposure"]["external"]}
    assert exposed[("shop/web-blue (class)", "0.0.0.0/0")] == "TCP 8080"
    assert ("shop/cart (class)", "0.0.0.0/0") not in exposed
    every = {e["workload"]: e["ports"] for e in report["exposure"]["every_namespace"]}
    assert every == {
        "monitoring/prometheus (class)": "all",
        "shop/web-blue (class)": "TCP 8080",
        "shop/web-green (class)": "TCP 8080",
        "shop/worker (class)": "all",
    }
    assert [ns["classes"] for ns in report["namespaces"]] == [
        ["shop/cart", "shop/web-blue", "shop/web-green", "shop/worker"],
        ["monitoring/prometheus"],
    ]


def test_markdown_and_html_show_the_classes():
    report = report_of(ONLY)
    md = render_markdown(report)
    assert "0 workloads · 5 workload classes" in md and "isolated: 3/5 ingress" in md
    assert "| shop/cart (class) | any (class) |" in md
    assert "any node · blocks 10.244.1.128/26, 10.244.2.128/26" in md
    html = render_html(report)
    assert "<h2>Workload classes</h2>" in html
    assert '<a href="#shop/cart (class)">shop/cart</a>' in html
    assert '<details id="shop/cart (class)">' in html
    assert "<code>shop</code>: <code>app</code>, <code>role</code>" in html
    assert "3/5</b>ingress isolated" in html
    assert set(re.findall(r"https?://[^\"' <]+", html)) == {"http://www.w3.org/2000/svg"}
    assert "shop/cart (class)</title>" in html  # a row and column of the matrix


@needs_browser
def test_html_of_classes_renders_in_a_headless_browser(tmp_path):
    assert_matrix_drawn(render_html(report_of(ONLY)), tmp_path)


# -- why -----------------------------------------------------------------------------------------


def test_why_between_classes_of_a_spec_of_classes_only(tmp_path):
    out = compile_to(ONLY, tmp_path / "out")
    for source in (ONLY, out):
        r = run(
            "why", source, "--from", "shop/web-green@node-2", "--to", "shop/cart", "--port",
            "7000", "--json",
        )  # fmt: skip
        assert r.code == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["verdict"] == "allow"
        rule = doc["ingress"]["rules"][0]
        assert (rule["policy"], rule["index"], rule["line"]) == ("shop/cart", 0, 52)
    r = run("why", ONLY, "--from", "shop/cart@node-1", "--to", "shop/cart@node-2", "--port", "9")
    assert r.code == 0 and ": deny" in r.stdout.splitlines()[0]


# -- lint ----------------------------------------------------------------------------------------


LINT = [
    "15:7: warning: namespace 'monitoring' is fully open: no policy isolates any of its 1 "
    "workload(s), for ingress or egress (spec.namespaces[1])",
    "21:7: note: classes shop/web-blue and shop/web-green are told apart only by label keys no "
    "selector reads (track): the same policy applies to both (spec.workloads[1])",
    "28:16: warning: class shop/cart reserves 64 addresses (perNode 50 rounded up) in every "
    "node's podCIDR: 25% of the 256 addresses of the smallest node podCIDR (10.244.1.0/24 of "
    "node node-1); every node keeps them for it whether its pods run there or not "
    "(spec.workloads[2].perNode)",
    "30:7: warning: class shop/worker is open for ingress: no policy selects its pods, while "
    "every other workload or class of namespace 'shop' is isolated (shop/cart, shop/web-blue, "
    "shop/web-green) (spec.workloads[3])",
]


def test_lint_of_a_spec_of_classes_only():
    r = run("lint", ONLY)
    assert r.code == 0, r.stderr
    assert r.stdout.splitlines() == [f"{ONLY}:{line}" for line in LINT]
    assert "netcc: 3 warning(s), 1 note(s)" in r.stderr
    strict = run("lint", ONLY, "--strict")
    assert strict.code == 1
    assert [line.split(": ")[1] for line in strict.stdout.splitlines()] == [
        "error",
        "note",
        "error",
        "error",
    ]


def test_lint_counts_classes_as_workloads(tmp_path):
    """A policy selecting only a class selects something; a class is its namespace's member;
    a named port resolves on class pods. The mixed golden spec has nothing to say."""
    r = run("lint", MIXED)
    assert r.code == 0 and r.stdout == "", r.stdout


def test_lint_warns_when_blocks_fill_the_smallest_podcidr(tmp_path):
    doc = only_doc()
    for w in doc["spec"]["workloads"]:
        w["perNode"] = 40  # five blocks of 64 in a /23 (512): 62%, no warning
    doc["spec"]["nodes"][0]["podCIDR"] = "10.244.2.0/23"
    doc["spec"]["nodes"][1]["podCIDR"] = "10.244.4.0/23"
    r = run("lint", write_spec(tmp_path / "a.yaml", doc))
    assert "class(es) take" not in r.stdout
    for w, per_node in zip(doc["spec"]["workloads"], (100, 100, 50, 50, 20), strict=True):
        w["perNode"] = per_node  # 2 x 128 + 2 x 64 + 32 = 416 of 512: 81%
    r = run("lint", write_spec(tmp_path / "b.yaml", doc))
    assert r.code == 0, r.stderr
    assert (
        "warning: the blocks of 5 class(es) take 416 (81%) of the 512 addresses of the smallest "
        "node podCIDR (10.244.2.0/23 of node node-1), 3 more are reserved (2 per node and static "
        "addresses), 93 are left: a new or larger class may not fit, or move another class's "
        "block (whose running pods must then be recreated)"
    ) in r.stdout


# -- diff ----------------------------------------------------------------------------------------


def _changed_doc() -> dict:
    doc = only_doc()
    workloads = doc["spec"]["workloads"]
    workloads.append({"name": "search", "namespace": "shop", "labels": {"app": "search"}})
    next(w for w in workloads if w["name"] == "worker")["perNode"] = 16  # its block grows
    workloads[:] = [w for w in workloads if w["name"] != "web-green"]
    doc["spec"]["policies"][1]["spec"]["podSelector"] = {
        "matchLabels": {"app": "cart"},
        "matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}],
    }
    doc["spec"]["policies"][0]["spec"]["ingress"][0]["ports"].append({"port": 443})
    return doc


def test_diff_of_compiled_outs_reports_class_changes(tmp_path):
    old = compile_to(ONLY, tmp_path / "old")
    new_spec = write_spec(tmp_path / "new.yaml", _changed_doc())
    new = compile_to(new_spec, tmp_path / "new")
    r = run("diff", old, new, "--json")
    assert r.code == 1, r.stderr
    doc = json.loads(r.stdout)
    kinds = {(c["kind"], c["name"]) for c in doc["classes"]}
    assert ("added", "shop/search") in kinds
    assert ("removed", "shop/web-green") in kinds
    assert ("moved", "shop/worker") in kinds
    assert ("keys", "shop") in kinds
    moved = next(c for c in doc["classes"] if c["kind"] == "moved" and c["name"] == "shop/worker")
    assert moved["from"]["size"] == 8 and moved["to"]["size"] == 16
    assert moved["message"].startswith("block of shop/worker moved from offset ")
    assert moved["message"].endswith(": its running pods must be recreated")
    keys = next(c for c in doc["classes"] if c["kind"] == "keys")
    assert keys["to"] == ["app", "role", "tier", "track"]
    # the flows of classes compare like workloads' flows
    assert {
        "from": "0.0.0.0/0",
        "to": "shop/web-blue (class)",
        "protocol": "TCP",
        "ports": "443",
    } in doc["added"]
    assert any(c["from"] == "shop/web-green (class)" for c in doc["removed"])
    assert any(c["to"] == "shop/search (class)" for c in doc["added"])
    text = run("diff", old, new)
    assert text.code == 1
    assert "~ block of shop/worker moved from offset" in text.stdout
    assert text.stdout.splitlines()[-1].endswith("class change(s)")
    assert run("diff", old, ONLY).code == 0
    same = json.loads(run("diff", old, ONLY, "--json").stdout)
    assert same == {"added": [], "removed": [], "classes": []}


def test_diff_reports_a_class_whose_labels_changed(tmp_path):
    """A class whose labels changed now holds other pods: nothing else moves."""
    doc = only_doc()
    doc["spec"]["workloads"][3]["labels"] = {"role": "batch"}
    r = run("diff", ONLY, write_spec(tmp_path / "b.yaml", doc), "--json")
    assert r.code == 1
    changes = json.loads(r.stdout)["classes"]
    assert [(c["kind"], c["name"]) for c in changes] == [("labels", "shop/worker")]
    assert changes[0]["message"] == (
        "pods of class shop/worker are now those with app absent, role=batch, track absent "
        "(were app absent, role=worker, track absent)"
    )


def test_diff_through_git_revisions_of_an_out(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)

    git("init", "-q")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    compile_to(ONLY, repo / "out")
    git("add", "out")
    git("commit", "-qm", "one")
    compile_to(write_spec(tmp_path / "new.yaml", _changed_doc()), repo / "out")
    monkeypatch.chdir(repo)
    r = run("diff", "git:HEAD:out", "out", "--json")
    assert r.code == 1, r.stderr
    assert ("moved", "shop/worker") in {
        (c["kind"], c["name"]) for c in json.loads(r.stdout)["classes"]
    }
    assert run("diff", "git:HEAD:out", "git:HEAD:out").code == 0


def test_diff_between_specs_without_classes_has_no_classes_key():
    r = run("diff", ROOT / "examples" / "shop.yaml", ROOT / "examples" / "shop.yaml", "--json")
    assert r.code == 0 and json.loads(r.stdout) == {"added": [], "removed": []}
