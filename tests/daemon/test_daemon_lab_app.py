"""Issue 15's acceptance in the lab: the kustomize example (examples/app/netcc.yaml, whose
namespaces, classes, services and policies all come from the rendered overlay) enforced on
runtime pods, from every node, with the verdicts a reader of the manifests expects, and the
example's services translated to the ready pods of the classes the manifests' selectors pick
(the helm rendering: test_daemon_lab_helm.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lab_manifests import check_flows, lab_of

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "examples" / "app" / "netcc.yaml"
NODES = ("node-1", "node-2", "node-3")
# What a reader of examples/app/base/networkpolicies.yaml and the prod overlay expects.
EXPECTED = [
    ("shop/cart", "shop/db", 5432, True),  # db from cart and report
    ("shop/report", "shop/db", 5432, True),
    ("shop/frontend", "shop/db", 5432, False),
    ("shop/frontend", "shop/cart", 7000, True),  # cart from the frontend
    ("shop/catalog", "shop/cart", 7000, False),
    ("shop/frontend", "shop/catalog", 9090, True),  # catalog from frontend and cart
    ("shop/cart", "shop/catalog", 9090, True),
    ("shop/report", "shop/cart", 7000, False),  # report's egress: db and DNS only
    ("monitoring/prometheus", "shop/frontend", 8080, True),  # the prod overlay's scrape rule
    ("monitoring/prometheus", "shop/cart", 7000, True),
    ("monitoring/prometheus", "shop/db", 5432, False),
]


@pytest.fixture(scope="module")
def app_lab(shim: Path) -> Iterator[dict[str, str]]:
    """The lab of the example, a pod of every class on every node; class -> pod per node."""
    yield from lab_of(shim, SPEC, NODES)


def test_the_manifests_policies_hold_between_runtime_pods_on_every_node(app_lab) -> None:
    check_flows(app_lab, EXPECTED, NODES)


def test_the_manifests_services_reach_the_ready_pods(app_lab) -> None:
    from netcc.lab.services import probe_running_lab

    report = probe_running_lab(app_lab[("shop/frontend", "node-1")], "svc:shop/cart", 7000,
                               "TCP", count=60)  # fmt: skip
    assert report is not None
    answered = {a.backend for a in report.answers if a.ok}
    assert all(a.ok for a in report.answers), {a.detail for a in report.answers}
    assert answered == {app_lab[("shop/cart", node)] for node in NODES}
    denied = probe_running_lab(app_lab[("shop/report", "node-2")], "svc:shop/cart", 7000, "TCP",
                               count=5)  # fmt: skip
    assert denied is not None and not any(a.ok for a in denied.answers)
