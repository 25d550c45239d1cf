"""The steps of an apply, as data: what the plan (`plan.py`) decides and the executor
(`execute.py`) runs, in order, each with its undo in the journal.

An action names what it acts on (a map, a hook, the version's pins); the executor holds the
file descriptors. `touches` says whether an action changes what the running datapath uses: a
failure before the first such action leaves everything as it was. Actions with `after_commit`
run once the new version is recorded; their failures are warnings, not rollbacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from netcc.loader.desired import Endpoint
from netcc.loader.link.hook import Hook, Mode
from netcc.loader.migrate import ServiceKey, Translation


class ApplyStatus(StrEnum):
    """What an apply did."""

    APPLIED = "applied"  # the first version on this node
    UPDATED = "updated"  # a new version
    REPAIRED = "repaired"  # the same version, something had drifted
    UNCHANGED = "unchanged"  # nothing differed, nothing was written


class MapPlan(StrEnum):
    """What becomes of a map when a new version is loaded (the `plan` of its report)."""

    REUSE = "reuse"  # the pinned map, shared with the new programs
    CREATE = "create"  # a new map, empty or filled from OUT
    RECREATE = "recreate"  # a data map anew, so the new programs get a consistent set
    MIGRATE = "migrate"  # a new map, the pinned one's entries carried over


class HookChange(StrEnum):
    """What an apply did to a hook (the `action` of its report)."""

    ATTACHED = "attached"
    REPLACED = "replaced"
    KEPT = "kept"
    DETACHED = "detached"


@dataclass(frozen=True)
class Action:
    touches: ClassVar[bool] = True
    after_commit: ClassVar[bool] = False

    def describe(self) -> str:
        raise NotImplementedError


# --- a new version next to the running one -------------------------------------------------


@dataclass(frozen=True)
class PrepareStaging(Action):
    """An empty `next/` for the new version's map pins (removed on rollback)."""

    touches: ClassVar[bool] = False

    def describe(self) -> str:
        return "stage maps"


@dataclass(frozen=True)
class MapAction(Action):
    """The new object's map `name`: shared with the pinned one, or made at load."""

    touches: ClassVar[bool] = False
    plan: ClassVar[MapPlan]
    name: str
    why: str | None = None

    def describe(self) -> str:
        return f"{self.plan} map {self.name}" + (f" ({self.why})" if self.why else "")


@dataclass(frozen=True)
class ReuseMap(MapAction):
    """Pin the pinned map under `next/`, for libbpf to reuse."""

    plan: ClassVar[MapPlan] = MapPlan.REUSE


@dataclass(frozen=True)
class CreateMap(MapAction):
    """libbpf creates the map at load (no pin, or one that does not fit and is not carried)."""

    plan: ClassVar[MapPlan] = MapPlan.CREATE


@dataclass(frozen=True)
class RecreateMap(MapAction):
    """A data map made anew although the pinned one fits (a consistent snapshot)."""

    plan: ClassVar[MapPlan] = MapPlan.RECREATE


@dataclass(frozen=True)
class MigrateMap(MapAction):
    """A new map; the pinned one is kept open to carry its entries over (`MigrateEntries`)."""

    plan: ClassVar[MapPlan] = MapPlan.MIGRATE


@dataclass(frozen=True)
class LoadObject(Action):
    """Load the verified object with the maps of `next/`, pin its programs under
    `progs/<digest>/` (`fresh_dir`: that directory is this run's, removed on rollback), and
    check it has every program in `needed`."""

    touches: ClassVar[bool] = False
    digest: str
    needed: tuple[str, ...]
    fresh_dir: bool

    def describe(self) -> str:
        return f"load object {self.digest[:12]}"


# --- map contents --------------------------------------------------------------------------


@dataclass(frozen=True)
class SaveContents(Action):
    """Keep the contents of maps synced in place, to restore them on rollback (every upsert
    in every map, then every delete)."""

    maps: tuple[str, ...]
    contents: dict[str, dict[bytes, bytes]] = field(repr=False, compare=False)

    def describe(self) -> str:
        return f"save contents of {', '.join(self.maps)}"


