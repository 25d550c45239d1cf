"""A loaded lab without policy: the datapath is on every pod's veth and lets everything pass.

Brought up through the command line without `--artifacts`, so `up` compiles the spec into
the lab's own directory (which `down` removes).
"""

from __future__ import annotations

import json
from itertools import permutations

import pytest
from labspecs import EXTERNALS, NODES, PODS, netcc, teardown_lab, up_seconds

from netcc.lab import core as lab
from netcc.lab.state import STATE_DIR


@pytest.fixture(scope="module")
def loaded(module_root, loader, spec_files):
    try:
        r = netcc("lab", "up", str(spec_files["none"]), "--external", *EXTERNALS)
        assert r.returncode == 0, r.stderr
        print(f"\nlab up, compiling the spec and loading it: {up_seconds(r.stderr):.2f} s")
        yield r.stdout
    finally:
        teardown_lab()


def test_compiled_into_the_lab_directory(loaded):
    doc = json.loads(netcc("lab", "status", "--json").stdout)
    assert doc["out"] == str(STATE_DIR / "out")
    assert set(doc["loader"]) == set(NODES)
    assert f"loaded {STATE_DIR / 'out'} on 3 node(s)" in loaded


@pytest.mark.parametrize("protocol", ["TCP", "UDP"])
def test_everything_passes(loaded, protocol):
    pairs = list(permutations(PODS, 2))
    pairs += [(p, x) for p in PODS for x in EXTERNALS] + [(x, p) for p in PODS for x in EXTERNALS]
    results = lab.probe_many([(s, d, 4242, protocol) for s, d in pairs])
    failed = [f"{r.probe.src_ip} -> {r.probe.dst_ip}: {r.detail}" for r in results if not r.allowed]
    assert not failed


def test_probe_names_the_unisolated_verdicts(loaded):
    r = netcc("lab", "probe", "dev/tools", "shop/frontend", "80/udp", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    rules = [h["rule"] for h in doc["decided_by"]]
    assert rules[0].startswith("ALLOW_UNISOLATED_EGRESS")
    assert rules[1].startswith("ALLOW_UNISOLATED_INGRESS")
