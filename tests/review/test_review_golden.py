"""Golden reports for examples/shop.yaml: Markdown, JSON and HTML.

Regenerate with `make golden` (tests/support/golden.py) and review the diff.
"""

import json
from pathlib import Path

import pytest
from review_support import ROOT, SHOP, run

from netcc.frontend import parse_spec
from netcc.review.report import build_report
from netcc.review.report_html import render_html
from netcc.review.report_md import render_markdown
from netcc.review.source import Spec

GOLDEN = Path(__file__).resolve().parent / "golden"
RENDER = {
    "md": render_markdown,
    "json": lambda report: json.dumps(report, indent=2) + "\n",
    "html": render_html,
}


def shop_report() -> dict:
    name = SHOP.relative_to(ROOT).as_posix()  # the same wherever the tests run
    text = SHOP.read_bytes()
    cluster, sources = parse_spec(text, name)
    return build_report(Spec(text, name, cluster, sources))


@pytest.mark.parametrize("fmt", sorted(RENDER))
def test_golden_shop_report(fmt, golden):
    golden(GOLDEN / f"shop.{fmt}", RENDER[fmt](shop_report()))


def test_golden_report_is_what_the_command_prints(tmp_path, monkeypatch, golden):
    monkeypatch.chdir(ROOT)
    for fmt in RENDER:
        r = run("review", SHOP.relative_to(ROOT), "--format", fmt)
        assert r.code == 0, r.stderr
        golden(GOLDEN / f"shop.{fmt}", r.stdout)
    out = tmp_path / "r.html"
    r = run("review", SHOP.relative_to(ROOT), "--format", "html", "-o", out)
    assert (r.code, r.stdout) == (0, "")
    golden(GOLDEN / "shop.html", out.read_text())
