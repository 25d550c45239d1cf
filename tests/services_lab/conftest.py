"""The services lab, up once per test module (other directories' tests need the lab slot
too): `svclab_specs.SPEC_V1`, compiled once per session, loaded on three nodes with an outside
host, and identity servers in every backend, all torn down after the module whatever happens.
A lab already up (someone's own) is left alone and the tests fail.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from svclab_specs import EXTERNAL, SPEC_V1, SPEC_V2

from netcc.lab import core as lab
from netcc.lab.plan import LabPlan, plan_from_doc
from netcc.lab.services import (
    Answer,
    Servers,
    ServicePortPlan,
    connect_many,
    lab_service_ports,
    listeners_for,
)
from netcc.lab.state import STATE_DIR, LabState
from netcc.pipeline import compile_spec
from netcc.write.tree import write_tree


@dataclass
class SvcLab:
    plan: LabPlan
    ports: list[ServicePortPlan]
    specs: dict[str, Path]  # v1, v2
    outs: dict[str, Path]

    def ip(self, pod: str) -> str:
        return str(next(p.ips[0] for p in self.plan.pods if p.key == pod))

    def netns(self, ref: str) -> str:
        if ref == EXTERNAL:
            assert self.plan.external is not None
            return self.plan.external.netns
        return next(p.netns for p in self.plan.pods if p.key == ref)

    def node_address(self, node: str) -> str:
        return str(self.plan.node(node).address)

    def connect(
        self, src: str, dst_ip: str, port: int, count: int, proto: str = "TCP", timeout=2.0
    ) -> list[Answer]:
        """`count` connections from SRC (a pod, or the external host) to dst_ip:port."""
        src_ip = EXTERNAL if src == EXTERNAL else self.ip(src)
        return connect_many(self.netns(src), src_ip, dst_ip, port, proto, count, timeout)


@pytest.fixture(scope="session")
def svclab_compiled(tmp_path_factory) -> tuple[dict[str, Path], dict[str, Path]]:
    """Both versions of the spec and their OUTs (no kernel state: kept for the session)."""
    d = tmp_path_factory.mktemp("svclab")
    specs = {"v1": d / "svclab-v1.yaml", "v2": d / "svclab-v2.yaml"}
    outs = {"v1": d / "out-v1", "v2": d / "out-v2"}
    for v, text in (("v1", SPEC_V1), ("v2", SPEC_V2)):
        specs[v].write_text(text)
        write_tree(compile_spec(text.encode(), specs[v].name), outs[v])
    return specs, outs


@pytest.fixture(scope="module")
def svclab(svclab_compiled) -> SvcLab:
    if LabState.exists(STATE_DIR):
        pytest.fail(f"a lab is already up ({STATE_DIR}); not touching it: run `netcc lab down`")
    reason = lab.loader_unavailable_reason()
    if reason:
        pytest.fail(f"the node loader is not available: {reason}")
    specs, outs = svclab_compiled
    try:
        lab.up(specs["v1"], external=[EXTERNAL], artifacts=outs["v1"])
        plan = plan_from_doc(LabState.load().doc["plan"])
        ports = lab_service_ports(specs["v1"], plan)
        with Servers(listeners_for(ports)):  # v2 only drops a backend: the same servers
            yield SvcLab(plan, ports, specs, outs)
    finally:
        if LabState.exists(STATE_DIR):
            report = lab.down()
            assert not report.problems, report.problems
