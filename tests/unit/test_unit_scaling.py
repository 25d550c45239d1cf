"""Compile work grows near-linearly on the specs that used to blow up (issue 11).

Work is counted, never timed: the number of Python function calls a whole compile makes
(front end, plan, emit, Kubernetes manifests; clang stubbed out), for each pathological
spec of bench/pathological.py at n and at 2n. A quadratic step (every block against every
region, every class against every peer, every pod against every policy, every node's files
scanned for each node) makes the ratio approach 4; near-linear work stays near 2.

The `nodes` case writes Θ(n²) bytes (every node's ipcache lists every address); the calls
stay near-linear because nodes share the entries and their rendered lines, so what grows
quadratically is only copying bytes.

Separate tests pin the counters of the indexes that replaced the quadratic loops.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from netcc import pipeline
from netcc.build import clang as build
from netcc.frontend import parse_spec
from netcc.plan.planner import plan
from netcc.resolve.cidr import BlockIndex
from netcc.resolve.peers import block_index
from netcc.resolve.resolution import resolve
from netcc.semantics.policy import selector_index

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import pathological

# Sizes where the old code's quadratic terms already showed: it made 3.15x (blocks), 2.75x
# (ranges), 3.62x (excepts) and 2.88x (nodes) the calls for 2n; `empty` was near-linear in
# calls already (its selector index is pinned below).
SIZES = {"blocks": 300, "ranges": 300, "excepts": 500, "empty": 200, "nodes": 100}
MAX_RATIO = 2.5  # for twice the input


def _no_clang(sources: dict[str, bytes], mains: list[str]) -> dict[str, bytes]:
    return {m[:-2] + ".o": b"" for m in mains}


def count_calls(fn: Callable[[], Any]) -> int:
    """Python function calls made while `fn` runs (C functions are not counted)."""
    calls = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal calls
        calls += 1  # only "call" events reach a global trace function returning None

    sys.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(None)
    return calls


def compile_calls(case: str, n: int) -> int:
    """Calls of one uncached compile of the `case` spec at size `n` (clang stubbed)."""
    spec = pathological.spec(case, n)
    return count_calls(lambda: pipeline._compile(spec, f"{case}.yaml"))


@pytest.mark.parametrize("case", sorted(SIZES))
def test_compile_calls_grow_near_linearly(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "compile_objects", _no_clang)
    n = SIZES[case]
    small, large = compile_calls(case, n), compile_calls(case, 2 * n)
    ratio = large / small
    assert ratio <= MAX_RATIO, f"{case}: {small:,} calls at n={n}, {large:,} at 2n ({ratio:.2f}x)"


def _block_lookups(n: int) -> int:
    cluster, _ = parse_spec(pathological.spec("excepts", n), "excepts.yaml")
    counted: list[BlockIndex] = []

    def index(blocks: list) -> BlockIndex:
        counted.append(block_index(blocks))
        return counted[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("netcc.resolve.peers.block_index", index)
        plan(resolve(cluster))
    return sum(i.lookups for i in counted)


def test_ipblock_regions_are_looked_up_not_searched() -> None:
    """n excepts and 0.0.0.0/0 make n + 1 regions, and max(12, n/50) pods and 3 nodes' 6
    addresses are placed; each costs one look-up per distinct prefix length (2 here), not
    one test per except."""
    n = 300
    small, large = _block_lookups(n), _block_lookups(2 * n)
    assert large <= 2.1 * small
    assert small <= 2 * ((n + 1) + (max(12, n // 50) + 6))


def test_policies_selecting_nothing_are_not_tried() -> None:
    """A pod is tried only against policies filed under one of its labels."""
    cluster, _ = parse_spec(pathological.spec("empty", 300), "empty.yaml")
    plan(resolve(cluster))
    assert selector_index(cluster).checked == 0  # every selector names an absent app
