"""The Python model gives Kubernetes' verdict for every conformance probe."""

import pytest
from scenarios import address, load, scenario_names

from netcc.semantics.policy import evaluate


@pytest.mark.parametrize("name", scenario_names())
def test_model_agrees_with_kubernetes(name):
    cluster, probes = load(name)
    wrong = []
    for p in probes:
        v = evaluate(cluster, address(cluster, p.src), address(cluster, p.dst), p.proto, p.port)
        if v.allowed != p.allowed:
            wrong.append(f"{p}: model says {'allow' if v.allowed else 'deny'}, {v}")
    assert not wrong, "\n".join(wrong)
