"""Workload classes through the compiler: front-end errors, resolve, plan and emit.

The two-level ipcache lookup is emulated on the emitted map files exactly as lib/ipcache.h does
it, for every address of both nodes' podCIDRs, against the reference model's identities."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
import yaml

from netcc.contract import classes as contract_classes
from netcc.contract.constants import IPCACHE_F_CLASS_BLOCKS, IPCACHE_PODCIDR_SHIFT
from netcc.contract.mapfile import load_node_maps
from netcc.diagnostics import SpecError
from netcc.frontend import parse_spec
from netcc.pipeline import compile_spec
from netcc.resolve.identity import workload_identities
from netcc.semantics.policy import endpoint_of

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "tests" / "golden" / "specs" / "classes.yaml"


def doc() -> dict:
    return yaml.safe_load(SPEC.read_text())


def text(d: dict) -> str:
    return yaml.safe_dump(d, sort_keys=False)


@pytest.fixture(scope="module")
def tree() -> dict[str, bytes]:
    return compile_spec(SPEC.read_bytes(), "classes.yaml")


def test_indistinguishable_classes_are_a_located_error_naming_both():
    d = doc()
    d["spec"]["workloads"].append(
        {"name": "web2", "namespace": "shop", "labels": {"app": "web", "extra": "x"}}
    )
    d["spec"]["workloads"][-1]["labels"] = {"app": "web"}
    with pytest.raises(SpecError) as e:
        parse_spec(text(d), "spec.yaml")
    out = str(e.value)
    assert "shop/web" in out and "shop/web2" in out and "spec.yaml:" in out


def test_blocks_that_do_not_fit_are_a_located_error_saying_what_to_change():
    d = doc()
    d["spec"]["workloads"][0]["perNode"] = 300
    with pytest.raises(SpecError) as e:
        parse_spec(text(d), "spec.yaml")
    assert "perNode" in str(e.value) and "larger podCIDRs" in str(e.value)
    line = next(dg for dg in e.value.diagnostics if "shop/web" in dg.message)
    assert line.line > 0


def test_classes_json_loads_back_and_classifies(tree):
    classes = contract_classes.load(tree[contract_classes.CLASSES_FILE])
    assert [c.number for c in classes.classes] == [1, 2, 3]
    web = classes.classify("shop", {"app": "web", "pod-template-hash": "abc"})
    assert isinstance(web, contract_classes.ClassInfo) and web.key == "shop/web"
    assert web.endpoint["workload"] == 0 and web.endpoint["profile"] == web.profile
    assert set(web.endpoint) == {
        "workload",
        "profile",
        "identity",
        "flags",
        "ingress_deny",
        "egress_deny",
    }
    assert isinstance(classes.classify("empty", {"app": "web"}), contract_classes.Refusal)
    refused = classes.classify("nowhere", {})
    assert isinstance(refused, contract_classes.Refusal) and "not declared" in refused.reason
    cluster, _ = parse_spec(SPEC.read_text(), "classes.yaml")
    assert set(classes.namespaces) == {ns.name for ns in cluster.namespaces}


def test_class_profiles_come_first_and_every_node_holds_them_alike(tree):
    for node in ("node-a", "node-b"):
        doc = json.loads(tree[f"nodes/{node}/node.json"])
        numbers = {p["profile"]: p["workloads"] for p in doc["profiles"]}
        assert [numbers[n] for n in (1, 2, 3)] == [
            ["monitoring/prom"],
            ["shop/api"],
            ["shop/web"],
        ]
        assert doc["router"] == str(IPv4Network(doc["podCIDR"]).network_address + 1)
        overlay = tree.get(f"nodes/{node}/maps/netcc_policy_exact.json", b"{}")
        assert all(e["key"]["profile"] > 3 for e in json.loads(overlay).get("entries", []))


def test_a_static_spec_has_no_class_artifacts():
    out = compile_spec((ROOT / "tests/golden/specs/minimal.yaml").read_bytes(), "minimal.yaml")
    assert contract_classes.CLASSES_FILE not in out
    assert "maps/netcc_class_blocks.json" not in out
    assert b"IPCACHE_F_CLASS_BLOCKS" not in out["bpf/maps.h"]
    assert b"NETCC_MAX_CLASS_BLOCKS" not in out["bpf/config.h"]
    assert "podCIDR" not in json.loads(out["nodes/solo/node.json"])


def _lookup(view: dict[str, list], ip: IPv4Address) -> dict:
    """lib/ipcache.h's ipcache_lookup over one node's map entries."""
    for e in view["netcc_ipcache"]:
        if e["key"]["ip"] == str(ip):
            return e["value"]
    best = max(
        (
            e
            for e in view["netcc_ipcache_cidr"]
            if ip in IPv4Network(f"{e['key']['ip']}/{e['key']['prefixlen']}")
        ),
        key=lambda e: e["key"]["prefixlen"],
    )
    value = best["value"]
    if not value["flags"] & IPCACHE_F_CLASS_BLOCKS:
        return value
    bits = (value["flags"] >> IPCACHE_PODCIDR_SHIFT) & 0x3F
    offset = int(ip) & (0xFFFFFFFF >> bits)
    for e in view.get("netcc_class_blocks", []):
        size = 1 << (32 - e["key"]["prefixlen"])
        if e["key"]["offset"] <= offset < e["key"]["offset"] + size:
            return e["value"]
    return value


def test_two_level_lookup_gives_the_models_identity_for_every_pod_address(tree, tmp_path):
    for path, data in tree.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(data)
    cluster, _ = parse_spec(SPEC.read_text(), "classes.yaml")
    identities, _ = workload_identities(cluster)
    for node in cluster.nodes:
        view = load_node_maps(tmp_path, node.name)
        for other in cluster.nodes:
            for ip in other.pod_cidr:
                got = _lookup(view, ip)
                model = endpoint_of(cluster, ip)
                if model.workload is not None:
                    assert got["identity"] == identities[model.workload.key].number, ip
                    static = model.workload in cluster.workloads
                    assert (got["workload"] != 0) == static, ip
                elif model.node is None:
                    assert got["identity"] == 2, ip  # world
