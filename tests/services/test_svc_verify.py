"""`netcc verify` on a spec with NodePort services: every node loads every program through
the verifier, the uplink ones included, and the report names them."""

import pytest
from kernelenv import compile_to
from svcspecs import SPEC

from netcc.loader.verify import format_report, verify

ALL_PROGRAMS = sorted(
    ["netcc_from_container", "netcc_to_container", "netcc_from_uplink", "netcc_to_uplink"]
)


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return compile_to(SPEC, tmp_path_factory.mktemp("verify") / "out")


def test_kernel_verify_reports_every_program(out):
    report = verify(out)
    for node, r in report["nodes"].items():
        assert sorted(r["programs"]) == ALL_PROGRAMS, node
        assert all(p["verified_insns"] > 0 for p in r["programs"].values())
        assert r["map_entries"]["netcc_lb_members"] > 0
    text = format_report(report)
    assert "netcc_from_uplink" in text and "netcc_to_uplink" in text
