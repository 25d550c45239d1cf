"""Running a plan's actions (`plan.py`) against the kernel, with an undo journal.

Every action that changes something pushes its undo. Any failure before the commit (the
state written) rolls back, newest first: every hook back on the previous programs (kept
pinned under `progs/<digest>/` until the cleanup), previous map contents and pins restored,
the new pins removed. Actions after the commit (the cleanup) only warn.

The executor holds the file descriptors: the previous version's programs (rollback targets),
the new object, and the maps, as `BpfMap`s. Hooks are changed only through
`netcc.loader.attach`, writes to maps only through `netcc.loader.libbpf` (via `BpfMap`).
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netcc.contract.layoutfile import LAYOUT_PATH
from netcc.contract.lock import LOCK_NAME
from netcc.contract.programs import OBJECT_PATH, POD_PROGRAMS, PROGRAMS
from netcc.contract.verdicts import VERDICTS_PATH
from netcc.loader import actions as act
from netcc.loader import attach, libbpf, migrate, state
from netcc.loader.desired import Desired
from netcc.loader.errors import ApplyError
from netcc.loader.libbpf import BpfError, BpfObject
from netcc.loader.link import tc
from netcc.loader.maps import BpfMap
from netcc.loader.netns import current_netns
from netcc.loader.plan import Plan, entry_diff
from netcc.loader.snapshot import Snapshot


class Journal:
    """Undo steps, run newest first; failures are collected, not raised."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, Callable[[], None]]] = []

    def push(self, what: str, fn: Callable[[], None]) -> None:
        self.steps.append((what, fn))

    def rollback(self) -> list[str]:
        problems = []
        for what, fn in reversed(self.steps):
            try:
                fn()
            except Exception as e:
                problems.append(f"{what}: {e}")
        self.steps.clear()
        return problems

    def clear(self) -> None:
        self.steps.clear()


@dataclass
class Outcome:
    """What running the plan found out: the ids of the programs now applied, each map's
    report (the plan's, with what was migrated and flushed), cleanup warnings."""

    prog_ids: dict[str, int]
    maps: dict[str, dict[str, Any]]
    warnings: list[str] = field(default_factory=list)


