"""The artifact directory (OUT) as the loader uses it: read once, checked against its lock.

The lock is checked (every artifact's sha256), then the files the loader uses are read once
and checked again against it, so what is loaded is what was verified: the object, the layout,
the verdict table and the map files. A node's entries of a map are its shared file
(`maps/MAP.json`) with the node's overlay (`nodes/NODE/maps/MAP.json`) laid on it, either of
which may be missing (`netcc.contract.mapfile.node_view`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netcc.contract import mapfile
from netcc.contract.layoutfile import LAYOUT_PATH, Layout, LayoutError
from netcc.contract.lock import LOCK_NAME, LockError, verify_lock
from netcc.contract.programs import OBJECT_PATH
from netcc.contract.verdicts import VERDICTS_PATH
from netcc.loader.errors import ApplyError

ENDPOINTS = "netcc_endpoints"
LB_SERVICES = "netcc_lb_services"


@dataclass
class Artifacts:
    """What apply uses from OUT, read once and checked against the lock."""

    out: Path
    node: str
    digest: str  # sha256 of netcc.lock.json: names the applied version
    lock: dict[str, Any]
    files: dict[str, bytes]  # lock, layout, verdicts, object: bytes as verified
    layout: Layout
    verdicts: dict[str, Any]
    maps: dict[str, list[dict]]  # data map -> the node's entries

    @property
    def object(self) -> bytes:
        return self.files[OBJECT_PATH]


def _node_maps(files: dict[str, bytes], paths: list[str], node: str, layout: Layout) -> dict:
    """Each data map's entries for the node: its shared file with the node's overlay laid on
    it (`mapfile.node_view`; either may be missing)."""
    maps = mapfile.node_maps(files, paths, node)
    for name in maps:
        if name not in layout.maps:
            raise LayoutError(f"map {name!r} is not in the layout")
    return maps


def read_artifacts(out: str | Path, node: str) -> Artifacts:
    """Check the lock and read what apply needs; raises ApplyError (tampered, stale,
    missing, or no such node)."""
    out = Path(out)
    try:
        lock = verify_lock(out)
    except LockError as e:
        raise ApplyError(f"refusing {out}: {e}") from None
    if lock.get("lockVersion") != 1:
        raise ApplyError(f"refusing {out}: lock version {lock.get('lockVersion')!r}, expected 1")
    artifacts: dict[str, str] = lock["artifacts"]
    sources = mapfile.node_map_paths(artifacts, node)
    map_files = sorted(p for pair in sources.values() for p in pair if p is not None)
    overlays = mapfile.MAPS_DIR.format(node=node)
    if node not in mapfile.node_names(artifacts) and not any(
        p.startswith(overlays) for p in map_files
    ):
        nodes = sorted({p.split("/")[1] for p in artifacts if p.startswith("nodes/")})
        raise ApplyError(f"{out} has no node {node!r} (nodes: {', '.join(nodes) or 'none'})")
    files = {LOCK_NAME: (out / LOCK_NAME).read_bytes()}
    if json.loads(files[LOCK_NAME]) != lock:
        raise ApplyError(f"refusing {out}: {LOCK_NAME} changed while it was read")
    for rel in [OBJECT_PATH, LAYOUT_PATH, VERDICTS_PATH, *map_files]:
        if rel not in artifacts:
            raise ApplyError(f"refusing {out}: {rel} is not in the lock")
        data = (out / rel).read_bytes()
        if hashlib.sha256(data).hexdigest() != artifacts[rel]:
            raise ApplyError(f"refusing {out}: {rel} changed after the lock was checked")
        files[rel] = data
    try:
        layout = Layout(json.loads(files[LAYOUT_PATH]))
        maps = _node_maps(files, map_files, node, layout)
    except (LayoutError, ValueError, KeyError, TypeError) as e:
        raise ApplyError(f"refusing {out}: {e}") from None
    if ENDPOINTS not in maps:
        raise ApplyError(f"refusing {out}: no {ENDPOINTS} map file for node {node}")
    return Artifacts(
        out,
        node,
        hashlib.sha256(files[LOCK_NAME]).hexdigest(),
        lock,
        files,
        layout,
        json.loads(files[VERDICTS_PATH]),
        maps,
    )
