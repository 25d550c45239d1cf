"""Typed map entries: one record type per struct of `netcc.contract.maps`, checked against it.

A record is a named tuple with exactly the struct's fields, padding left out, in layout order
(`ENDPOINT_INFO` gives `EndpointInfo(workload, profile, identity, ifindex, flags,
ingress_deny, egress_deny, router)`), so a record cannot be made with a field missing or one
too many: Python refuses the call. An `Entry` is a key record, a value record and a note for
reviewers. What a record's fields hold is checked against their encodings by `check_entries`,
a whole map at a time and column by column (the planner makes millions of entries): an
integer of the field's width (never a bool), a dotted-quad IPv4 address, or for an array a
tuple of at most `count` integers (records are immutable and hashable; map files give lists).
A wrong value is an `EntryError` naming the map, the entry's position and its note, at compile
time, long before a kernel would see the bytes.

Map files hold the same entries as JSON objects (`netcc.contract.mapfile`); `entry()` builds
an Entry from such dicts with the same checks, and `as_dicts` goes back.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from functools import cache
from operator import itemgetter
from typing import Any, NamedTuple

from netcc.contract.maps import MAPS, MapDef, Struct, structs_of

BITS = {"u8": 8, "u16": 16, "u32": 32, "u64": 64, "be16": 16, "be32": 32}
PADDING = "pad8"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
DOTTED_QUAD = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")


class EntryError(ValueError):
    """An entry that does not fit its map's layout."""


class Entry(NamedTuple):
    """One map entry: its key and value records, and a note for reviewers."""

    key: tuple
    value: tuple
    note: str = ""


def data_fields(struct: Struct) -> tuple[str, ...]:
    """The struct's field names an entry gives, in layout order (padding is never given)."""
    return tuple(f.name for f in struct.fields if f.encoding != PADDING)


def _class_name(struct: Struct) -> str:
    return "".join(part.capitalize() for part in struct.name.split("_"))


@cache
def _record_type(name: str, fields: tuple[str, ...]) -> type:
    cls = NamedTuple(name, [(f, Any) for f in fields])  # type: ignore[misc]
    cls.__doc__ = f"A `{name}` of `netcc.contract.maps`: {', '.join(fields)}."
    return cls


def record_type(struct: Struct) -> type:
    """The record type of `struct` (one type per struct name and field list)."""
    return _record_type(_class_name(struct), data_fields(struct))


RECORDS: dict[str, type] = {s.name: record_type(s) for s in structs_of(MAPS)}
MAPS_BY_NAME: dict[str, MapDef] = {m.name: m for m in MAPS}

# The records the planner fills, by name.
EndpointKey = RECORDS["endpoint_key"]
EndpointInfo = RECORDS["endpoint_info"]
IpcacheKey = RECORDS["ipcache_key"]
IpcacheLpmKey = RECORDS["ipcache_lpm_key"]
IpcacheEntry = RECORDS["ipcache_entry"]
ClassBlockKey = RECORDS["class_block_key"]
PolicyKey = RECORDS["policy_key"]
PolicyExactKey = RECORDS["policy_exact_key"]
PolicyEntry = RECORDS["policy_entry"]
LbServiceKey = RECORDS["lb_service_key"]
LbService = RECORDS["lb_service"]
LbBackendKey = RECORDS["lb_backend_key"]
LbBackend = RECORDS["lb_backend"]
LbRowKey = RECORDS["lb_row_key"]
LbRow = RECORDS["lb_row"]
LbMemberKey = RECORDS["lb_member_key"]
LbMember = RECORDS["lb_member"]


# --- checking --------------------------------------------------------------------------------


def _where(m: MapDef, entries: Sequence[Entry], i: int, node: str | None) -> str:
    on = f" on node {node}" if node else ""
    note = getattr(entries[i], "note", "") if isinstance(entries[i], tuple) else ""
    return f"map {m.name}{on} entry {i}" + (f" ({note})" if note else "")


def _bad_int(v: object, bits: int) -> bool:
    return type(v) is not int or not 0 <= v < 1 << bits  # type: ignore[operator]


def _bad_ipv4(v: object) -> bool:
    return type(v) is not str or DOTTED_QUAD.fullmatch(v) is None  # type: ignore[arg-type]


def _bad_array(v: object, bits: int, count: int) -> bool:
    if type(v) is not tuple or len(v) > count:  # type: ignore[arg-type]
        return True
    return bool(set(map(type, v)) - {int}) or (bool(v) and (min(v) < 0 or max(v) >= 1 << bits))


def _values_ok(values: Collection, encoding: str, count: int) -> bool:
    """Whether every value of one field fits its encoding (given distinct where that is
    safe: a field repeats its values over a map's entries)."""
    if count > 1:
        bits = BITS[encoding]
        return not any(_bad_array(v, bits, count) for v in values)
    if encoding == "ipv4":
        return set(map(type, values)) <= {str} and all(map(DOTTED_QUAD.fullmatch, values))
    if set(map(type, values)) - {int}:
        return False
    return not values or (min(values) >= 0 and max(values) < 1 << BITS[encoding])


