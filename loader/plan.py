"""The diff of an apply: what should be (`Desired`) against what is (`Snapshot`), as actions.

Pure: no kernel, no files. `plan` returns the `Plan` the executor runs (`execute.py`):

- Same version, everything as it should be (hooks run the pinned programs, map contents,
  recorded bindings): no action, UNCHANGED.
- Same version with its pins in place, something drifted: maps synced, hooks fixed, REPAIRED.
- Otherwise a new version is loaded next to the running one (UPDATED, or APPLIED the first
  time): each of its maps reuses the pinned one where it fits (same type, sizes and capacity,
  and verdict numbers that keep their meaning), else is created anew, carrying a state map's
  entries over (`migrate`). Data maps are synced in place only when that is safe
  (`snapshot_reason`); otherwise they are all made anew, a consistent snapshot.

In every case but UNCHANGED, in this order: data maps filled or synced (every upsert, in
every map, before any delete), state maps migrated, hooks attached or swapped atomically,
counters migrated, flows to removed backends flushed, stale hooks detached, map pins
committed, the state written; then cleanup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from netcc.contract.layoutfile import Layout
from netcc.contract.programs import POD_PROGRAMS, UPLINK_PROGRAMS
from netcc.loader import migrate
from netcc.loader.actions import (
    Action,
    ApplyStatus,
    AttachHook,
    Cleanup,
    CommitPin,
    CreateMap,
    DeleteEntries,
    DetachHook,
    EnsureClsact,
    FlushFlows,
    HookChange,
    LoadObject,
    MapAction,
    MigrateEntries,
    MigrateMap,
    PrepareStaging,
    RecreateMap,
    ReplaceHook,
    ReuseMap,
    SaveContents,
    UnpinMap,
    UpsertEntries,
    WriteState,
)
from netcc.loader.desired import Data, Desired, Endpoint, bind_endpoints, map_data, wanted_hooks
from netcc.loader.errors import ApplyError
from netcc.loader.fit import map_fits, snapshot_reason
from netcc.loader.link.hook import Hook, HookKey, Mode
from netcc.loader.snapshot import HookState, Snapshot


@dataclass
class Plan:
    """The actions of one apply and what they amount to."""

    status: ApplyStatus
    mode: Mode
    actions: list[Action]
    hooks: dict[HookKey, Hook]  # the desired hooks
    changes: dict[HookKey, HookChange]  # per hook that changes (desired and detached)
    detached: list[Hook]  # hooks taken off (pods gone, attach mode changed)
    endpoints: list[Endpoint]
    maps: dict[str, dict[str, Any]] = field(default_factory=dict)  # per map: plan, why, counts
    warnings: list[str] = field(default_factory=list)
    prog_ids: dict[str, int] = field(default_factory=dict)  # pinned ones, when none is loaded

    @property
    def loads(self) -> bool:
        """Whether a new object is loaded."""
        return any(isinstance(a, LoadObject) for a in self.actions)

    def change(self, key: HookKey) -> HookChange:
        return self.changes.get(key, HookChange.KEPT)


def plan(desired: Desired, snap: Snapshot) -> Plan:
    """The actions that take the node from `snap` to `desired`; raises ApplyError when the
    desired state cannot be applied here."""
    applied, paths = snap.applied, desired.paths
    if applied is not None and applied.pin_root != paths.pin_root:
        raise ApplyError(
            f"node {paths.node} is applied under {applied.pin_root}, not {paths.pin_root}; "
            "detach it first"
        )
    endpoints = bind_endpoints(desired, snap.routes)
    warnings = [f"pod {e.ip} ({e.note}): {e.reason}; skipped" for e in endpoints if not e.ifindex]
    want = map_data(desired, endpoints)
    hooks = wanted_hooks(desired, endpoints, snap.uplinks)
    p = Plan(ApplyStatus.UNCHANGED, desired.mode, [], hooks, {}, [], endpoints, {}, warnings)
    if _same_version_usable(desired, snap, want, hooks):
        have = {m: snap.maps[m].contents or {} for m in want}
        p.prog_ids = dict(snap.programs)
        if _nothing_to_do(hooks, snap, want, have, endpoints):
            return p
        p.status = ApplyStatus.REPAIRED
        _sync_maps(p, want, have, fresh=set())
        _swap_and_drop(p, desired, snap, new_program_ids=snap.programs)
        assert applied is not None  # the same version is applied
        _commit(p, desired, snap, fresh=[], stale_verdict=applied.stale_verdict)
        return p
    p.status = ApplyStatus.UPDATED if applied else ApplyStatus.APPLIED
    tr = migrate.translation(
        applied.verdicts if applied else {"verdicts": []},
        desired.artifacts.verdicts,
        applied.stale_verdict if applied else None,
    )
    decisions = _decide_maps(desired, snap, want, tr)
    fresh = [d.name for d in decisions if not isinstance(d, ReuseMap)]
    p.actions.append(PrepareStaging())
    p.actions += decisions
    p.maps = {d.name: {"plan": d.plan.value} | ({"why": d.why} if d.why else {}) for d in decisions}
    fresh_dir = applied is None or applied.digest != desired.digest
    needed = tuple(sorted({h.program for h in hooks.values()}))
    p.actions.append(LoadObject(desired.digest, needed, fresh_dir))
    have = {m: (snap.maps[m].contents or {}) for m in want if m not in fresh}
    _sync_maps(p, want, have, set(fresh))
    migrations = [d.name for d in decisions if isinstance(d, MigrateMap) and d.name not in want]
    for name in migrations:
        p.actions.append(MigrateEntries(name, tr))
    _swap_and_drop(p, desired, snap, new_program_ids=None, migrations=migrations, tr=tr)
    _commit(p, desired, snap, fresh, stale_verdict=tr.stale)
    return p


# --- which way ------------------------------------------------------------------------------


def _same_version_usable(
    desired: Desired, snap: Snapshot, want: Data, hooks: dict[HookKey, Hook]
) -> bool:
    """The applied version is this one, with every map and every program the hooks need
    still pinned (and the data maps readable)."""
    applied = snap.applied
    if applied is None or applied.digest != desired.digest:
        return False
    if any(m not in snap.maps for m in desired.artifacts.layout.maps):
        return False
    if any(snap.maps[m].contents is None for m in want):
        return False
    # the programs pinned last time (an older object may lack the uplink ones), and those
    # the hooks need now (a loader that did not know the uplink ones pinned only the pods')
    programs = set(applied.programs) | set(POD_PROGRAMS)
    if snap.uplinks:
        programs |= set(UPLINK_PROGRAMS)
    programs |= {h.program for h in hooks.values()}
    return programs <= set(snap.programs)


def _nothing_to_do(
    hooks: dict[HookKey, Hook], snap: Snapshot, want: Data, have: Data, endpoints: list[Endpoint]
) -> bool:
    """Whether hooks, maps and recorded bindings are all as they should be."""
    for key, hook in hooks.items():
        cur = snap.hooks.get(key)
        if cur is None or cur.hook.mode != hook.mode:
            return False
        if cur.prog_id != snap.programs.get(hook.program) or cur.hook.ifname != hook.ifname:
            return False
    if set(snap.hooks) - set(hooks):
        return False
    if any(want[m] != have[m] for m in want):
        return False
    recorded = snap.applied.bindings if snap.applied else {}
    return {e.ip: e.ifindex for e in endpoints} == recorded


# --- maps -----------------------------------------------------------------------------------


def _decide_maps(
    desired: Desired, snap: Snapshot, want: Data, tr: migrate.Translation
) -> list[MapAction]:
    """Per map of the new layout: reuse the pinned one, or make it (create, recreate, or
    create and migrate)."""
    layout = desired.artifacts.layout
    old_layout = snap.applied.layout if snap.applied else None
    fits = {name: map_fits(layout, name, snap.maps.get(name), tr) for name in layout.maps}
    have = {m: snap.maps[m].contents or {} for m in want if fits[m] is None}
    snapshot = snapshot_reason(layout, want, fits, have)
    out: list[MapAction] = []
    for name in layout.maps:
        fit = fits[name]
        if fit is not None and fit.new:
            out.append(CreateMap(name))
        elif name in want and snapshot:
            out.append(RecreateMap(name, snapshot))
        elif fit is not None:
            carry = name not in migrate.CACHES and old_layout and name in old_layout.maps
            out.append((MigrateMap if carry else CreateMap)(name, fit.detail))
        else:
            out.append(ReuseMap(name))
    return out


def _sync_maps(p: Plan, want: Data, have: Data, fresh: set[str]) -> None:
    """Fill the fresh data maps; sync the shared ones in place: every upsert (in every map)
    before any delete, so that, while the old programs still read them, the allow lists are
    at most the union of the old and new ones."""
    shared = [m for m in want if m not in fresh]
    for name in want:
        report = p.maps.setdefault(name, {"plan": ReuseMap.plan.value})
        if name in fresh:
            p.actions.append(UpsertEntries(name, want[name]))
            report |= {"added": len(want[name]), "changed": 0}
    if shared:
        p.actions.append(SaveContents(tuple(shared), {m: have[m] for m in shared}))
    diffs = {m: entry_diff(want[m], have[m]) for m in shared}
    for m, d in diffs.items():
        if d.upserts:
            p.actions.append(UpsertEntries(m, d.upserts))
        p.maps[m] |= {"added": d.added, "changed": len(d.upserts) - d.added}
    for m, d in diffs.items():
        if d.stale:
            p.actions.append(DeleteEntries(m, d.stale))
        p.maps[m] |= {"removed": len(d.stale)}


@dataclass(frozen=True)
class EntryDiff:
    """What turns a map's contents into the wanted ones: entries to write (new ones, of
    which `added`, and changed ones) and keys to delete."""

    upserts: dict[bytes, bytes]
    added: int
    stale: tuple[bytes, ...]


def entry_diff(want: dict[bytes, bytes], have: dict[bytes, bytes]) -> EntryDiff:
    upserts = {k: v for k, v in want.items() if have.get(k) != v}
    added = sum(1 for k in upserts if k not in have)
    return EntryDiff(upserts, added, tuple(k for k in have if k not in want))


# --- hooks ----------------------------------------------------------------------------------


def _swap_and_drop(
    p: Plan,
    desired: Desired,
    snap: Snapshot,
    new_program_ids: dict[str, int] | None,
    migrations: tuple[str, ...] | list[str] = (),
    tr: migrate.Translation | None = None,
) -> None:
    """Point every desired hook at the version's program (`new_program_ids`: the ids of the
    pinned programs; None: a new object is loaded, whose programs are new to every hook);
    migrate counters; flush flows; take netcc off the hooks no longer wanted."""
    clsact: set[int] = set()
    for key, hook in sorted(p.hooks.items()):
        cur = snap.hooks.get(key)
        if cur is not None and cur.hook.mode == hook.mode and cur.prog_id is not None:
            if new_program_ids is not None and cur.prog_id == new_program_ids.get(hook.program):
                continue  # kept
            p.actions.append(ReplaceHook(hook))
            p.changes[key] = HookChange.REPLACED
            continue
        if hook.mode.needs_clsact and hook.ifindex not in clsact:
            clsact.add(hook.ifindex)
            p.actions.append(EnsureClsact(hook.ifindex, hook.ifname))
        p.actions.append(AttachHook(hook))
        p.changes[key] = HookChange.ATTACHED
    for name in migrations:
        assert tr is not None
        p.actions.append(MigrateEntries(name, tr, second_pass=True))
    if snap.applied is not None:
        p.actions.append(FlushFlows(migrate.service_backends(desired.service_maps())))
    for key, cur in sorted(snap.hooks.items()):
        _drop(p, key, cur)


def _drop(p: Plan, key: HookKey, cur: HookState) -> None:
    new = p.hooks.get(key)
    if new is not None and new.mode == cur.hook.mode:
        return
    p.actions.append(DetachHook(cur.hook, running=cur.prog_id is not None))
    if new is None:
        p.changes[key] = HookChange.DETACHED
    p.detached.append(cur.hook)


# --- commit ---------------------------------------------------------------------------------


def _commit(
    p: Plan, desired: Desired, snap: Snapshot, fresh: list[str], stale_verdict: int | None
) -> None:
    """Move the new maps' pins into place, record the version, then clean up."""
    layout: Layout = desired.artifacts.layout
    applied = snap.applied
    if p.loads:
        p.actions += [CommitPin(m) for m in layout.maps if m in fresh]
        p.actions += [UnpinMap(m) for m in sorted(snap.maps) if m not in layout.maps]
    before = applied.clsact_created if applied else frozenset()
    live = frozenset(h.ifindex for h in p.hooks.values() if h.mode.needs_clsact)
    p.actions.append(
        WriteState(
            mode=p.mode,
            hooks=tuple(h for _, h in sorted(p.hooks.items())),
            endpoints=tuple(p.endpoints),
            clsact_kept=before & live,
            clsact_live=live,
            stale_verdict=stale_verdict,
            had_state=applied is not None,
        )
    )
    owned = tuple(h for h in p.detached if h.mode.needs_clsact and h.ifindex in before)
    p.actions.append(Cleanup(desired.digest, unpin_other_versions=p.loads, clsact_owned=owned))
