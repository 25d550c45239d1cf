"""Typed map entries (`netcc.contract.entries`): a record per struct with exactly its fields,
every value checked against its encoding, a wrong one named by map, node and entry (the
planner's refusal is tests/unit/test_unit_plan.py's)."""

from __future__ import annotations

import pytest

from netcc.contract import entries
from netcc.contract.entries import (
    RECORDS,
    Entry,
    EntryError,
    IpcacheEntry,
    IpcacheKey,
    LbRow,
    LbRowKey,
    PolicyEntry,
    PolicyExactKey,
    check_entries,
    data_fields,
    entry,
)
from netcc.contract.maps import MAPS, maps_for, structs_of

BY_NAME = {m.name: m for m in MAPS}
EXACT = BY_NAME["netcc_policy_exact"]
IPCACHE = BY_NAME["netcc_ipcache"]


def test_every_struct_has_a_record_with_exactly_its_fields_but_padding() -> None:
    for s in structs_of(MAPS):
        fields = RECORDS[s.name]._fields
        assert fields == tuple(f.name for f in s.fields if f.encoding != "pad8"), s.name
        assert fields == data_fields(s)
    assert "pad" not in RECORDS["lb_member_key"]._fields  # padding is never given


def test_a_record_cannot_be_made_with_a_field_missing_or_one_too_many() -> None:
    with pytest.raises(TypeError, match="port"):
        PolicyExactKey(profile=1, peer=2, dir=1, proto=6)
    with pytest.raises(TypeError, match="colour"):
        PolicyExactKey(profile=1, peer=2, dir=1, proto=6, port=80, colour=1)
    with pytest.raises(EntryError, match=r"map netcc_ipcache entry \(n\): key of struct "):
        entry("netcc_ipcache", {}, {"identity": 1, "peer": 1, "workload": 0, "flags": 0}, "n")
    with pytest.raises(EntryError, match=r"missing field.*flags; unknown field.*colour"):
        entry(IPCACHE, {"ip": "10.0.0.1"}, {"identity": 1, "peer": 1, "workload": 0, "colour": 1})


def _exact(port: object = 80, verdict: object = 40, note: object = "a/p ingress[0]") -> Entry:
    return Entry(PolicyExactKey(2, 5, 1, 6, port), PolicyEntry(verdict), note)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (_exact(port=65536), r"key field port: 65536 is not an integer of 16 bits"),
        (_exact(port=-1), r"key field port: -1 is not an integer of 16 bits"),
        (_exact(port=True), r"key field port: True is not an integer"),
        (_exact(port="80"), r"key field port: '80' is not an integer"),
        (_exact(verdict=2**32), r"value field verdict: 4294967296 is not an integer of 32 bits"),
        (_exact(note=None), r"note is a NoneType, expected text"),
        (
            Entry(PolicyExactKey(2, 5, 1, 6, 80), IpcacheEntry(1, 1, 0, 0), "x"),
            "value is a IpcacheEntry, expected a PolicyEntry",
        ),
        (({"key": 1}, {}, "dict"), "expected an Entry, got tuple"),
        (
            Entry(tuple.__new__(PolicyExactKey, (2, 5, 1, 6)), PolicyEntry(1), "x"),
            "key has 4 fields, policy_exact_key has 5",
        ),
    ],
)
def test_a_value_outside_its_encoding_names_the_map_node_and_entry(bad, message) -> None:
    good = _exact()
    with pytest.raises(EntryError, match=r"map netcc_policy_exact on node n1 entry 1.*" + message):
        check_entries(EXACT, [good, bad, good], "n1")
    check_entries(EXACT, [good, good], "n1")


def test_addresses_and_arrays() -> None:
    ok = Entry(IpcacheKey("10.0.0.1"), IpcacheEntry(1, 2, 0, 0), "pod")
    check_entries(IPCACHE, [ok])
    for ip in ("10.0.0.256", "010.0.0.1", "10.0.0", 167772161, " 10.0.0.1"):
        bad = Entry(IpcacheKey(ip), IpcacheEntry(1, 2, 0, 0), "pod")
        with pytest.raises(EntryError, match=r"key field ip: .* is not a dotted-quad"):
            check_entries(IPCACHE, [ok, bad])
    maglev = {m.name: m for m in maps_for(7)}["netcc_lb_maglev"]
    check_entries(maglev, [Entry(LbRowKey(1), LbRow((1, 2, 1, 2, 1, 2, 1)), "row")])
    for row, why in (((1,) * 8, "at most 7"), ([1] * 7, "tuple"), ((1, True), "tuple")):
        with pytest.raises(EntryError, match=f"value field backends: .*{why}"):
            check_entries(maglev, [Entry(LbRowKey(1), LbRow(row), "row")])


def test_a_bool_among_equal_integers_is_still_found() -> None:
    """Values are checked as distinct values where that is safe: 1 and True are equal."""
    many = [_exact(port=1)] * 5 + [_exact(port=True)]
    with pytest.raises(EntryError, match=r"entry 5 .*True is not an integer"):
        check_entries(EXACT, many)


def test_entries_from_dicts_and_back() -> None:
    key = {"profile": 2, "peer": 5, "dir": 1, "proto": 6, "port": 8080}
    e = entry("netcc_policy_exact", key, {"verdict": 36}, "shop/frontend ingress[0]")
    assert e == Entry(PolicyExactKey(2, 5, 1, 6, 8080), PolicyEntry(36), "shop/frontend ingress[0]")
    assert entries.as_dicts(e) == (key, {"verdict": 36})
    maglev = {m.name: m for m in maps_for(7)}["netcc_lb_maglev"]
    row = entry(maglev, {"id": 1}, {"backends": [1, 2]})
    assert row.value.backends == (1, 2)  # records hold tuples; files give lists
    assert entries.as_dicts(row)[1] == {"backends": [1, 2]}
