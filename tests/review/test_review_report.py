"""The review report: content, offline HTML with the matrix, Markdown that fits a comment."""

import json
import random
import re

import pytest
from review_support import SHOP, assert_matrix_drawn, needs_browser, run, spec_of
from specgen import random_spec

from netcc.review.report import build_report
from netcc.review.report_html import render_html
from netcc.review.report_md import LIMIT, render_markdown


@pytest.fixture(scope="module")
def shop() -> dict:
    return build_report(spec_of(SHOP.read_text(), "shop.yaml"))


def by_name(report: dict, name: str) -> dict:
    return next(w for w in report["workloads"] if w["name"] == name)


def test_per_workload_reachability_with_rules(shop):
    cart = by_name(shop, "shop/cart")
    assert cart["isolation"]["ingress"] == {
        "isolated": True,
        "policies": ["shop/default-deny", "shop/cart", "shop/allow-scrape"],
    }
    incoming = {c["from"]: c for c in cart["ingress"]}
    assert set(incoming) == {"monitoring/prometheus", "shop/frontend", "node node-2"}
    fe = incoming["shop/frontend"]
    assert fe["ports"] == "TCP 7000"
    assert fe["allowed"] == [{"protocol": "TCP", "ports": "7000"}]
    assert [r["rule"] for r in fe["ingress"]["rules"]] == ["shop/cart ingress[0]"]
    assert [r["rule"] for r in fe["egress"]["rules"]] == ["shop/frontend-egress egress[0]"]
    assert incoming["node node-2"]["ingress"]["reason"] == "host"
    outgoing = {c["to"]: c["ports"] for c in cart["egress"]}
    assert outgoing == {"payments/payments-api": "TCP 50051", "shop/cache": "TCP 6379"}


def test_exposure_and_external_classes(shop):
    outside = {(e["workload"], e["from"]): e["ports"] for e in shop["exposure"]["external"]}
    assert outside == {
        ("monitoring/prometheus", "0.0.0.0/0 except 203.0.113.0/24"): "all",
        ("monitoring/prometheus", "203.0.113.0/24"): "all",
        ("shop/frontend", "0.0.0.0/0 except 203.0.113.0/24"): "TCP 8080",
    }
    every = {e["workload"]: e["ports"] for e in shop["exposure"]["every_namespace"]}
    assert every == {"monitoring/prometheus": "all", "shop/frontend": "TCP 8080"}
    classes = {e["name"]: e for e in shop["external"]}
    blocked = classes["203.0.113.0/24"]
    assert blocked["cidrs"] == ["203.0.113.0/24"] and blocked["in_blocks"] == []
    assert len(classes["0.0.0.0/0 except 203.0.113.0/24"]["cidrs"]) == 24


def test_matrix_levels(shop):
    m = shop["matrix"]
    rows = [r["name"] for r in m["rows"]]
    cols = [c["name"] for c in m["cols"]]

    def cell(src, dst):
        return m["cells"][rows.index(src)][cols.index(dst)]

    assert cell("shop/frontend", "shop/cart") == {
        "level": "some",
        "ports": "TCP 7000",
        "short": "TCP 7000",
    }
    assert cell("shop/frontend", "shop/cache")["level"] == "none"
    assert cell("shop/cart", "shop/cart")["level"] == "self"
    assert cell("payments/payments-api", "monitoring/prometheus")["level"] == "all"
    assert cell("203.0.113.0/24", "node node-1")["level"] == "n/a"


def test_html_is_self_contained_and_shows_the_matrix(shop):
    html = render_html(shop)
    assert html.startswith("<!DOCTYPE html>")
    for needle in ("<script", "<link", "@import", " src=", "url(http"):
        assert needle not in html
    # the only URL is the SVG namespace, which is never fetched
    assert set(re.findall(r"https?://[^\"' <]+", html)) == {"http://www.w3.org/2000/svg"}
    svg = html[html.index("<svg") : html.index("</svg>")]
    assert svg.count("<rect") > 100  # one per matrix cell, and the legend
    assert "shop/frontend → shop/cart: TCP 7000" in svg  # a cell's tooltip


def test_markdown_fits_a_comment():
    spec = spec_of(random_spec(random.Random(3), pods=120, policies=30))
    md = render_markdown(build_report(spec))
    assert len(md) <= LIMIT + 5000
    assert "left out to fit a comment" in md
    assert "too many for a comment" in md


def test_json_is_json_and_out_needs_its_spec(tmp_path):
    r = run("review", SHOP, "--format", "json")
    assert r.code == 0
    doc = json.loads(r.stdout)
    assert doc["cluster"] == "shop" and len(doc["workloads"]) == 5
    out = tmp_path / "out"
    out.mkdir()
    import hashlib

    digest = hashlib.sha256(SHOP.read_bytes()).hexdigest()
    (out / "netcc.lock.json").write_text(json.dumps({"spec": {"sha256": digest}}))
    r = run("review", out)
    assert r.code == 1 and "holds no spec" in r.stderr and "--spec" in r.stderr
    r = run("review", out, "--spec", SHOP, "--format", "json")
    assert r.code == 0 and json.loads(r.stdout)["cluster"] == "shop"
    other = tmp_path / "other.yaml"
    other.write_text(SHOP.read_text() + "\n")
    r = run("review", out, "--spec", other)
    assert r.code == 1 and "is not the spec" in r.stderr


def test_bad_spec_and_unwritable_output(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SHOP.read_text().replace("podCIDR: 10.244.0.0/16", "podCIDR: nope", 1))
    r = run("review", bad)
    assert r.code == 1 and f"{bad}:7:" in r.stderr and "Traceback" not in r.stderr
    r = run("review", SHOP, "-o", tmp_path / "no" / "such" / "dir.md")
    assert r.code == 1 and "netcc: error:" in r.stderr


@needs_browser
def test_html_renders_offline_in_a_headless_browser(shop, tmp_path):
    """The page, opened from disk by a browser with no network, draws the matrix: the cells'
    colours for "all ports allowed" and "nothing allowed" cover real areas of the screenshot."""
    assert_matrix_drawn(render_html(shop), tmp_path)
