"""A lab of a spec compiled from manifests, with a ready pod of every class on every node,
and a batch of probes checked against what a reader of the manifests expects."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab_cli import netcc, print_daemon_logs

from netcc.lab import core as lab
from netcc.lab.state import STATE_DIR, LabState


def lab_of(shim: Path, spec: Path, nodes: tuple[str, ...]) -> Iterator[dict]:
    """The lab of `spec` up, a ready pod of every class on each of `nodes`: (class, node) ->
    pod; down again after, whatever happens."""
    if LabState.exists(STATE_DIR):
        pytest.fail(f"a lab is already up ({STATE_DIR}); not touching it")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NETCC_CNI_BIN", str(shim))
        try:
            netcc("lab", "up", str(spec))
            out = Path(LabState.load(STATE_DIR).of_kind("load")[0]["out"])
            classes = json.loads((out / "classes.json").read_text())["classes"]
            pods = {}
            for c in classes:
                labels = ",".join(f"{k}={v}" for k, v in sorted(c["labels"].items()))
                for n, node in enumerate(nodes, 1):
                    key = f"{c['key']}-{n}"
                    netcc("lab", "pod", "add", key, "--node", node, "--labels", labels, "--ready")
                    pods[(c["key"], node)] = key
            yield pods
        finally:
            print_daemon_logs()
            down = netcc("lab", "down", check=False)
            assert down.returncode == 0, down.stderr


def check_flows(pods: dict, expected_flows: list, nodes: tuple[str, ...]) -> None:
    """Every (src class, dst class, port, allowed) between pods on every pair of nodes."""
    batch, expected = [], []
    for src, dst, port, allowed in expected_flows:
        for a in nodes:
            for b in nodes:
                batch.append((pods[(src, a)], pods[(dst, b)], port, "TCP"))
                expected.append(allowed)
    results = lab.probe_many(batch)
    wrong = [
        f"{p[0]} -> {p[1]} {p[2]}: {'allowed' if r.allowed else 'denied'} ({r.detail})"
        for p, r, e in zip(batch, results, expected, strict=True)
        if r.allowed != e
    ]
    assert not wrong, "\n".join(wrong)