@dataclass(frozen=True)
class UpsertEntries(Action):
    """Write entries that are new or differ."""

    map: str
    entries: dict[bytes, bytes] = field(repr=False)

    def describe(self) -> str:
        return f"upsert {len(self.entries)} into {self.map}"


@dataclass(frozen=True)
class DeleteEntries(Action):
    """Delete keys that should not be there."""

    map: str
    keys: tuple[bytes, ...] = field(repr=False)

    def describe(self) -> str:
        return f"delete {len(self.keys)} from {self.map}"


@dataclass(frozen=True)
class MigrateEntries(Action):
    """Carry a state map's entries from the pinned map into its replacement (`MigrateMap`):
    conntrack before the hooks are swapped, the rest (`second_pass`) after."""

    map: str
    translation: Translation = field(repr=False)
    second_pass: bool = False

    def describe(self) -> str:
        return f"migrate {self.map}" + (" (second pass)" if self.second_pass else "")


@dataclass(frozen=True)
class FlushFlows(Action):
    """Delete the non-TCP service flows to backends the new version removed."""

    backends: dict[ServiceKey, set[tuple[str, int]]] = field(repr=False)

    def describe(self) -> str:
        return "flush flows to removed backends"


# --- hooks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnsureClsact(Action):
    """A clsact qdisc on the interface, for tc hooks (deleted on rollback if made)."""

    ifindex: int
    ifname: str

    def describe(self) -> str:
        return f"clsact on {self.ifname}"


@dataclass(frozen=True)
class HookAction(Action):
    hook: Hook
    verb: ClassVar[str]

    def describe(self) -> str:
        h = self.hook
        return f"{self.verb} {h.ifname} {h.direction} {h.mode} {h.program}"


@dataclass(frozen=True)
class AttachHook(HookAction):
    """Put the version's program on a hook netcc has nothing on."""

    verb: ClassVar[str] = "attach"


@dataclass(frozen=True)
class ReplaceHook(HookAction):
    """Swap the hook's program for the version's, atomically."""

    verb: ClassVar[str] = "replace"


@dataclass(frozen=True)
class DetachHook(HookAction):
    """Take netcc off a hook no longer wanted (pod gone, attach mode changed); re-attached
    on rollback if a program ran on it (`running`)."""

    verb: ClassVar[str] = "detach"
    running: bool = True


# --- commit --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommitPin(Action):
    """Move a map the new object made from `next/` to `maps/`, replacing the old pin."""

    map: str

    def describe(self) -> str:
        return f"pin {self.map}"


@dataclass(frozen=True)
class UnpinMap(Action):
    """Unpin a map the new version no longer has."""

    map: str

    def describe(self) -> str:
        return f"unpin {self.map}"


@dataclass(frozen=True)
class WriteState(Action):
    """Record what is applied: the commit point. The state lists the clsact qdiscs netcc
    made that are still in use: those recorded before (`clsact_kept`) and those this run
    made on interfaces with tc hooks (`clsact_live`)."""

    mode: Mode
    hooks: tuple[Hook, ...]
    endpoints: tuple[Endpoint, ...]
    clsact_kept: frozenset[int]
    clsact_live: frozenset[int]
    stale_verdict: int | None
    had_state: bool

    def describe(self) -> str:
        return "write state"


@dataclass(frozen=True)
class Cleanup(Action):
    """After the commit: remove `next/`, unpin other versions' programs
    (`unpin_other_versions`), delete the clsact qdiscs netcc made that no filter uses any
    more (`clsact_owned`: interfaces netcc's tc hooks left)."""

    after_commit: ClassVar[bool] = True
    digest: str
    unpin_other_versions: bool
    clsact_owned: tuple[Hook, ...] = ()

    def describe(self) -> str:
        return "clean up"


def describe(actions: list[Action]) -> list[str]:
    """One line per action, for reading a plan."""
    return [a.describe() for a in actions]
