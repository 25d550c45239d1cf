"""Differential tests: compiled programs in the kernel against the Python model.

Random specs (through the real front end) and thousands of random flows between pods, nodes
and external hosts. For every flow the kernel's allow/deny must equal the model's; for every
allowed flow, the verdict the datapath recorded in conntrack must be one the model gives
(the same reserved reason, or one of the rules the model says allow it).
"""

import json
import random
import tempfile
from ipaddress import IPv4Address
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernelenv import compile_to
from specgen import random_flows, random_spec

from netcc.frontend import parse_spec
from netcc.loader.kernel_cluster import KernelCluster, ct_verdict
from netcc.semantics.policy import evaluate

RESERVED = {"self": {4}, "host": {3}, "unisolated": {1, 2}}


def _rule_numbers(out: Path) -> dict[tuple[str, str, int], int]:
    doc = json.loads((out / "verdicts.json").read_text())
    return {
        (v["policy"], v["direction"], v["index"]): v["number"]
        for v in doc["verdicts"]
        if v.get("policy")
    }


def _expected(side, rules) -> set[int]:
    if side.reason in RESERVED:
        return RESERVED[side.reason]
    return {rules[(r.policy, r.direction, r.index)] for r in side.rules}


def check_spec(spec: dict, flows: list, out: Path) -> list[str]:
    text = yaml.safe_dump(spec, sort_keys=False)
    cluster, _ = parse_spec(text, "random.yaml")
    compile_to(text, out)
    rules = _rule_numbers(out)
    wrong = []
    with KernelCluster(out) as k:
        for i, (src, dst, proto, port) in enumerate(flows):
            sport = 20000 + i
            model = evaluate(cluster, IPv4Address(src), IPv4Address(dst), proto, port)
            kernel = k.allows(src, dst, proto, sport, port)
            if kernel != model.allowed:
                wrong.append(f"{src} -> {dst} {port}/{proto}: kernel {kernel}, model {model}")
                continue
            if not kernel or src == dst:
                continue
            lport, rport = (sport, port) if proto != 1 else (sport, 0)
            for side, local, remote, lp, rp in (
                (model.egress, src, dst, lport, rport),
                (model.ingress, dst, src, rport, lport),
            ):
                if side is None:
                    continue
                got = ct_verdict(k, k.pods[local], local, remote, lp, rp, proto)
                if got not in _expected(side, rules):
                    wrong.append(
                        f"{src} -> {dst} {port}/{proto}: {side.direction} verdict "
                        f"{got}, model {side}"
                    )
    return wrong


@pytest.mark.parametrize("seed", range(24))
def test_random_specs_against_model(seed, tmp_path):
    rng = random.Random(seed)
    spec = random_spec(rng, pods=8, policies=rng.randint(1, 8))
    wrong = check_spec(spec, random_flows(rng, spec, 250), tmp_path / "out")
    assert not wrong, "\n".join(wrong[:20])


@settings(
    max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.randoms(use_true_random=False), st.integers(1, 10), st.integers(2, 12))
def test_hypothesis_specs_against_model(rng, policies, pods):
    spec = random_spec(rng, pods=pods, policies=policies)
    with tempfile.TemporaryDirectory() as tmp:
        wrong = check_spec(spec, random_flows(rng, spec, 150), Path(tmp) / "out")
    assert not wrong, "\n".join(wrong[:20])
