"""The C side of the contract is rendered from the Python one, and nothing copies it by hand.

Every flag and constant of `netcc.contract.constants`, every capacity of the registry, the
reserved verdicts and the program names reach the generated headers with the Python value;
no hand-written header (`templates/bpf/lib/*.h`) defines one of them; the spec's schema holds
the contract's nodePort range.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest

from netcc.contract import capacity, constants, programs
from netcc.contract.maps import MAPS
from netcc.contract.verdicts import FIRST_RULE_VERDICT, RESERVED_VERDICTS
from netcc.emit.bpf import render_bpf
from netcc.frontend import parse_spec
from netcc.plan import maglev
from netcc.plan.planner import plan
from netcc.resolve.resolution import resolve

ROOT = Path(__file__).resolve().parents[2]
DEFINE = re.compile(r"^#define[ \t]+([A-Z_][A-Z0-9_]*)[ \t]+(\S+)", re.MULTILINE)
LIB = resources.files("netcc.templates") / "bpf" / "lib"


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    """The generated C of a spec with workload classes (whose datapath has every constant and
    capacity: those of classes too), by file name (no clang needed)."""
    spec = ROOT / "tests" / "golden" / "specs" / "classes.yaml"
    cluster, _ = parse_spec(spec.read_bytes(), spec.name)
    return {
        path: data.decode()
        for path, data in render_bpf(plan(resolve(cluster))).items()
        if not path.startswith("bpf/lib/")
    }


def _defines(text: str) -> dict[str, str]:
    return dict(DEFINE.findall(text))


def _contract_names() -> dict[str, int]:
    names = constants.c_names()
    names |= {c.name: c.limit for c in capacity.CAPACITIES}
    names |= {f"VERDICT_{v.name}": v.number for v in RESERVED_VERDICTS}
    names["FIRST_RULE_VERDICT"] = FIRST_RULE_VERDICT
    return names


def test_every_shared_constant_is_generated_with_its_value(generated: dict[str, str]) -> None:
    defined: dict[str, str] = {}
    for text in generated.values():
        defined |= _defines(text)
    for name, value in constants.c_names().items():
        assert defined.get(name) == str(value), name
    for v in RESERVED_VERDICTS:
        assert defined[f"VERDICT_{v.name}"] == str(v.number)
    assert defined["FIRST_RULE_VERDICT"] == str(FIRST_RULE_VERDICT)


def test_config_h_is_the_capacity_registry(generated: dict[str, str]) -> None:
    config = _defines(generated["bpf/config.h"])
    for c in capacity.CAPACITIES:
        assert c.name in config, c.name
        if c.kind == "fixed":
            assert config[c.name] == str(c.limit), c.name
        else:
            assert int(config[c.name]) <= c.limit, c.name
        assert f"/* {c.doc} */" in generated["bpf/config.h"]


def test_no_hand_written_header_copies_the_contract() -> None:
    names = _contract_names()
    for header in sorted(LIB.iterdir(), key=lambda p: p.name):
        if not header.name.endswith(".h"):
            continue
        copied = sorted(set(_defines(header.read_text())) & set(names))
        assert not copied, f"lib/{header.name} defines {copied}: render them from the contract"


def test_programs_are_the_contract_s(generated: dict[str, str]) -> None:
    defined = re.findall(r'SEC\("tc"\)\nint (\w+)\(', generated["bpf/datapath.c"])
    assert defined == [p.name for p in programs.ALL]
    assert programs.PROGRAM_FOR == {
        "ingress": "netcc_from_container",
        "egress": "netcc_to_container",
    }
    assert set(programs.POD_PROGRAMS) | set(programs.UPLINK_PROGRAMS) == set(programs.PROGRAMS)


def test_every_map_capacity_is_registered() -> None:
    for m in MAPS:
        assert m.capacity in capacity.BY_NAME, m.name
    assert max(maglev.PRIMES) <= capacity.BY_NAME["NETCC_LB_MAGLEV_SIZE"].limit
    assert capacity.BY_NAME["NETCC_FLOW_CACHE_SLOTS"].limit.bit_count() == 1  # masked hash


def test_schema_holds_the_contract_s_node_port_range() -> None:
    schema = json.loads(
        (resources.files("netcc.schemas") / "clusternetwork.schema.json").read_text()
    )
    found = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("properties"), dict) and "nodePort" in node["properties"]:
                found.append(node["properties"]["nodePort"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    assert found
    for prop in found:
        assert (prop["minimum"], prop["maximum"]) == (
            constants.LB_NODE_PORT_MIN,
            constants.LB_NODE_PORT_MAX,
        )


def test_nat_ports_lie_above_the_node_port_range() -> None:
    assert constants.LB_NODE_PORT_MAX < 60999 < constants.NAT_PORT_MIN <= constants.NAT_PORT_MAX
    assert constants.NAT_PORT_MAX <= 65535
