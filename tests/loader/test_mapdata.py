"""netcc.loader.mapdata: packing entries from layout.json (no kernel needed; filling kernel
maps is test_fill_maps.py's)."""

from __future__ import annotations

import copy
import json
import struct
from pathlib import Path

import pytest

from netcc.contract.layoutfile import layout_document
from netcc.contract.maps import MAPS
from netcc.loader.mapdata import Layout, LayoutError

DATA = Path(__file__).parent / "data"
DENY = {"verdict": 0, "mark": 0, "weight": 0, "class": 0}  # every field of deny_entry
STATS = {"packets": 0, "bytes": 0}
PORT = {"port": 1, "proto": 6}


def test_every_encoding_round_trips(layout: Layout) -> None:
    values = {"verdict": 0xDEADBEEF, "mark": 0x01020304, "weight": 0xBEEF, "class": 0xAB}
    raw = layout.pack("deny_entry", values)
    assert raw == struct.pack("<I", 0xDEADBEEF) + bytes([1, 2, 3, 4]) + b"\xef\xbe\xab\x00"
    assert layout.unpack("deny_entry", raw) == values  # pad8 is left out
    key = layout.pack("port_key", {"port": 0x1F90, "proto": 6})
    assert key == b"\x1f\x90\x06\x00"  # be16 in network order
    assert layout.unpack("port_key", key) == {"port": 8080, "proto": 6}
    stats = layout.pack("stats_entry", {"packets": 2**64 - 1, "bytes": 1})
    assert stats == b"\xff" * 8 + struct.pack("<Q", 1)
    assert layout.unpack("stats_entry", stats) == {"packets": 2**64 - 1, "bytes": 1}


def test_lpm_key_and_ipv4(layout: Layout) -> None:
    raw = layout.pack("lpm_key", {"prefixlen": 24, "ip": "192.168.1.0"})
    assert raw == struct.pack("<I", 24) + bytes([192, 168, 1, 0])
    assert layout.unpack("lpm_key", raw) == {"prefixlen": 24, "ip": "192.168.1.0"}
    assert layout.pack("seen_key", {"src": "0.0.0.0"}) == bytes(4)
    assert layout.unpack("seen_key", bytes(4)) == {"src": "0.0.0.0"}


def test_a_missing_field_is_refused_not_packed_as_zero(layout: Layout) -> None:
    """An entry without one of its fields would otherwise reach the kernel as zero."""
    with pytest.raises(LayoutError, match=r"seen_key: missing field.*src"):
        layout.pack("seen_key", {})
    with pytest.raises(LayoutError, match=r"deny_entry: missing field.*weight, class"):
        layout.pack("deny_entry", {"verdict": 1, "mark": 2})
    with pytest.raises(LayoutError, match=r"u32: missing field.*index"):
        layout.pack("u32", {})
    with pytest.raises(LayoutError, match=r"map deny_port entry 0: deny_entry: missing.*mark"):
        layout.pack_entries("deny_port", [{"key": PORT, "value": {"verdict": 1}}])
    with pytest.raises(LayoutError, match="map deny_port entry 0: missing 'value'"):
        layout.pack_entries("deny_port", [{"key": PORT}])
    # padding is never given; `partial` (repacking runtime state) zeroes what is missing
    assert layout.pack("port_key", {"port": 1, "proto": 6}) == b"\x00\x01\x06\x00"
    assert layout.pack("deny_entry", {"verdict": 1}, partial=True) == b"\x01" + bytes(11)


def test_u32_keys(layout: Layout) -> None:
    assert layout.pack("u32", 7) == layout.pack("u32", {"index": 7}) == struct.pack("<I", 7)
    assert layout.unpack("u32", struct.pack("<I", 7)) == 7
    with pytest.raises(LayoutError, match="unknown field"):
        layout.pack("u32", {"idx": 1})


def test_pad_is_never_read(layout: Layout) -> None:
    assert layout.pack("port_key", {"port": 1, "proto": 0, "pad": 255}) == b"\x00\x01\x00\x00"


