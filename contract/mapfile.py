"""`OUT/nodes/NODE/maps/MAP.json`: one node's entries of one map, written and read.

One entry per line, so reviews diff well; each entry gives its key's and value's fields by
name (as `bpf/layout.json` names them) and a note for reviewers that the loader ignores:

    {
     "map": "netcc_policy_exact",
     "entries": [
      {"key": {"profile": 2, ...}, "value": {"verdict": 36}, "note": "shop/frontend ingress[0]"},
      ...
     ]
    }

The file is named after its map. `nodes/NODE/maps/` holds one file per map the node fills;
maps without a file start empty.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from netcc.contract.layoutfile import LayoutError

MAPS_DIR = "nodes/{node}/maps/"  # in OUT
MAP_PATH = MAPS_DIR + "{map}.json"


def entry_line(key: dict[str, Any], value: dict[str, Any], note: str = "") -> str:
    """One entry's line of a map file."""
    return "  " + json.dumps({"key": key, "value": value, "note": note})


def map_file(name: str, lines: Iterable[str]) -> bytes:
    """A map file from its entries' lines (`entry_line`), in order."""
    body = ",\n".join(lines)
    return (f'{{\n "map": {json.dumps(name)},\n "entries": [\n{body}\n ]\n}}\n').encode()


def parse_map_file(data: bytes | str, where: object = "map file") -> tuple[str, list[Any]]:
    """(map name, entries) of a map file's bytes; LayoutError when it is not shaped as one.

    The entries are checked against the map's layout when they are packed
    (`netcc.contract.layoutfile.Layout.pack_entries`)."""
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise LayoutError(f"{where}: not JSON ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("map"), str):
        raise LayoutError(f"{where}: expected an object with a 'map' name")
    return doc["map"], doc.get("entries", [])


def load_map_file(path: str | Path) -> tuple[str, list[Any]]:
    """(map name, entries) of the map file at `path`."""
    return parse_map_file(Path(path).read_bytes(), path)
