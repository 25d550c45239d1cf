"""Map files (`netcc.contract.mapfile`): shared entries and node overlays, written and read,
and `node_view`, a node's entries of a map, which the loader, `verify` and `trace` use."""

from __future__ import annotations

import json

import pytest

from netcc.contract.layoutfile import LayoutError
from netcc.contract.mapfile import (
    MapDoc,
    entry_line,
    key_line,
    map_file,
    node_map_paths,
    node_maps,
    node_names,
    node_view,
    parse_map_doc,
    parse_map_file,
)


def e(ip: str, identity: int = 9, note: str = "") -> dict:
    return {"key": {"ip": ip}, "value": {"identity": identity}, "note": note}


SHARED = MapDoc("netcc_ipcache", [e("10.0.0.1"), e("10.0.0.2"), e("10.0.0.3")])


def test_without_an_overlay_a_node_holds_the_shared_entries() -> None:
    assert node_view(SHARED, None) == SHARED.entries
    assert node_view(None, None) == []


def test_the_overlay_replaces_adds_and_removes_by_key() -> None:
    overlay = MapDoc(
        "netcc_ipcache",
        [e("10.0.0.9", 1, "added"), e("10.0.0.2", 1, "this node")],
        absent=[{"ip": "10.0.0.3"}],
    )
    assert node_view(SHARED, overlay) == [
        e("10.0.0.1"),
        e("10.0.0.2", 1, "this node"),  # in the shared entry's place
        e("10.0.0.9", 1, "added"),  # then what the node adds
    ]
    assert node_view(None, MapDoc("m", [e("10.0.0.1")])) == [e("10.0.0.1")]


def test_a_key_compares_by_its_fields_not_their_order() -> None:
    shared = MapDoc("m", [{"key": {"prefixlen": 8, "ip": "10.0.0.0"}, "value": {}, "note": ""}])
    overlay = MapDoc("m", [], absent=[{"ip": "10.0.0.0", "prefixlen": 8}])
    assert node_view(shared, overlay) == []


@pytest.mark.parametrize(
    ("overlay", "message"),
    [
        (MapDoc("netcc_ipcache", [e("10.0.0.1"), e("10.0.0.1")]), "given twice"),
        (MapDoc("netcc_ipcache", [], [{"ip": "10.9.9.9"}]), "absent key .* is not shared"),
        (MapDoc("netcc_ipcache", [e("10.0.0.1")], [{"ip": "10.0.0.1"}]), "given and absent"),
        (MapDoc("netcc_policy", []), "overlay of map netcc_policy laid on map netcc_ipcache"),
        (MapDoc("netcc_ipcache", [{"value": {}}]), "overlay entry 0: expected an object"),
    ],
)
def test_files_that_disagree_are_refused(overlay: MapDoc, message: str) -> None:
    with pytest.raises(LayoutError, match=message):
        node_view(SHARED, overlay)
    with pytest.raises(LayoutError, match=r"shared key .* given twice"):
        node_view(MapDoc("m", [e("10.0.0.1"), e("10.0.0.1")]), MapDoc("m", []))


def test_written_and_read_back() -> None:
    lines = [entry_line(x["key"], x["value"], x["note"]) for x in SHARED.entries]
    shared = map_file("netcc_ipcache", lines)
    assert json.loads(shared) == {"map": "netcc_ipcache", "entries": SHARED.entries}
    assert parse_map_doc(shared) == SHARED
    assert parse_map_file(shared) == ("netcc_ipcache", SHARED.entries)
    overlay = map_file("netcc_ipcache", lines[:1], [key_line({"ip": "10.0.0.3"})])
    assert parse_map_doc(overlay).absent == [{"ip": "10.0.0.3"}]
    assert overlay.decode().splitlines()[-4:-1] == [' "absent": [', '  {"ip": "10.0.0.3"}', " ]"]
    assert json.loads(map_file("m", [], [])) == {"map": "m", "entries": [], "absent": []}
    for bad, why in (
        (b"[]", "'map' name"),
        (b'{"map": "m", "x": 1}', "unknown field"),
        (b"{", "JSON"),
    ):
        with pytest.raises(LayoutError, match=why):
            parse_map_doc(bad, "f.json")