@pytest.mark.parametrize(
    ("struct_name", "values", "message"),
    [
        ("port_key", {"prot": 6}, "port_key: unknown field.*prot"),
        ("port_key", {"port": 65536, "proto": 6}, r"port_key.port: value 65536 out of range"),
        ("port_key", {"port": 1, "proto": -1}, "port_key.proto: value -1 out of range"),
        ("port_key", {"port": 1, "proto": True}, "port_key.proto: expected an integer"),
        ("port_key", {"port": 1, "proto": "6"}, "port_key.proto: expected an integer"),
        ("lpm_key", {"prefixlen": 8, "ip": "10.0.0.256"}, "lpm_key.ip"),
        ("lpm_key", {"prefixlen": 8, "ip": 167772161}, "lpm_key.ip: expected a dotted-quad"),
        ("lpm_key", {"prefixlen": 2**32, "ip": "10.0.0.0"}, "out of range for 32 bits"),
        ("nope", {}, "unknown struct 'nope'"),
        ("port_key", [1], "expected an object"),
    ],
)
def test_pack_errors(layout: Layout, struct_name: str, values: object, message: str) -> None:
    with pytest.raises(LayoutError, match=message):
        layout.pack(struct_name, values)


def test_unpack_wrong_size(layout: Layout) -> None:
    with pytest.raises(LayoutError, match="expected 8 bytes, got 4"):
        layout.unpack("lpm_key", bytes(4))


def test_pack_entries_names_map_entry_and_field(layout: Layout) -> None:
    entries = [
        {"key": {"port": 22, "proto": 6}, "value": DENY | {"verdict": 40}, "note": "ssh"},
        {"key": {"port": 80, "proto": 6}, "value": DENY | {"verdict": 41, "colour": 1}},
    ]
    with pytest.raises(LayoutError, match=r"map deny_port entry 1: deny_entry: unknown.*colour"):
        layout.pack_entries("deny_port", entries)
    entries[1]["value"] = DENY | {"verdict": 41}
    pairs = layout.pack_entries("deny_port", entries)
    assert pairs[0] == (b"\x00\x16\x06\x00", struct.pack("<I", 40) + bytes(8))
    with pytest.raises(LayoutError, match="map deny_port entry 0: missing 'key'"):
        layout.pack_entries("deny_port", [{"value": DENY}])
    with pytest.raises(LayoutError, match=r"map deny_port entry 0: unknown field.*comment"):
        layout.pack_entries("deny_port", [{"key": {}, "comment": "x"}])
    with pytest.raises(LayoutError, match="map nope: not in the layout"):
        layout.pack_entries("nope", [])
    with pytest.raises(LayoutError, match="max_entries 64"):
        layout.pack_entries("stats", [{"key": i, "value": STATS} for i in range(65)])


def test_malformed_layouts() -> None:
    doc = json.loads((DATA / "layout.json").read_text())
    bad = copy.deepcopy(doc)
    bad["structs"]["lpm_key"]["fields"][0]["encoding"] = "u24"
    with pytest.raises(LayoutError, match="unknown encoding 'u24'"):
        Layout(bad)
    bad = copy.deepcopy(doc)
    bad["structs"]["lpm_key"]["fields"][1]["offset"] = 6
    with pytest.raises(LayoutError, match="outside the 8-byte struct"):
        Layout(bad)
    bad = copy.deepcopy(doc)
    bad["maps"]["seen"]["value"] = "missing"
    with pytest.raises(LayoutError, match="unknown struct 'missing'"):
        Layout(bad)
    with pytest.raises(LayoutError):
        Layout({"structs": {}})


def test_compiler_layout_document() -> None:
    """The loader reads the document netcc.contract.layout writes (the test may import it)."""
    layout = Layout(layout_document({m.capacity: 16 for m in MAPS}))
    assert set(layout.maps) == {m.name for m in MAPS}
    key = {"prefixlen": 72, "profile": 3, "peer": 9, "dir": 1, "proto": 6, "port": 443}
    raw = layout.pack("policy_key", key)
    assert len(raw) == 16 and raw[-2:] == (443).to_bytes(2, "big")
    assert layout.unpack("policy_key", raw) == key
    ct = {"local": "10.0.0.1", "remote": "10.0.0.2", "lport": 1, "rport": 2, "proto": 17}
    assert layout.unpack("ct_key", layout.pack("ct_key", ct)) == ct
