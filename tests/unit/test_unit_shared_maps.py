"""OUT's map data, shared files plus node overlays, gives every node exactly its planned
entries: `node_view(shared, overlay)` against the planner's per-node maps, on generated specs
of many shapes; and every line is byte for byte what `json.dumps` writes."""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from specgen import random_spec
from unitspecs import plan_of, policy

from netcc.contract.entries import as_dicts
from netcc.contract.mapfile import (
    MAP_PATH,
    SHARED_PATH,
    key_line,
    map_file,
    node_maps,
    node_names,
    parse_map_doc,
)
from netcc.emit.maps import render_data
from netcc.frontend import parse_spec
from netcc.plan.planner import ClusterPlan, plan
from netcc.resolve.resolution import resolve

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import pathological  # noqa: E402


def _bench_module(name: str):
    """bench/NAME.py under another name (tests/support has a `specgen` of its own)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bench_specgen = _bench_module("specgen")


def _plan(text: str | bytes) -> ClusterPlan:
    cluster, _ = parse_spec(text, "spec.yaml")
    return plan(resolve(cluster))


def _specs() -> dict[str, bytes]:
    out = {"shop": (ROOT / "examples" / "shop.yaml").read_bytes()}
    for p in sorted((ROOT / "tests" / "golden" / "specs").glob("*.yaml")):
        out[p.stem] = p.read_bytes()
    for seed in (1, 2, 3):  # several nodes, services, named ports, ranges, ipBlocks
        doc = bench_specgen.generate(workloads=60, nodes=5, namespaces=6, policies=40, seed=seed)
        out[f"specgen-{seed}"] = yaml.safe_dump(doc, sort_keys=False).encode()
    for seed in range(4):  # two nodes: a shared entry is one both hold
        out[f"random-{seed}"] = yaml.safe_dump(random_spec(random.Random(seed), 10, 6)).encode()
    out["nodes"] = pathological.spec("nodes", 9)  # one pod a node: everything but it shared
    out["one-node"] = (ROOT / "tests" / "golden" / "specs" / "minimal.yaml").read_bytes()
    return out


SPECS = _specs()


def _as_file(entries) -> Counter:
    """Entries as a map file gives them, counted (a multiset: order is not part of a map)."""
    return Counter(
        json.dumps({"key": k, "value": v, "note": e.note}, sort_keys=True)
        for e in entries
        for k, v in [as_dicts(e)]
    )


@pytest.mark.parametrize("name", sorted(SPECS))
def test_node_view_gives_every_node_its_planned_entries(name: str) -> None:
    p = _plan(SPECS[name])
    data = render_data(p)
    assert node_names(data) == [n.name for n in p.nodes]
    for n in p.nodes:
        view = node_maps(data, list(data), n.name)
        assert set(view) == set(p.map_names)
        for map_name in p.map_names:
            got = Counter(json.dumps(e, sort_keys=True) for e in view[map_name])
            assert got == _as_file(n.maps[map_name]), (name, n.name, map_name)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_shared_entries_are_those_most_nodes_hold_and_overlays_only_what_differs(
    name: str,
) -> None:
    p = _plan(SPECS[name])
    data = render_data(p)
    for map_name in p.map_names:
        held = Counter()
        for n in p.nodes:
            held.update(_as_file(n.maps[map_name]))
        shared = parse_map_doc(data[SHARED_PATH.format(map=map_name)])
        assert shared.absent == []
        want = {e for e, c in held.items() if 2 * c > len(p.nodes)}
        assert _as_file_dicts(shared.entries) == Counter(want)
        for n in p.nodes:
            path = MAP_PATH.format(node=n.name, map=map_name)
            mine = _as_file(n.maps[map_name])
            if set(mine) == want:
                assert path not in data, "a node holding exactly the shared entries has no overlay"
                continue
            overlay = parse_map_doc(data[path], path, shared.sets)
            assert not set(_as_file_dicts(overlay.entries)) & want  # only what differs


def _as_file_dicts(entries: list[dict]) -> Counter:
    return Counter(json.dumps(e, sort_keys=True) for e in entries)


@pytest.mark.parametrize("name", ["shop", "specgen-1", "nodes", "named-ports"])
def test_every_line_is_what_json_dumps_writes(name: str) -> None:
    data = render_data(_plan(SPECS[name]))
    for path, raw in data.items():
        if "maps/" not in path:
            continue
        doc = json.loads(raw)  # as written: grouped lines and sets as they are
        lines = ["  " + json.dumps(e) for e in doc["entries"]]
        absent = [key_line(k) for k in doc["absent"]] if "absent" in doc else None
        sets = ["  " + json.dumps(x) for x in doc["sets"]] if "sets" in doc else None
        assert map_file(doc["map"], lines, absent, sets) == raw, path


def test_a_rules_peers_are_one_line_and_a_list_many_lines_give_is_written_once() -> None:
    """specgen-1's rules reach several peer classes: each (profile, rule, port) is one
    grouped line, and a list of peers given by more than one line is a shared set."""
    data = render_data(_plan(SPECS["specgen-1"]))
    grouped, refs = 0, set()
    for path, raw in data.items():
        if "netcc_policy" not in path:
            continue
        doc = json.loads(raw)
        for e in doc["entries"]:
            if "each" not in e:
                continue
            grouped += 1
            assert list(e["each"]) == ["peer"] and "peer" not in e["key"]
            peers = e["each"]["peer"]
            if isinstance(peers, dict):
                refs.add((path.rsplit("/", 1)[1], peers["set"]))
            else:
                assert len(peers) > 1
    assert grouped and refs, "the generated spec has rules with several peers"
    for map_file_name, n in refs:
        shared = json.loads(data["maps/" + map_file_name])
        assert n < len(shared["sets"])
    for name in ("netcc_policy", "netcc_policy_exact"):
        sets = json.loads(data[f"maps/{name}.json"]).get("sets", [])
        assert len({tuple(x) for x in sets}) == len(sets), "each list once"


def test_maglev_rows_render_as_lists() -> None:
    data = render_data(_plan(SPECS["shop"]))
    doc = json.loads(data["maps/netcc_lb_maglev.json"])
    assert doc["entries"], "the shop has services"
    assert all(isinstance(e["value"]["backends"], list) for e in doc["entries"])


def test_release_lets_the_plans_entries_go_as_their_files_are_rendered() -> None:
    p = plan_of(policy("p", "a", "podSelector: {}\ningress: [{ports: [{port: 80}]}]"))
    assert render_data(p) == render_data(p, release=True)
    assert all(entries == () for n in p.nodes for entries in n.maps.values())
