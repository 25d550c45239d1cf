"""Golden reports for examples/shop.yaml: Markdown, JSON and HTML.

Regenerate with `NETCC_UPDATE_GOLDEN=1 pytest tests/review -k golden` and review the diff.
"""

import difflib
import json
import os
from pathlib import Path

import pytest
from review_support import ROOT, SHOP, run

from netcc.frontend import parse_spec
from netcc.review.report import build_report
from netcc.review.report_html import render_html
from netcc.review.report_md import render_markdown
from netcc.review.source import Spec

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("NETCC_UPDATE_GOLDEN") == "1"
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
def test_golden_shop_report(fmt):
    got = RENDER[fmt](shop_report())
    path = GOLDEN / f"shop.{fmt}"
    if UPDATE:
        path.write_text(got)
    want = path.read_text()
    if got != want:
        delta = "".join(
            difflib.unified_diff(want.splitlines(True), got.splitlines(True), "golden", "now", n=2)
        )
        pytest.fail(f"{path.name} differs (NETCC_UPDATE_GOLDEN=1 to accept):\n{delta[:4000]}")


def test_golden_report_is_what_the_command_prints(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    for fmt in RENDER:
        r = run("review", SHOP.relative_to(ROOT), "--format", fmt)
        assert r.code == 0, r.stderr
        assert r.stdout == (GOLDEN / f"shop.{fmt}").read_text()
    out = tmp_path / "r.html"
    r = run("review", SHOP.relative_to(ROOT), "--format", "html", "-o", out)
    assert (r.code, r.stdout) == (0, "")
    assert out.read_text() == (GOLDEN / "shop.html").read_text()
