"""Map files: every node's map entries, as entries all nodes share plus each node's overlay.

For each map the compiler fills, OUT holds:
- `maps/MAP.json`, the *shared* file: the entries most nodes hold (the same key, value and
  note on more than half of the nodes); every node loads them;
- `nodes/NODE/maps/MAP.json`, the node's *overlay*, only where the node differs: `entries`
  that replace a shared entry of the same key or add one, and `absent`, the keys of shared
  entries the node must not have.

A node's contents of a map are `node_view(shared, overlay)`: the shared entries with the
overlay's replacing theirs and the absent ones left out, then the overlay's additions. One
entry or key per line, so reviews diff well; each entry gives its key's and value's fields by
name (as `bpf/layout.json` names them) and a note for reviewers that the loader ignores:

    {
     "map": "netcc_ipcache",
     "entries": [
      {"key": {"ip": "10.244.1.1"}, "value": {"identity": 1, ...}, "note": "this node: ..."},
      ...
     ],
     "absent": [
      {"ip": "10.244.1.9"}
     ]
    }

Where a map declares a grouping field (`MapDef.each`: the peer of the policy maps), the
entries that differ only in that field (same other key fields, value and note) may share
one line, which lists the field's values in `each`; it stands for one entry per value, in
that order:

    {"key": {"profile": 1, "dir": 1, "proto": 6, "port": 443}, "each": {"peer": [1, 2, 5]},
     "value": {"verdict": 333}, "note": "shop/web ingress[0]"}

A list that several lines give (a rule's peers, on every node that holds a pod it selects)
is written once, in the shared file's `sets`, and a line names it by its place there:
`"each": {"peer": {"set": 3}}`. Readers see the entries one by one: `parse_map_doc` expands
every grouped line (an overlay's with its shared file's sets).

`absent` is the overlay's alone. A map without a shared file starts from no entries; a node
without an overlay holds exactly the shared entries. Entries are checked against the map's
layout when they are packed (`netcc.contract.layoutfile.Layout.pack_entries`); the map files'
own shape (names, duplicate keys, absent keys that no shared entry has) is checked here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netcc.contract.layoutfile import LayoutError

SHARED_DIR = "maps/"  # in OUT
SHARED_PATH = SHARED_DIR + "{map}.json"
MAPS_DIR = "nodes/{node}/maps/"  # a node's overlays
MAP_PATH = MAPS_DIR + "{map}.json"
NODE_FILE = "nodes/{node}/node.json"  # every node of OUT has one
SUFFIX = ".json"


# --- writing (the compiler) ------------------------------------------------------------------


EACH = "each"  # an entry line standing for one entry per value of one key field


def entry_line(key: dict[str, Any], value: dict[str, Any], note: str = "") -> str:
    """One entry's line of a map file."""
    return "  " + json.dumps({"key": key, "value": value, "note": note})


def each_line(
    key: dict[str, Any], field: str, values: list[Any], value: dict[str, Any], note: str = ""
) -> str:
    """One line for the entries whose key is `key` with `field` set to each of `values`."""
    return "  " + json.dumps({"key": key, EACH: {field: values}, "value": value, "note": note})


def key_line(key: dict[str, Any]) -> str:
    """One key's line of an overlay's `absent` list."""
    return "  " + json.dumps(key)


def map_file(
    name: str,
    lines: Iterable[str],
    absent: Iterable[str] | None = None,
    sets: Iterable[str] | None = None,
) -> bytes:
    """A map file from its entries' lines (`entry_line`), in order; with `absent` (key lines,
    `key_line`), an overlay; with `sets` (lines, each a JSON list), a shared file's sets."""
    text = f'{{\n "map": {json.dumps(name)},'
    if sets is not None:
        text += f'\n "sets": {_list(sets)},'
    text += f'\n "entries": {_list(lines)}'
    if absent is not None:
        text += f',\n "absent": {_list(absent)}'
    return (text + "\n}\n").encode()


def _list(lines: Iterable[str]) -> str:
    body = ",\n".join(lines)
    return f"[\n{body}\n ]" if body else "[]"


# --- reading (the loader, reviews, benchmarks) -----------------------------------------------


