"""Issue 15's acceptance in the lab: a `helm template` rendering (tests/fixtures/helm, whose
spec names only nodes and the source) enforced on runtime pods of every class on both nodes,
with the verdicts a reader of the chart's NetworkPolicies expects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lab_manifests import check_flows, lab_of

SPEC = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "helm" / "netcc.yaml"
NODES = ("node-1", "node-2")
# What a reader of the chart's templates/networkpolicies.yaml expects.
HELM_EXPECTED = [
    ("apps/myrel-webapp", "apps/myrel-webapp-redis", 6379, True),  # redis from web and worker
    ("apps/myrel-webapp-worker", "apps/myrel-webapp-redis", 6379, True),
    ("apps/myrel-webapp", "apps/myrel-webapp-redis", 9102, False),
    ("apps/myrel-webapp-redis", "apps/myrel-webapp", 8000, True),  # web's http from anyone
    ("apps/myrel-webapp-worker", "apps/myrel-webapp", 9102, False),  # metrics: monitoring only
    ("apps/myrel-webapp", "apps/myrel-webapp-worker", 9102, False),
]


@pytest.fixture(scope="module")
def helm_lab(shim: Path) -> Iterator[dict[str, str]]:
    yield from lab_of(shim, SPEC, NODES)


def test_the_charts_policies_hold_between_runtime_pods_on_every_node(helm_lab) -> None:
    check_flows(helm_lab, HELM_EXPECTED, NODES)
