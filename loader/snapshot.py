"""What the kernel holds for a node: the input of the plan on the current side.

`take` reads it all before anything is decided, and writes nothing: the state file and the
copies of the applied layout and verdicts (`Applied`), every map pinned under `maps/` (its
kernel shape and, for the data maps the desired version fills, its contents), the programs
pinned for the applied version, what runs on each recorded hook, and what the routing says
about the desired pod and NodePort addresses. A `Snapshot` is plain data: the plan's tests
build them by hand.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netcc.contract.layoutfile import Layout
from netcc.contract.programs import PROGRAMS
from netcc.loader import attach, libbpf, state
from netcc.loader.desired import Binding, Desired, Interface
from netcc.loader.link.hook import Hook, HookKey
from netcc.loader.maps import BpfMap
from netcc.loader.routes import binding, uplinks


@dataclass(frozen=True)
class Applied:
    """What the state file records of the applied version."""

    digest: str
    pin_root: Path
    layout: Layout  # the applied copies of layout.json and verdicts.json
    verdicts: dict[str, Any]
    hooks: tuple[Hook, ...] = ()
    bindings: dict[str, int | None] = field(default_factory=dict)  # pod address -> ifindex
    programs: tuple[str, ...] = PROGRAMS  # the programs it pinned
    clsact_created: frozenset[int] = frozenset()  # clsact qdiscs netcc made
    stale_verdict: int | None = None

    @classmethod
    def from_state(cls, doc: dict[str, Any], layout: Layout, verdicts: dict) -> Applied:
        return cls(
            digest=doc["digest"],
            pin_root=Path(doc["pin_root"]),
            layout=layout,
            verdicts=verdicts,
            hooks=tuple(Hook.from_json(h) for h in doc.get("hooks", [])),
            bindings={e["ip"]: e.get("ifindex") for e in doc.get("endpoints", [])},
            programs=tuple(doc.get("programs") or PROGRAMS),
            clsact_created=frozenset(doc.get("clsact_created", [])),
            stale_verdict=doc.get("stale_verdict"),
        )


@dataclass(frozen=True)
class PinnedMap:
    """A map pinned under `maps/`: its kernel shape (`libbpf.map_info`: type, key_size,
    value_size, max_entries) and, when read, its contents (packed key -> packed value)."""

    info: dict[str, Any]
    contents: dict[bytes, bytes] | None = None


@dataclass(frozen=True)
class HookState:
    """A hook the state records, and the id of the program netcc runs on it now (None:
    nothing runs there)."""

    hook: Hook
    prog_id: int | None


@dataclass
class Snapshot:
    """What the kernel holds for a node (see the module doc)."""

    applied: Applied | None = None
    maps: dict[str, PinnedMap] = field(default_factory=dict)  # every pin under maps/
    programs: dict[str, int] = field(default_factory=dict)  # pinned for applied: name -> id
    hooks: dict[HookKey, HookState] = field(default_factory=dict)
    routes: dict[str, Binding] = field(default_factory=dict)  # OUT's pod addresses
    uplinks: tuple[Interface, ...] = ()


def read_applied(paths: state.Paths) -> Applied | None:
    """The applied version from the state directory, or None."""
    doc = state.load_state(paths)
    if doc is None:
        return None
    layout = Layout(json.loads(state.read_copy(paths, state.LAYOUT_COPY)))
    verdicts = json.loads(state.read_copy(paths, state.VERDICTS_COPY))
    return Applied.from_state(doc, layout, verdicts)


def _pinned_maps(paths: state.Paths, layout: Layout, data: set[str]) -> dict[str, PinnedMap]:
    """Every map pinned under `maps/`; the contents of the data maps whose key and value
    sizes are the layout's."""
    found: dict[str, PinnedMap] = {}
    if not paths.maps.is_dir():
        return found
    for pin in sorted(paths.maps.iterdir()):
        with BpfMap.pinned(pin, layout) as m:
            info = m.info()
            readable = pin.name in data and pin.name in layout.maps and m.sizes_match(info)
            found[pin.name] = PinnedMap(info, m.contents() if readable else None)
    return found


def _pinned_programs(paths: state.Paths, digest: str) -> dict[str, int]:
    d = paths.prog_dir(digest)
    found = {}
    for p in PROGRAMS:
        if (d / p).exists():
            fd = libbpf.obj_get(d / p)
            try:
                found[p] = libbpf.prog_info(fd)["id"]
            finally:
                os.close(fd)
    return found


def take(ipr: Any, desired: Desired) -> Snapshot:
    """Read what the kernel holds for the desired node; writes nothing."""
    paths = desired.paths
    applied = read_applied(paths)
    if applied is not None and applied.pin_root != paths.pin_root:
        return Snapshot(applied)  # the plan refuses it: nothing here is this node's
    layout = desired.artifacts.layout
    return Snapshot(
        applied=applied,
        maps=_pinned_maps(paths, layout, set(desired.artifacts.maps)),
        programs=_pinned_programs(paths, applied.digest) if applied else {},
        hooks={
            h.key(): HookState(h, attach.hook_prog_id(ipr, h))
            for h in (applied.hooks if applied else ())
        },
        routes={ip: binding(ipr, ip) for ip in desired.static_addresses()},
        uplinks=tuple(uplinks(ipr, desired.nodeport_addresses())),
    )
