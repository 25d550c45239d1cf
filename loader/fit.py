"""Whether a new version may share what is pinned: map by map, and the data maps as a set.

A pinned map serves the new version's map of the same name when its kernel shape (type, key
and value size, capacity) is the new layout's and, if its entries hold verdict numbers, the
verdicts keep their numbers (`map_fits`; otherwise a `Misfit` says why). Data maps shared
with the running programs are synced in place only when that is safe (`snapshot_reason`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from netcc.contract.layoutfile import Layout
from netcc.loader import migrate
from netcc.loader.snapshot import PinnedMap


class MisfitKind(Enum):
    NEW = "new map"  # nothing pinned under the name
    LAYOUT = "layout"  # type, sizes or capacity differ
    RENUMBERED = "verdicts renumbered"  # its entries' verdict numbers change meaning


@dataclass(frozen=True)
class Misfit:
    """Why the pinned map cannot serve the new version's map."""

    kind: MisfitKind
    detail: str

    @classmethod
    def new_map(cls) -> Misfit:
        return cls(MisfitKind.NEW, MisfitKind.NEW.value)

    @classmethod
    def layout(cls, detail: str) -> Misfit:
        return cls(MisfitKind.LAYOUT, detail)

    @classmethod
    def renumbered(cls) -> Misfit:
        return cls(MisfitKind.RENUMBERED, MisfitKind.RENUMBERED.value)

    @property
    def new(self) -> bool:
        return self.kind is MisfitKind.NEW


Fit = Misfit | None  # None: the pinned map fits


def map_fits(layout: Layout, name: str, pinned: PinnedMap | None, tr: migrate.Translation) -> Fit:
    """Whether the pinned map (None: nothing pinned) can be the new version's `name`."""
    if pinned is None:
        return Misfit.new_map()
    why = migrate.layout_mismatch(pinned.info, layout, name)
    if why is not None:
        return Misfit.layout(why)
    if not tr.identical and migrate.carries_verdicts(layout, name):
        return Misfit.renumbered()
    return None


def allow_list(layout: Layout, name: str) -> bool:
    """A map whose values only name the allowing verdict (policy maps): its entries only
    ever add allows, so the union of two versions' entries allows no more than either."""
    value = layout.maps[name].value
    fields = layout.structs[value].fields if value in layout.structs else {}
    return bool(fields) and {f for f, d in fields.items() if d.encoding != "pad8"} <= {"verdict"}


def snapshot_reason(
    layout: Layout,
    want: Mapping[str, dict[bytes, bytes]],
    fits: Mapping[str, Fit],
    have: Mapping[str, dict[bytes, bytes]],
) -> str | None:
    """Why the new version's data maps must be a fresh set rather than the pinned ones
    synced in place; None if in place is safe.

    Syncing in place is not atomic: until the hooks are swapped the old programs read a
    mix of old and new entries. Within one map every entry flips atomically, and the
    union of two allow lists allows nothing neither version allows. But a classification
    map (endpoints, ipcache: which profile or peer class an address is) changing together
    with another data map can combine into allows of neither version (an address already
    in its new peer class meeting the old policy). Shared only when the layout fits and
    the verdict numbers keep their meaning (`map_fits`)."""
    misfits = {m: f for m in want if (f := fits[m]) is not None}
    if any(f.kind is MisfitKind.RENUMBERED for f in misfits.values()):
        return "consistent snapshot: verdicts renumbered"
    if misfits:
        return "consistent snapshot: " + "; ".join(
            f"{m} {f.detail}" for m, f in sorted(misfits.items())
        )
    changed = sorted(m for m in want if want[m] != have[m])
    classifying = [m for m in changed if not allow_list(layout, m)]
    if len(classifying) > 1 or (classifying and len(changed) > 1):
        return "consistent snapshot: " + ", ".join(changed) + " change together"
    return None
