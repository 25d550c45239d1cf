"""Golden IPsec plans: `nodes/NODE/ipsec.json` of examples/pods.yaml (three nodes, workload
classes) with IPsec in the middle of a rotation (key 2 accepted, key 1 sending).

Regenerate with `make golden` (tests/support/golden.py) and review the diff."""

from __future__ import annotations

from pathlib import Path

from ipsecspecs import pods

from netcc.pipeline import compile_spec

GOLDEN = Path(__file__).resolve().parent / "golden"
ROTATING = (
    "{enabled: true, keys: [{id: 2, state: accept, fingerprint: "
    "0123456789abcdef0123456789abcdef}, {id: 1, state: send}]}"
)


def test_golden_ipsec_plans(golden) -> None:
    tree = compile_spec(pods(ROTATING).encode(), "pods.yaml")
    plans = {p: data for p, data in tree.items() if p.endswith("/ipsec.json")}
    assert len(plans) == 3
    golden.tree(GOLDEN / "pods-rotating", plans)
