"""`bpf/layout.json`: the byte layout of every map, written by the compiler, read by the loader.

The compiler renders it from `netcc.contract.maps` (`layout_document`); the loader packs and
unpacks map entries with it alone (`Layout`), so a loader can apply an OUT of another netcc
version as long as the document's format holds:

    {"structs": {NAME: {"size": N, "fields": [{"name", "offset", "size", "encoding"
                                              [, "count": N for integer arrays]}]}},
     "maps": {MAP: {"type": "hash" | "lru_hash" | "lpm_trie" | "array" | "percpu_array" | "ringbuf",
                    "key": STRUCT | "u32", "value": STRUCT, "max_entries": N}}}

Encodings are those of `netcc.contract.maps.ENCODINGS`: host-order integers (u8..u64),
network-order integers (be16, be32), IPv4 addresses given as dotted quads (ipv4), padding
(pad8, never given). Every other field must be given: an entry missing one is refused, never
packed as zero (`Layout.pack(..., partial=True)` zeroes missing fields, for repacking runtime
state whose layout gained a field).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netcc.contract.maps import DEFAULT_MAGLEV_SIZE, maps_for

LAYOUT_PATH = "bpf/layout.json"  # in OUT


# --- writing it (the compiler) ---------------------------------------------------------------


def layout_document(capacities: dict[str, int]) -> dict:
    """The `layout.json` document: structs with offsets, and maps with their sizes."""
    structs = {}
    all_maps = maps_for(
        capacities.get("NETCC_LB_MAGLEV_SIZE", DEFAULT_MAGLEV_SIZE),
        classes="NETCC_MAX_CLASS_BLOCKS" in capacities,  # a datapath with workload classes
    )
    for m in all_maps:
        for s in (m.key, m.value):
            if s is not None:
                structs[s.name] = {
                    "size": s.size,
                    "fields": [
                        {"name": f.name, "offset": off, "size": f.size, "encoding": f.encoding}
                        | ({"count": f.count} if f.count > 1 and f.encoding != "pad8" else {})
                        for f, off in s.offsets()
                    ],
                }
    maps = {
        m.name: {
            "type": m.kind,
            "key": m.key.name if m.key else "u32",
            "value": m.value.name,
            "max_entries": capacities[m.capacity],
        }
        for m in all_maps
    }
    return {"structs": dict(sorted(structs.items())), "maps": maps}


# --- reading it (the loader) ------------------------------------------------------------------

INT_ENCODINGS = {"u8": (1, "little"), "u16": (2, "little"), "u32": (4, "little")}
INT_ENCODINGS |= {"u64": (8, "little"), "be16": (2, "big"), "be32": (4, "big")}
ENCODINGS = {*INT_ENCODINGS, "ipv4", "pad8"}
U32_KEY = "u32"
ENTRY_FIELDS = {"key", "value", "note"}  # of an entry in a map file (netcc.contract.mapfile)


class LayoutError(ValueError):
    """A layout document or a map entry that does not fit it."""


@dataclass(frozen=True)
class FieldDef:
    name: str
    offset: int
    size: int
    encoding: str
    count: int = 1  # > 1: an array of integers (given as a JSON list)


@dataclass(frozen=True)
class StructDef:
    name: str
    size: int
    fields: dict[str, FieldDef]


@dataclass(frozen=True)
class MapLayout:
    name: str
    type: str
    key: str
    value: str
    max_entries: int

    @property
    def percpu(self) -> bool:
        return "percpu" in self.type


def _parse_struct(name: str, doc: dict) -> StructDef:
    try:
        size = int(doc["size"])
        fields: dict[str, FieldDef] = {}
        for f in doc["fields"]:
            fd = FieldDef(
                str(f["name"]),
                int(f["offset"]),
                int(f["size"]),
                str(f["encoding"]),
                int(f.get("count", 1)),
            )
            fields[fd.name] = fd
    except (KeyError, TypeError, ValueError) as e:
        raise LayoutError(f"layout: struct {name}: malformed ({e!r})") from e
    for fd in fields.values():
        if fd.encoding not in ENCODINGS:
            raise LayoutError(f"layout: {name}.{fd.name}: unknown encoding {fd.encoding!r}")
        want = INT_ENCODINGS[fd.encoding][0] if fd.encoding in INT_ENCODINGS else 4
        if fd.count > 1 and fd.encoding not in INT_ENCODINGS:
            raise LayoutError(f"layout: {name}.{fd.name}: only integer fields can be arrays")
        if fd.encoding != "pad8" and fd.size != want * fd.count:
            raise LayoutError(
                f"layout: {name}.{fd.name}: {fd.count} x {fd.encoding} must be "
                f"{want * fd.count} bytes"
            )
        if fd.offset < 0 or fd.size < 1 or fd.offset + fd.size > size:
            raise LayoutError(f"layout: {name}.{fd.name} lies outside the {size}-byte struct")
    return StructDef(name, size, fields)


class Layout:
    """Struct and map layouts from a `layout.json` document."""

    def __init__(self, doc: dict) -> None:
        if not isinstance(doc, dict) or "structs" not in doc or "maps" not in doc:
            raise LayoutError("layout: expected an object with 'structs' and 'maps'")
        self.structs = {n: _parse_struct(n, s) for n, s in doc["structs"].items()}
        self.maps: dict[str, MapLayout] = {}
        for name, m in doc["maps"].items():
            try:
                ml = MapLayout(name, m["type"], m["key"], m["value"], int(m["max_entries"]))
            except (KeyError, TypeError, ValueError) as e:
                raise LayoutError(f"layout: map {name}: malformed ({e!r})") from e
            for ref in (ml.key, ml.value):
                if ref != U32_KEY and ref not in self.structs:
                    raise LayoutError(f"layout: map {name} refers to unknown struct {ref!r}")
            self.maps[name] = ml

    @classmethod
    def from_file(cls, path: str | Path) -> Layout:
        return cls(json.loads(Path(path).read_text()))

    def size(self, struct_name: str) -> int:
        """Byte size of a struct, or 4 for "u32"."""
        return 4 if struct_name == U32_KEY else self._struct(struct_name).size

    def _struct(self, name: str) -> StructDef:
        try:
            return self.structs[name]
        except KeyError:
            raise LayoutError(f"unknown struct {name!r}") from None

    def map_layout(self, name: str) -> MapLayout:
        """The layout of map `name`; LayoutError when the document has no such map."""
        try:
            return self.maps[name]
        except KeyError:
            raise LayoutError(f"map {name}: not in the layout") from None

    def pack(self, struct_name: str, values: Any, *, partial: bool = False) -> bytes:
        """Bytes of one struct from {field: value}: every field but padding must be given
        (with `partial`, missing fields are zero). For "u32", `values` is an int or
        {"index": int}."""
        if struct_name == U32_KEY:
            if isinstance(values, dict):
                if set(values) - {"index"}:
                    raise LayoutError(f"u32: unknown field(s) {sorted(set(values) - {'index'})}")
                if "index" not in values and not partial:
                    raise LayoutError("u32: missing field(s) index")
                values = values.get("index", 0)
            return _pack_int(values, 4, "little", "u32")
        s = self._struct(struct_name)
        if not isinstance(values, dict):
            raise LayoutError(f"{struct_name}: expected an object, got {type(values).__name__}")
        unknown = set(values) - set(s.fields)
        if unknown:
            raise LayoutError(f"{struct_name}: unknown field(s) {', '.join(sorted(unknown))}")
        if not partial:
            missing = [n for n, f in s.fields.items() if f.encoding != "pad8" and n not in values]
            if missing:
                raise LayoutError(f"{struct_name}: missing field(s) {', '.join(missing)}")
        out = bytearray(s.size)
        for f in s.fields.values():
            if f.encoding == "pad8" or f.name not in values:
                continue
            where = f"{struct_name}.{f.name}"
            if f.encoding == "ipv4":
                out[f.offset : f.offset + 4] = _pack_ipv4(values[f.name], where)
            elif f.count > 1:
                out[f.offset : f.offset + f.size] = _pack_array(values[f.name], f, where)
            else:
                size, order = INT_ENCODINGS[f.encoding]
                out[f.offset : f.offset + size] = _pack_int(values[f.name], size, order, where)
        return bytes(out)

    def unpack(self, struct_name: str, data: bytes) -> Any:
        """{field: value} of one struct (padding left out); an int for "u32"."""
        size = self.size(struct_name)
        if len(data) != size:
            raise LayoutError(f"{struct_name}: expected {size} bytes, got {len(data)}")
        if struct_name == U32_KEY:
            return int.from_bytes(data, "little")
        out: dict[str, Any] = {}
        for f in self._struct(struct_name).fields.values():
            raw = data[f.offset : f.offset + f.size]
            if f.encoding == "ipv4":
                out[f.name] = str(ipaddress.IPv4Address(raw))
            elif f.count > 1:
                size, order = INT_ENCODINGS[f.encoding]
                out[f.name] = [
                    int.from_bytes(raw[i : i + size], order) for i in range(0, f.size, size)
                ]
            elif f.encoding != "pad8":
                out[f.name] = int.from_bytes(raw, INT_ENCODINGS[f.encoding][1])
        return out

    def pack_entries(self, map_name: str, entries: list[dict]) -> list[tuple[bytes, bytes]]:
        """(key, value) bytes of every entry of a map data file."""
        m = self.map_layout(map_name)
        if not isinstance(entries, list):
            raise LayoutError(f"map {map_name}: 'entries' must be a list")
        out = []
        for i, entry in enumerate(entries):
            where = f"map {map_name} entry {i}"
            if not isinstance(entry, dict):
                raise LayoutError(f"{where}: expected an object")
            extra = set(entry) - ENTRY_FIELDS
            if extra:
                raise LayoutError(f"{where}: unknown field(s) {', '.join(sorted(extra))}")
            if "key" not in entry or "value" not in entry:
                raise LayoutError(f"{where}: missing '{'key' if 'key' not in entry else 'value'}'")
            try:
                key = self.pack(m.key, entry["key"])
                value = self.pack(m.value, entry["value"])
            except LayoutError as e:
                raise LayoutError(f"{where}: {e}") from None
            out.append((key, value))
        if len(out) > m.max_entries:
            raise LayoutError(f"map {map_name}: {len(out)} entries, max_entries {m.max_entries}")
        return out


def _pack_int(v: Any, size: int, order: str, where: str) -> bytes:
    if not isinstance(v, int) or isinstance(v, bool):
        raise LayoutError(f"{where}: expected an integer, got {v!r}")
    if not 0 <= v < 1 << (8 * size):
        raise LayoutError(f"{where}: value {v} out of range for {size * 8} bits")
    return v.to_bytes(size, order)  # type: ignore[arg-type]


def _pack_array(v: Any, f: FieldDef, where: str) -> bytes:
    """An integer array field from a list of at most `count` integers (the rest zero)."""
    if not isinstance(v, list) or len(v) > f.count:
        raise LayoutError(f"{where}: expected a list of at most {f.count} integers")
    size, order = INT_ENCODINGS[f.encoding]
    packed = b"".join(_pack_int(x, size, order, where) for x in v)
    return packed + bytes(f.size - len(packed))


def _pack_ipv4(v: Any, where: str) -> bytes:
    if not isinstance(v, str):
        raise LayoutError(f"{where}: expected a dotted-quad IPv4 address, got {v!r}")
    try:
        return ipaddress.IPv4Address(v).packed
    except ValueError as e:
        raise LayoutError(f"{where}: {e}") from None