def _bad(v: object, encoding: str, count: int) -> bool:
    if count > 1:
        return _bad_array(v, BITS[encoding], count)
    return _bad_ipv4(v) if encoding == "ipv4" else _bad_int(v, BITS[encoding])


def _expected(encoding: str, count: int) -> str:
    if count > 1:
        return f"a tuple of at most {count} {encoding} integers"
    if encoding == "ipv4":
        return "a dotted-quad IPv4 address"
    return f"an integer of {BITS[encoding]} bits"


def check_entries(m: MapDef, entries: Sequence[Entry], node: str | None = None) -> None:
    """Check every entry of map `m` against its layout; EntryError names the first one wrong.

    Each entry must be an Entry whose key and value are the records of the map's structs and
    whose note is text; each field's values must fit the field's encoding."""
    if m.key is None:
        raise EntryError(f"map {m.name}: an array, filled by the datapath, not from entries")
    parts = ((0, "key", m.key), (1, "value", m.value))
    types = [record_type(s) for _, _, s in parts]
    # Shape first, in bulk; only a failure looks at entries one by one, to name the first.
    shaped = set(map(type, entries)) <= {Entry}
    columns = [list(map(itemgetter(i), entries)) if shaped else [] for i in range(2)]
    if not (
        shaped
        and set(map(type, columns[0])) <= {types[0]}
        and set(map(type, columns[1])) <= {types[1]}
        and set(map(type, map(itemgetter(2), entries))) <= {str}
    ):
        for i, e in enumerate(entries):
            if (
                type(e) is not Entry
                or type(e.key) is not types[0]
                or type(e.value) is not types[1]
                or type(e.note) is not str
            ):
                raise EntryError(f"{_where(m, entries, i, node)}: {_shape(e, m, types)}")
    for part, what, struct in parts:
        records = columns[part]
        fields = [f for f in struct.fields if f.encoding != PADDING]
        if set(map(len, records)) - {len(fields)}:  # made around the constructor
            i = next(i for i, rec in enumerate(records) if len(rec) != len(fields))
            raise EntryError(
                f"{_where(m, entries, i, node)}: {what} has {len(records[i])} fields, "
                f"{struct.name} has {len(fields)}"
            )
        for j, f in enumerate(fields):
            if f.count > 1:  # arrays: each distinct object (rows share theirs) in full
                values = list({id(v): v for v in map(itemgetter(j), records)}.values())
            elif set(map(type, map(itemgetter(j), records))) <= {int, str}:
                values = set(map(itemgetter(j), records))  # no bool: equal values are alike
            else:
                values = list(map(itemgetter(j), records))
            if _values_ok(values, f.encoding, f.count):
                continue
            i = next(i for i, r in enumerate(records) if _bad(r[j], f.encoding, f.count))
            raise EntryError(
                f"{_where(m, entries, i, node)}: {what} field {f.name}: {records[i][j]!r} is "
                f"not {_expected(f.encoding, f.count)}"
            )


def _shape(e: object, m: MapDef, types: list[type]) -> str:
    if type(e) is not Entry:
        return f"expected an Entry, got {type(e).__name__}"
    for got, want, what in ((e.key, types[0], "key"), (e.value, types[1], "value")):
        if type(got) is not want:
            return f"{what} is a {type(got).__name__}, expected a {want.__name__}"
    return f"note is a {type(e.note).__name__}, expected text"


# --- dicts (map files) -----------------------------------------------------------------------


def _record(m: MapDef, struct: Struct, values: object, what: str, where: str) -> tuple:
    if not isinstance(values, Mapping):
        raise EntryError(f"{where}: {what} must be an object, got {type(values).__name__}")
    names = data_fields(struct)
    missing = [n for n in names if n not in values]
    extra = sorted(set(values) - set(names))
    if missing or extra:
        problems = [f"missing field(s) {', '.join(missing)}"] if missing else []
        problems += [f"unknown field(s) {', '.join(extra)}"] if extra else []
        raise EntryError(f"{where}: {what} of struct {struct.name}: {'; '.join(problems)}")
    arrays = {f.name for f in struct.fields if f.count > 1 and f.encoding != PADDING}
    return record_type(struct)(
        *(
            tuple(values[n]) if n in arrays and isinstance(values[n], list) else values[n]
            for n in names
        )
    )


def entry(
    m: MapDef | str, key: Mapping[str, Any], value: Mapping[str, Any], note: str = ""
) -> Entry:
    """An Entry of map `m` from field dicts (a map file's shape), checked: exact field names
    and every value within its encoding. EntryError names the map and the entry."""
    m = MAPS_BY_NAME[m] if isinstance(m, str) else m
    where = f"map {m.name} entry" + (f" ({note})" if note else "")
    if m.key is None:
        raise EntryError(f"map {m.name}: an array, filled by the datapath, not from entries")
    e = Entry(
        _record(m, m.key, key, "key", where), _record(m, m.value, value, "value", where), note
    )
    check_entries(m, [e])
    return e


def as_dicts(e: Entry) -> tuple[dict[str, Any], dict[str, Any]]:
    """The entry's key and value as field dicts, in layout order (a map file's shape)."""
    return _dict(e.key), _dict(e.value)


def _dict(record: Any) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in record._asdict().items()}
