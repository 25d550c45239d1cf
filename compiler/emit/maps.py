"""Emit the data: map files (shared entries and node overlays), the layout and the tables.

Map files follow `netcc.contract.mapfile`: for each map, the entries held by more than half of
the nodes (same key, value and note) go to the shared `maps/MAP.json`; each node's overlay
`nodes/NODE/maps/MAP.json` holds what differs (entries replacing or adding to the shared
ones, and shared keys it lacks), and only where something does. No map is special: the
ipcache shares all but each node's own two addresses, the LB maps all but the node-local
flags and rows, the policy maps what nodes happen to hold alike.

Lines are rendered from each map's struct with a format string (no `json.dumps` per entry),
byte for byte what `json.dumps` gives. In a map with a grouping field (`MapDef.each`: the
peer of the policy maps), the entries that differ only in it share one line listing its
values (`"each"`), in the order of their first entry: a rule's peers are one line, not one
line each.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain, filterfalse, repeat
from operator import itemgetter

from netcc.contract import services as services_file
from netcc.contract.classes import CLASSES_FILE
from netcc.contract.constants import IDENTITY_HOST, IDENTITY_REMOTE_NODE, IDENTITY_WORLD
from netcc.contract.entries import PADDING, Entry
from netcc.contract.layoutfile import LAYOUT_PATH, layout_document
from netcc.contract.mapfile import MAP_PATH, NODE_FILE, SHARED_PATH, map_file
from netcc.contract.maps import MapDef, Struct, maps_for
from netcc.contract.verdicts import VERDICTS_PATH, verdicts_document
from netcc.emit.classes import classes_document, node_addresses
from netcc.plan.planner import DIRECTIONS, MAP_ORDER, ORDER, ClusterPlan, NodePlan


def _dump(doc: object) -> bytes:
    return (json.dumps(doc, indent=2, ensure_ascii=True) + "\n").encode()


# --- lines -----------------------------------------------------------------------------------


def _struct_format(s: Struct) -> tuple[str, bool]:
    """A %-format of the struct's JSON object from its record's fields, and whether it has
    arrays (their records are converted first, see `_Renderer`)."""
    parts, arrays = [], False
    for f in s.fields:
        if f.encoding == PADDING:
            continue
        if f.count > 1:
            arrays = True
            value = "[%s]"
        elif f.encoding == "ipv4":
            value = '"%s"'  # a checked dotted quad: nothing to escape
        else:
            value = "%d"
        parts.append(f"{json.dumps(f.name)}: {value}")
    return "{" + ", ".join(parts) + "}", arrays


def _joined(record: tuple) -> tuple:
    """A record with its arrays as the text between their brackets."""
    return tuple(", ".join(map(str, v)) if isinstance(v, tuple) else v for v in record)


class _Renderer:
    """The entries (or keys) of one map as the body of its file: their lines, as `json.dumps`
    writes them (byte for byte), joined by `,` and line ends.

    All of a body is one %-format: the line's format repeated, applied to every record's
    fields at once (no string per line: millions of short-lived strings would leave the
    allocator's arenas fragmented). A record with an array (a Maglev row) is converted
    first, line by line (a handful)."""

    def __init__(self, m: MapDef, notes: dict[str, str]) -> None:
        assert m.key is not None
        key, key_arrays = _struct_format(m.key)
        value, value_arrays = _struct_format(m.value)
        self.key = "  " + key
        self.line = f'  {{"key": {key}, "value": {value}, "note": %s}}'
        self.arrays = key_arrays or value_arrays
        self.notes = notes  # note -> its JSON, shared by every map
        self.each: int | None = None  # the grouping field's place in a key record
        if m.each is not None:
            fields = [f for f in m.key.fields if f.encoding != PADDING]
            self.each = next(i for i, f in enumerate(fields) if f.name == m.each)
            rest = Struct(m.key.name, m.key.doc, tuple(f for f in fields if f.name != m.each))
            each = f"{{{json.dumps(m.each)}: %s}}"
            self.grouped_line = (
                f'  {{"key": {_struct_format(rest)[0]}, "each": {each}, "value": {value}, '
                '"note": %s}'
            )

    def entries(self, entries: Sequence[Entry]) -> str:
        notes = self.notes
        for note in set(map(NOTE, entries)) - notes.keys():
            notes[note] = json.dumps(note)
        keys, values = map(KEY, entries), map(VALUE, entries)
        if self.arrays:
            keys, values = map(_joined, keys), map(_joined, values)
        rows = zip(keys, values, zip(map(notes.__getitem__, map(NOTE, entries))), strict=True)
        return _format(self.line, len(entries), chain.from_iterable(rows))

    def group(self, entries: Sequence[Entry]) -> list[Group]:
        """The entries as (key but the grouping field, value, note, the field's values), in
        the order of each group's first entry."""
        i = self.each
        assert i is not None and not self.arrays
        groups: dict[tuple, list[int]] = {}
        for key, value, note in entries:
            groups.setdefault((key[:i] + key[i + 1 :], value, note), []).append(key[i])
        return [(*k, tuple(v)) for k, v in groups.items()]

    def grouped(self, groups: Sequence[Group], sets: dict[tuple, int]) -> str:
        """The lines of `groups`: a group of one as its entry's line, a list found in
        `sets` by its place there, any other list in full."""
        i = self.each
        assert i is not None
        notes = self.notes
        for note in {g[2] for g in groups} - notes.keys():
            notes[note] = json.dumps(note)
        lines = []
        for rest, value, note, values in groups:
            if len(values) == 1:
                record = rest[:i] + values + rest[i:]
                lines.append(self.line % (*record, *value, notes[note]))
                continue
            n = sets.get(values)
            listed = f'{{"set": {n}}}' if n is not None else "[" + ", ".join(map(str, values)) + "]"
            lines.append(self.grouped_line % (*rest, listed, *value, notes[note]))
        return ",\n".join(lines)

    def keys(self, keys: Sequence[tuple]) -> str:
        return _format(self.key, len(keys), map(_joined, keys) if self.arrays else keys)


def _format(line: str, n: int, records: Iterable[tuple]) -> str:
    """`n` lines of `line`'s format, joined, from the fields of `records` in order."""
    return ",\n".join(repeat(line, n)) % tuple(chain.from_iterable(records))


KEY, VALUE, NOTE = itemgetter(0), itemgetter(1), itemgetter(2)
# A grouped line: (key record without the grouping field, value record, note, its values).
Group = tuple[tuple, tuple, str, tuple]


# --- sharing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """One map over all nodes: the shared entries, and each differing node's overlay."""

    shared: list[Entry]  # sorted by the map's ORDER
    overlays: dict[str, tuple[list[Entry], list[tuple]]]  # node -> (entries, absent keys)


def split(
    nodes: Sequence[NodePlan],
    name: str,
    order: Callable[[Entry], tuple],
    common: Sequence[Entry] = (),
) -> Split:
    """The entries more than half of the nodes hold (equal key, value and note) and, for each
    node that differs, what it holds otherwise (its entries in its own order) and which shared
    keys it lacks. `common`: the entries every node holds by construction, at the start of
    each node's entries (`ClusterPlan.common`): shared without being counted node by node."""
    k = len(common)
    held = Counter(chain.from_iterable(n.maps[name][k:] for n in nodes))
    half = len(nodes) // 2
    shared_set: set[Entry] = set(common)
    if held and max(held.values()) > half:
        shared_set.update(e for e, c in held.items() if c > half)
    del held
    shared = sorted(shared_set, key=order)
    overlays = {}
    for n in nodes:
        entries = n.maps[name]
        mine = entries[k:]
        own = list(filterfalse(shared_set.__contains__, mine)) if shared_set else list(mine)
        if len(entries) - len(own) == len(shared):  # every shared entry (keys are unique)
            absent: list[tuple] = []
        else:
            keys = set(map(KEY, entries))
            absent = [e.key for e in shared if e.key not in keys]
        if own or absent:
            overlays[n.name] = (own, absent)
    return Split(shared, overlays)


# --- the files -------------------------------------------------------------------------------


def map_files(p: ClusterPlan, release: bool = False) -> dict[str, bytes]:
    """`maps/MAP.json` for every map the plan fills, and the nodes' overlays. With `release`,
    each node's entries of a map are let go as soon as its file is rendered (the plan's map
    entries are then gone: a compile renders them once and needs the memory)."""
    out: dict[str, bytes] = {}
    notes: dict[str, str] = {}
    definitions = {
        m.name: m for m in maps_for(p.capacities["NETCC_LB_MAGLEV_SIZE"], bool(p.classes))
    }
    for name in p.map_names or MAP_ORDER:
        lines = _Renderer(definitions[name], notes)
        s = split(p.nodes, name, ORDER[name], p.common.get(name, ()))
        if lines.each is not None:
            out.update(_grouped_files(p, name, lines, s, release))
            continue
        out[SHARED_PATH.format(map=name)] = map_file(name, [lines.entries(s.shared)])
        for n in p.nodes:
            overlay = s.overlays.pop(n.name, None)
            if overlay is not None:
                own, absent = overlay
                path = MAP_PATH.format(node=n.name, map=name)
                out[path] = map_file(name, [lines.entries(own)], [lines.keys(absent)])
                del own, absent, overlay
            if release:
                n.maps[name] = ()
    return out


def _grouped_files(
    p: ClusterPlan, name: str, lines: _Renderer, s: Split, release: bool
) -> dict[str, bytes]:
    """The files of a map with a grouping field: lists of values that more than one line
    gives (over the shared file and every overlay) are the shared file's `sets`, in order of
    first use."""
    shared = lines.group(s.shared)
    overlays: dict[str, tuple[list[Group], list[tuple]]] = {}
    for n in p.nodes:
        overlay = s.overlays.pop(n.name, None)
        if overlay is not None:
            overlays[n.name] = (lines.group(overlay[0]), overlay[1])
        if release:
            n.maps[name] = ()
    used = Counter(g[3] for g in chain(shared, *(o[0] for o in overlays.values())) if len(g[3]) > 1)
    sets = {values: i for i, values in enumerate(v for v, c in used.items() if c > 1)}
    set_lines = ["  [" + ", ".join(map(str, v)) + "]" for v in sets]
    body = [lines.grouped(shared, sets)]
    out = {SHARED_PATH.format(map=name): map_file(name, body, None, set_lines or None)}
    for node, (groups, absent) in overlays.items():
        path = MAP_PATH.format(node=node, map=name)
        out[path] = map_file(name, [lines.grouped(groups, sets)], [lines.keys(absent)])
    return out


def render_data(p: ClusterPlan, release: bool = False) -> dict[str, bytes]:
    """Map data (shared and per node), the layout, the verdict table, identities, peer
    classes, each node's profiles, and with workload classes `classes.json` and each node's
    addresses; `release`: see `map_files`."""
    out = {LAYOUT_PATH: _dump(layout_document(p.capacities))}
    out[VERDICTS_PATH] = _dump(verdicts_document(p.verdicts))
    out["identities.json"] = _dump(
        {
            "reserved": {
                "host": IDENTITY_HOST,
                "world": IDENTITY_WORLD,
                "remote-node": IDENTITY_REMOTE_NODE,
            },
            "workloads": {
                key: {"identity": ident.number, "labels": dict(ident.labels)}
                for key, ident in sorted(p.identities.items())
            },
        }
    )
    out["peers.json"] = _dump(
        {"peers": [{"peer": c.number, "description": c.describe(p.blocks)} for c in p.peers]}
    )
    out.update(map_files(p, release))
    for node in p.nodes:
        doc = {
            "node": node.name,
            "profiles": [{"profile": n, "workloads": list(ws)} for n, ws in node.profiles],
            "directions": list(DIRECTIONS),
        }
        if p.classes:  # what the node daemon needs to network pods (without: as before)
            doc |= node_addresses(p.cluster, node.name)
        out[NODE_FILE.format(node=node.name)] = _dump(doc)
    if p.classes:
        out[CLASSES_FILE] = classes_document(p)
    if p.dynamic is not None:
        out[services_file.SERVICES_FILE] = services_file.dump(p.dynamic)
    return out