class Executor:
    """Runs one plan; see the module doc."""

    def __init__(self, desired: Desired, plan: Plan, snap: Snapshot, ipr: Any) -> None:
        self.desired, self.plan, self.snap, self.ipr = desired, plan, snap, ipr
        self.paths = desired.paths
        self.layout = desired.artifacts.layout
        self.journal = Journal()
        self.report = copy.deepcopy(plan.maps)
        self.warnings: list[str] = []
        self.touched = False  # whether anything the running datapath uses was changed
        self.created_clsact: set[int] = set()  # clsact qdiscs this run added
        self.obj: BpfObject | None = None
        self.old_progs: dict[str, int] = {}  # the applied version's programs
        self.progs: dict[str, int] = {}  # the programs the hooks get
        self.maps: dict[str, BpfMap] = {}  # the version's maps
        self.old_maps: dict[str, BpfMap] = {}  # pinned maps being replaced, to migrate
        self.prog_ids: dict[str, int] = {}
        self._fds: list[int] = []
        self._owned: list[BpfMap] = []

    # -- resources --

    def _get(self, path: Path) -> int:
        fd = libbpf.obj_get(path)
        self._fds.append(fd)
        return fd

    def _pinned(self, path: Path, layout: Any) -> BpfMap:
        m = BpfMap.pinned(path, layout)
        self._owned.append(m)
        return m

    def _map(self, name: str) -> BpfMap:
        """The version's map: the new object's, or the pinned one when none is loaded."""
        if name not in self.maps:
            if self.obj is not None:
                self.maps[name] = BpfMap.borrow(self.obj.map_fd(name), name, self.layout)
            else:
                self.maps[name] = self._pinned(self.paths.maps / name, self.layout)
        return self.maps[name]

    def _prog_ids(self) -> dict[str, int]:
        return {p: libbpf.prog_info(fd)["id"] for p, fd in self.progs.items()}

    def _close(self) -> None:
        for m in self._owned:
            m.close()
        for fd in self._fds:
            os.close(fd)
        self._owned.clear()
        self._fds.clear()

    # -- run --

    def run(self) -> Outcome:
        try:
            applied = self.snap.applied
            if applied is not None:  # rollback targets, kept open
                d = self.paths.prog_dir(applied.digest)
                self.old_progs = {p: self._get(d / p) for p in PROGRAMS if (d / p).exists()}
            self.progs = dict(self.old_progs)
            self._run_journaled([a for a in self.plan.actions if not a.after_commit])
            for a in self.plan.actions:
                if a.after_commit:
                    self._do(a)
            return Outcome(self.prog_ids, self.report, self.warnings)
        finally:
            self._close()

    def _run_journaled(self, actions: list[act.Action]) -> None:
        try:
            for a in actions:
                self.touched = self.touched or a.touches
                self._do(a)
            self.prog_ids = self._prog_ids()  # while the new object holds them
        except BaseException as e:
            problems = self.journal.rollback()
            if isinstance(e, KeyboardInterrupt | SystemExit):
                raise
            if problems:
                restored = "rollback incomplete: " + "; ".join(problems)
            elif not self.touched:
                restored = "nothing was changed"
            elif self.snap.applied is not None:
                restored = "previous datapath restored"
            else:
                restored = "nothing left applied"
            if isinstance(e, ApplyError):
                raise ApplyError(f"{e}; {restored}", e.log, not problems) from e
            log = getattr(e, "log", "")
            raise ApplyError(f"apply failed: {e}; {restored}", log, not problems) from e
        finally:
            if self.obj is not None:
                self.maps.clear()
                self.obj.close()
                self.obj = None
        self.journal.clear()

    def _do(self, a: act.Action) -> None:
        HANDLERS[type(a)](self, a)

    # -- a new version --

    def prepare_staging(self, a: act.PrepareStaging) -> None:
        staging = self.paths.staging
        state.remove_pin_tree(staging)
        staging.mkdir(parents=True)
        self.journal.push("remove staging pins", lambda: state.remove_pin_tree(staging))

    def reuse_map(self, a: act.ReuseMap) -> None:
        self._pinned(self.paths.maps / a.name, self.layout).pin(self.paths.staging / a.name)

    def create_map(self, a: act.CreateMap | act.RecreateMap) -> None:
        pass  # libbpf creates it at load, pinned under next/

    def migrate_map(self, a: act.MigrateMap) -> None:
        assert self.snap.applied is not None
        self.old_maps[a.name] = self._pinned(self.paths.maps / a.name, self.snap.applied.layout)

    def load_object(self, a: act.LoadObject) -> None:
        obj = self._load_object()
        try:
            prog_dir = self.paths.prog_dir(a.digest)
            if a.fresh_dir:
                state.remove_pin_tree(prog_dir)
            prog_dir.mkdir(parents=True, exist_ok=True)
            if a.fresh_dir:
                self.journal.push("unpin new programs", lambda: state.remove_pin_tree(prog_dir))
            progs = {}
            has = set(obj.program_names())  # an older object may lack the uplink programs
            for p in PROGRAMS:
                if p not in has and p not in POD_PROGRAMS:
                    continue
                progs[p] = obj.prog_fd(p)
                if os.path.lexists(prog_dir / p):
                    os.unlink(prog_dir / p)
                libbpf.obj_pin(progs[p], prog_dir / p)
        except BaseException:
            obj.close()
            raise
        self.obj, self.progs = obj, progs
        missing = sorted(set(a.needed) - set(progs))
        if missing:
            art = self.desired.artifacts
            raise ApplyError(f"{art.out}/{OBJECT_PATH} has no {', '.join(missing)}")

    def _load_object(self) -> BpfObject:
        """Open and load the verified object bytes (from a private copy, so the file libbpf
        reads is the one checked against the lock)."""
        art = self.desired.artifacts
        with tempfile.TemporaryDirectory(prefix="netcc-load-") as tmp:
            path = Path(tmp) / "datapath.o"
            path.write_bytes(art.object)
            obj = None
            try:
                obj = BpfObject.open(path, pin_root=str(self.paths.staging))
                obj.load()
            except BpfError as e:
                if obj is not None:
                    obj.close()
                why = f"{os.strerror(e.errno)}, errno {e.errno}"
                log = " (verifier log above)" if e.log else ""
                raise ApplyError(
                    f"the kernel refused {art.out}/{OBJECT_PATH} ({why}){log}", e.log
                ) from None
            return obj

    # -- map contents --

    def save_contents(self, a: act.SaveContents) -> None:
        saved = a.contents

        def restore() -> None:
            maps = {m: self._map(m) for m in a.maps}
            diffs = {m: entry_diff(saved[m], maps[m].contents()) for m in a.maps}
            for m, d in diffs.items():
                for key, value in d.upserts.items():
                    maps[m].put(key, value)
            for m, d in diffs.items():
                for key in d.stale:
                    maps[m].delete(key)

        self.journal.push("restore map contents", restore)

    def upsert_entries(self, a: act.UpsertEntries) -> None:
        m = self._map(a.map)
        for key, value in a.entries.items():
            m.put(key, value)

    def delete_entries(self, a: act.DeleteEntries) -> None:
        m = self._map(a.map)
        for key in a.keys:
            m.delete(key)

    def migrate_entries(self, a: act.MigrateEntries) -> None:
        res = migrate.migrate(self.old_maps[a.map], self._map(a.map), a.translation, a.second_pass)
        if res is not None:
            total = self.report[a.map].setdefault("migrated", {"copied": 0, "skipped": 0})
            total["copied"] += res.copied
            total["skipped"] += res.skipped

    def flush_flows(self, a: act.FlushFlows) -> None:
        maps = {m: self._map(m) for m in migrate.FLOW_MAPS if m in self.layout.maps}
        n = migrate.flush_removed_backends(maps, a.backends)
        if n:
            self.report.setdefault("netcc_ct", {"plan": act.MapPlan.REUSE.value})["flushed"] = n

    # -- hooks --

    def ensure_clsact(self, a: act.EnsureClsact) -> None:
        if attach.ensure_clsact(self.ipr, a.ifindex):
            self.created_clsact.add(a.ifindex)
            self.journal.push(
                f"delete clsact on {a.ifname}",
                lambda i=a.ifindex: attach.delete_clsact(self.ipr, i),
            )

    def attach_hook(self, a: act.AttachHook) -> None:
        h = a.hook
        attach.attach(self.ipr, h, self.progs[h.program])
        self.journal.push(f"detach {h.ifname} {h.direction}", lambda: attach.detach(self.ipr, h))

    def replace_hook(self, a: act.ReplaceHook) -> None:
        h = a.hook
        attach.replace(self.ipr, h, self.progs[h.program])
        old_fd = self.old_progs.get(h.program)
        if old_fd is not None:
            self.journal.push(
                f"re-point {h.ifname} {h.direction}",
                lambda: attach.replace(self.ipr, h, old_fd),
            )
        else:
            self.journal.push(
                f"detach {h.ifname} {h.direction}", lambda: attach.detach(self.ipr, h)
            )

    def detach_hook(self, a: act.DetachHook) -> None:
        h = a.hook
        attach.detach(self.ipr, h)
        old_fd = self.old_progs.get(h.program)
        if a.running and old_fd is not None:
            self.journal.push(
                f"re-attach {h.ifname} {h.direction}",
                lambda: attach.attach(self.ipr, h, old_fd),
            )

    # -- commit --

    def commit_pin(self, a: act.CommitPin) -> None:
        self._repin(a.map, self.paths.staging / a.map)

    def unpin_map(self, a: act.UnpinMap) -> None:
        self._repin(a.map, None)

    def _repin(self, name: str, src: Path | None) -> None:
        """Replace the pin `maps/<name>` with `src` (None: remove it); undone by pinning
        the old map there again."""
        self.paths.maps.mkdir(parents=True, exist_ok=True)
        dst = self.paths.maps / name
        old_fd = self._get(dst) if dst.exists() else None
        if src is not None:
            os.replace(src, dst)
        else:
            os.unlink(dst)

        def undo() -> None:
            if os.path.lexists(dst):
                os.unlink(dst)
            if old_fd is not None:
                libbpf.obj_pin(old_fd, dst)

        self.journal.push(f"restore pin {dst}", undo)

    def write_state(self, a: act.WriteState) -> None:
        """Record what is applied (the commit point); undone by restoring the old files."""
        paths, art = self.paths, self.desired.artifacts
        old_files = {}
        if a.had_state:
            for name in (state.STATE_FILE, state.LOCK_COPY, state.LAYOUT_COPY, state.VERDICTS_COPY):
                old_files[name] = state.read_copy(paths, name)
        netns = current_netns()
        doc = {
            "node": paths.node,
            "pin_root": str(paths.pin_root),
            "netns": {"dev": netns[0], "ino": netns[1]},
            "digest": art.digest,
            "out": str(art.out.resolve()),
            "applied_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "mode": a.mode.value,
            "programs": self._prog_ids(),
            "hooks": [h.to_json() for h in a.hooks],
            "endpoints": [e.to_json() for e in a.endpoints],
            "clsact_created": sorted(a.clsact_kept | (self.created_clsact & a.clsact_live)),
            "stale_verdict": a.stale_verdict,
        }
        copies = {
            state.LOCK_COPY: art.files[LOCK_NAME],
            state.LAYOUT_COPY: art.files[LAYOUT_PATH],
            state.VERDICTS_COPY: art.files[VERDICTS_PATH],
        }
        state.save_state(paths, doc, copies)

        def undo() -> None:
            if not old_files:
                state.remove_state(paths)
                return
            for name, data in old_files.items():
                state.write_atomic(paths.state_dir / name, data)

        self.journal.push("restore state", undo)

    def cleanup(self, a: act.Cleanup) -> None:
        """After commit: unpin previous programs, the staging dir; clsact qdiscs netcc made
        on interfaces it left. Failures are warnings."""
        paths = self.paths
        problems = state.remove_pin_tree(paths.staging)
        if a.unpin_other_versions and paths.progs.exists():
            for d in paths.progs.iterdir():
                if d.name != a.digest:
                    problems += state.remove_pin_tree(d)
        for hook in a.clsact_owned:
            try:
                if tc.clsact_present(self.ipr, hook.ifindex) and not tc.in_use(
                    self.ipr, hook.ifindex
                ):
                    attach.delete_clsact(self.ipr, hook.ifindex)
            except Exception as e:
                if getattr(e, "code", None) not in (19, 22):  # ENODEV, EINVAL: gone
                    problems.append(f"clsact on {hook.ifname}: {e}")
        self.warnings += [f"cleanup: {p}" for p in problems]


HANDLERS: dict[type[act.Action], Callable[[Executor, Any], None]] = {
    act.PrepareStaging: Executor.prepare_staging,
    act.ReuseMap: Executor.reuse_map,
    act.CreateMap: Executor.create_map,
    act.RecreateMap: Executor.create_map,
    act.MigrateMap: Executor.migrate_map,
    act.LoadObject: Executor.load_object,
    act.SaveContents: Executor.save_contents,
    act.UpsertEntries: Executor.upsert_entries,
    act.DeleteEntries: Executor.delete_entries,
    act.MigrateEntries: Executor.migrate_entries,
    act.FlushFlows: Executor.flush_flows,
    act.EnsureClsact: Executor.ensure_clsact,
    act.AttachHook: Executor.attach_hook,
    act.ReplaceHook: Executor.replace_hook,
    act.DetachHook: Executor.detach_hook,
    act.CommitPin: Executor.commit_pin,
    act.UnpinMap: Executor.unpin_map,
    act.WriteState: Executor.write_state,
    act.Cleanup: Executor.cleanup,
}