@dataclass(frozen=True)
class MapDoc:
    """One map file: the map's name, its entries, and (an overlay's) absent keys."""

    name: str
    entries: list[Any]
    absent: list[Any] = field(default_factory=list)
    sets: list[list[Any]] = field(default_factory=list)  # a shared file's lists (`each`)


def parse_map_doc(
    data: bytes | str, where: object = "map file", sets: list[list[Any]] | None = None
) -> MapDoc:
    """The map file in `data`, its grouped lines expanded (a set named by its place among the
    file's own `sets`, or else among `sets`: its shared file's); LayoutError when it is not
    shaped as one."""
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise LayoutError(f"{where}: not JSON ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("map"), str):
        raise LayoutError(f"{where}: expected an object with a 'map' name")
    unknown = set(doc) - {"map", "entries", "absent", "sets"}
    if unknown:
        raise LayoutError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    entries, absent = doc.get("entries", []), doc.get("absent", [])
    if not isinstance(entries, list) or not isinstance(absent, list):
        raise LayoutError(f"{where}: 'entries' and 'absent' must be lists")
    own = doc.get("sets")
    if own is not None and (
        not isinstance(own, list) or not all(isinstance(x, list) and x for x in own)
    ):
        raise LayoutError(f"{where}: 'sets' must be a list of non-empty lists")
    if own is not None:
        sets = own
    if any(isinstance(e, dict) and EACH in e for e in entries):
        entries = list(_expanded(entries, where, sets or []))
    return MapDoc(doc["map"], entries, absent, own or [])


def _expanded(entries: list[Any], where: object, sets: list[list[Any]]) -> Iterable[Any]:
    """The entries, each grouped line (`each`) as one entry per value of its field."""
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or EACH not in e:
            yield e
            continue
        each, key = e[EACH], e.get("key")
        if not isinstance(each, dict) or len(each) != 1 or not isinstance(key, dict):
            raise LayoutError(f"{where}: entry {i}: 'each' must name one key field")
        [(name, values)] = each.items()
        if isinstance(values, dict) and set(values) == {"set"}:
            n = values["set"]
            if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n < len(sets):
                raise LayoutError(f"{where}: entry {i}: no set {n!r} among the shared sets")
            values = sets[n]
        if name in key or not isinstance(values, list) or not values:
            raise LayoutError(
                f"{where}: entry {i}: 'each' must list values of a field the key leaves out"
            )
        rest = {k: v for k, v in e.items() if k not in ("key", EACH)}
        for v in values:
            yield {"key": {**key, name: v}, **rest}


def parse_map_file(data: bytes | str, where: object = "map file") -> tuple[str, list[Any]]:
    """(map name, entries) of a map file's bytes; LayoutError when it is not shaped as one."""
    doc = parse_map_doc(data, where)
    return doc.name, doc.entries


def load_map_file(path: str | Path) -> tuple[str, list[Any]]:
    """(map name, entries) of the map file at `path`."""
    return parse_map_file(Path(path).read_bytes(), path)


def key_id(key: Any) -> Any:
    """A hashable form of an entry's key (a dict of fields, or an index)."""
    if isinstance(key, dict):
        return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in key.items()))
    return tuple(key) if isinstance(key, list) else key


def _keyed(e: Any, where: str) -> Any:
    if not isinstance(e, dict) or "key" not in e:
        raise LayoutError(f"{where}: expected an object with a 'key'")
    try:
        return key_id(e["key"])
    except TypeError:
        raise LayoutError(f"{where}: a key's fields must be numbers or text") from None