def test_a_nodes_maps_from_the_files_of_out() -> None:
    files = {
        "maps/netcc_ipcache.json": map_file(
            "netcc_ipcache", [entry_line({"ip": "10.0.0.1"}, {"identity": 9})]
        ),
        "maps/netcc_policy.json": map_file("netcc_policy", []),
        "nodes/n1/maps/netcc_ipcache.json": map_file(
            "netcc_ipcache", [], [key_line({"ip": "10.0.0.1"})]
        ),
        "nodes/n1/maps/netcc_endpoints.json": map_file(
            "netcc_endpoints", [entry_line({"ip": "10.0.0.2"}, {})]
        ),
        "nodes/n1/node.json": b"{}",
        "nodes/n2/node.json": b"{}",
        "nodes/n2/wireguard.json": b"{}",
        "bpf/layout.json": b"{}",
    }
    assert node_names(files) == ["n1", "n2"]
    assert node_map_paths(files, "n2") == {
        "netcc_ipcache": ("maps/netcc_ipcache.json", None),
        "netcc_policy": ("maps/netcc_policy.json", None),
    }
    n1 = node_maps(files, list(files), "n1")
    assert n1 == {
        "netcc_endpoints": [{"key": {"ip": "10.0.0.2"}, "value": {}, "note": ""}],
        "netcc_ipcache": [],
        "netcc_policy": [],
    }
    assert node_maps(files, list(files), "n2")["netcc_ipcache"][0]["key"] == {"ip": "10.0.0.1"}
    assert list(node_maps(files, list(files), "n1", only=["netcc_policy"])) == ["netcc_policy"]
    files["maps/netcc_policy.json"] = map_file("netcc_ipcache", [])
    with pytest.raises(LayoutError, match="names map 'netcc_ipcache', expected 'netcc_policy'"):
        node_maps(files, list(files), "n1")


def _policy(peer=None, **more) -> dict:
    key = {"profile": 1, "dir": 1, "proto": 6, "port": 80}
    if peer is not None:
        key["peer"] = peer
    return {"key": key, **more, "value": {"verdict": 40}, "note": "ns/p ingress[0]"}


def test_a_grouped_line_stands_for_one_entry_per_value() -> None:
    doc = parse_map_doc(
        json.dumps({"map": "netcc_policy_exact", "entries": [_policy(each={"peer": [3, 1]})]})
    )
    assert doc.entries == [_policy(3), _policy(1)]


def test_a_set_is_named_by_its_place_in_the_shared_files_sets() -> None:
    shared = {"map": "m", "sets": [[7], [2, 4]], "entries": [_policy(each={"peer": {"set": 1}})]}
    overlay = {"map": "m", "entries": [_policy(each={"peer": {"set": 0}})], "absent": []}
    files = {
        "maps/m.json": json.dumps(shared).encode(),
        "nodes/n1/maps/m.json": json.dumps(overlay).encode(),
        "nodes/n1/node.json": b"{}",
    }
    assert parse_map_doc(files["maps/m.json"]).entries == [_policy(2), _policy(4)]
    view = node_maps(files, list(files), "n1")["m"]
    # the overlay's entry of peer 7 adds to the shared entries of peers 2 and 4
    assert sorted(e["key"]["peer"] for e in view) == [2, 4, 7]
    with pytest.raises(LayoutError, match="no set 0"):
        parse_map_doc(files["nodes/n1/maps/m.json"])  # alone, it has no sets to name


@pytest.mark.parametrize(
    ("each", "message"),
    [
        ({"peer": []}, "must list values"),
        ({"profile": [1, 2]}, "must list values of a field the key leaves out"),
        ({"peer": [1], "dir": [2]}, "name one key field"),
        ({"peer": {"set": 5}}, "no set 5"),
        ({"peer": {"set": True}}, "no set True"),
    ],
)
def test_malformed_groups_are_refused(each: dict, message: str) -> None:
    doc = {"map": "m", "sets": [[1, 2]], "entries": [_policy(each=each)]}
    with pytest.raises(LayoutError, match=message):
        parse_map_doc(json.dumps(doc))
