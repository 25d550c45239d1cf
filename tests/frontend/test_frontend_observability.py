"""spec.observability.flowEvents: defaults, values into the model and config.h, bad values."""

from __future__ import annotations

import pytest
from frontend_helpers import parse, shop

from netcc.contract.events import EVENT_BURST, EVENT_RATE
from netcc.diagnostics import SpecError
from netcc.emit.bpf import render_bpf
from netcc.frontend import parse_spec
from netcc.plan.planner import plan
from netcc.resolve.resolution import resolve


def with_events(**fields: object) -> dict:
    d = shop()
    d["spec"]["observability"] = {"flowEvents": fields}
    return d


def config_h(document: dict) -> str:
    return render_bpf(plan(resolve(parse(document))))["bpf/config.h"].decode()


def test_defaults_when_absent() -> None:
    obs = parse(shop()).observability
    assert (obs.flow_events, obs.rate_per_cpu, obs.burst_per_cpu) == (True, EVENT_RATE, EVENT_BURST)
    text = config_h(shop())
    assert "#define NETCC_FLOW_EVENTS 1 " in text
    assert f"#define NETCC_EVENT_INTERVAL_NS {1_000_000_000 // EVENT_RATE} " in text
    assert f"#define NETCC_EVENT_BURST {EVENT_BURST} " in text


def test_values_reach_config_h() -> None:
    text = config_h(with_events(enabled=False, ratePerCPU=250, burstPerCPU=64))
    assert "#define NETCC_FLOW_EVENTS 0 " in text
    assert "#define NETCC_EVENT_INTERVAL_NS 4000000 " in text
    assert "#define NETCC_EVENT_BURST 64 " in text


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"ratePerCPU": 0}, "spec.observability.flowEvents.ratePerCPU"),
        ({"burstPerCPU": 2_000_000}, "spec.observability.flowEvents.burstPerCPU"),
        ({"enabled": "yes"}, "spec.observability.flowEvents.enabled"),
        ({"budget": 3}, "spec.observability.flowEvents"),
    ],
)
def test_bad_values_are_errors_at_their_line(fields: dict, where: str) -> None:
    from frontend_helpers import dump

    with pytest.raises(SpecError) as info:
        parse_spec(dump(with_events(**fields)), "spec.yaml")
    text = info.value.format()
    assert text.startswith("spec.yaml:") and where in text, text