def node_view(shared: MapDoc | None, overlay: MapDoc | None) -> list[Any]:
    """A node's entries of one map: the shared entries, each replaced by the overlay's entry
    of the same key, the overlay's absent keys left out; then the overlay's other entries.

    Pure. LayoutError when the files disagree: different map names, a key twice in one
    file, a key both given and absent, or an absent key that no shared entry has."""
    if shared is not None and overlay is not None and shared.name != overlay.name:
        raise LayoutError(f"overlay of map {overlay.name} laid on map {shared.name}")
    base = shared.entries if shared is not None else []
    if overlay is None:
        return list(base)
    name = overlay.name
    replace: dict[Any, Any] = {}
    for i, e in enumerate(overlay.entries):
        k = _keyed(e, f"map {name} overlay entry {i}")
        if k in replace:
            raise LayoutError(f"map {name} overlay: key {e['key']} given twice")
        replace[k] = e
    absent = {}
    for i, k in enumerate(overlay.absent):
        try:
            absent[key_id(k)] = k
        except TypeError:
            raise LayoutError(f"map {name} overlay: absent key {i} is malformed") from None
    both = set(absent) & set(replace)
    if both:
        raise LayoutError(f"map {name} overlay: key {absent[next(iter(both))]} is given and absent")
    out, seen = [], set()
    for i, e in enumerate(base):
        k = _keyed(e, f"map {name} shared entry {i}")
        if k in seen:
            raise LayoutError(f"map {name}: shared key {e['key']} given twice")
        seen.add(k)
        if k in absent:
            continue
        out.append(replace.pop(k, e))
    unknown = set(absent) - seen
    if unknown:
        raise LayoutError(
            f"map {name} overlay: absent key {absent[sorted(unknown, key=repr)[0]]} is not shared"
        )
    out.extend(replace.values())
    return out


def node_map_paths(paths: Iterable[str], node: str) -> dict[str, tuple[str | None, str | None]]:
    """map name -> (shared file, overlay file) among OUT's `paths`: where a node's map data
    comes from (None where there is no such file)."""
    overlays = MAPS_DIR.format(node=node)
    found: dict[str, list[str | None]] = {}
    for p in paths:
        for prefix, slot in ((SHARED_DIR, 0), (overlays, 1)):
            rest = p[len(prefix) :] if p.startswith(prefix) else ""
            if rest.endswith(SUFFIX) and "/" not in rest and len(rest) > len(SUFFIX):
                found.setdefault(rest[: -len(SUFFIX)], [None, None])[slot] = p
    return {name: (s, o) for name, (s, o) in sorted(found.items())}


def node_maps(
    read: Callable[[str], bytes] | Mapping[str, bytes],
    paths: Iterable[str],
    node: str,
    only: Iterable[str] | None = None,
) -> dict[str, list[Any]]:
    """map name -> the node's entries (`node_view`), from the map files among `paths`
    (OUT-relative), read through `read` (a function or a mapping of path to bytes); `only`:
    those maps alone. Each file must name the map it is named after."""
    get = read.__getitem__ if isinstance(read, Mapping) else read
    wanted = None if only is None else set(only)
    out = {}
    for name, files in node_map_paths(paths, node).items():
        if wanted is not None and name not in wanted:
            continue
        docs: list[MapDoc | None] = []
        for rel in files:
            sets = docs[0].sets if docs and docs[0] is not None else None
            doc = None if rel is None else parse_map_doc(get(rel), rel, sets)
            if doc is not None and doc.name != name:
                raise LayoutError(f"{rel}: names map {doc.name!r}, expected {name!r}")
            docs.append(doc)
        out[name] = node_view(docs[0], docs[1])
    return out


def node_names(paths: Iterable[str]) -> list[str]:
    """The nodes of OUT: those with a `nodes/NODE/node.json` among `paths`."""
    prefix, suffix = NODE_FILE.split("{node}")
    return sorted(
        p[len(prefix) : -len(suffix)]
        for p in paths
        if p.startswith(prefix) and p.endswith(suffix) and "/" not in p[len(prefix) : -len(suffix)]
    )


def _out_paths(out: Path) -> list[str]:
    found = []
    shared = out / SHARED_DIR
    if shared.is_dir():
        found += [f"{SHARED_DIR}{p.name}" for p in shared.iterdir() if p.suffix == SUFFIX]
    nodes = out / "nodes"
    if nodes.is_dir():
        for d in nodes.iterdir():
            if (d / "node.json").is_file():
                found.append(NODE_FILE.format(node=d.name))
            maps = d / "maps"
            if maps.is_dir():
                found += [f"nodes/{d.name}/maps/{p.name}" for p in maps.iterdir()]
    return sorted(found)


def load_node_maps(
    out: str | Path, node: str, only: Iterable[str] | None = None
) -> dict[str, list[Any]]:
    """map name -> the node's entries, read from the OUT directory `out` (`node_maps`)."""
    out = Path(out)
    return node_maps(lambda rel: (out / rel).read_bytes(), _out_paths(out), node, only)


def out_node_names(out: str | Path) -> list[str]:
    """The nodes of the OUT directory `out`."""
    return node_names(_out_paths(Path(out)))
