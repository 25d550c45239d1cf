"""The lab's state file: exactly what `netcc lab up` made, written before each creation.

`/run/netcc/lab/state.json` lists every resource the lab is about to create, in order, and is
rewritten (atomically) before each creation, so that `netcc lab down` can remove a lab that
crashed half-way through `up` and never touches anything the lab did not make. Resources:

- `netns`: a network namespace (`/run/netns/NAME`); its links go with it
- `link`: a link inside one of the lab's namespaces (recorded for the record; it dies with it)
- `load`: the loader ran for a node (inside `netns`, pins under `pin_root`)
- `pins`: a bpffs directory the lab created for the loader's pins
- `dir`: a directory the lab created (the compiled artifacts)

Several processes change one lab at once (`netcc lab pod add` in parallel, a `pod del`, a
daemon restart). Every write happens under the lab's lock (`lab_lock`: flock on the state
directory) and is a read-modify-write: `save` reads the file again and applies only what
this process changed since it last read or wrote it (top-level keys, resources added,
changed or forgotten), so no process undoes another's change. A check that must hold until a
change is written (a pod's name still free) runs inside `LabState.locked`.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATE_DIR = Path(os.environ.get("NETCC_LAB_DIR", "/run/netcc/lab"))
STATE_NAME = "state.json"

_held = threading.local()  # per thread: state directory -> how deep its lock is held


class LabStateError(Exception):
    """No lab, a lab already up, or an unreadable state file."""


@contextlib.contextmanager
def lab_lock(directory: Path = STATE_DIR) -> Iterator[None]:
    """Hold the lab's lock: an exclusive flock on its state directory, re-entrant within a
    thread. LabStateError when the directory does not exist (no lab is up). A directory
    removed (`lab down`) and made again while this waited is locked anew."""
    key = os.path.abspath(directory)
    depth: dict[str, int] = _held.__dict__.setdefault("depth", {})
    if depth.get(key):
        depth[key] += 1
        try:
            yield
        finally:
            depth[key] -= 1
        return
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    while True:
        try:
            fd = os.open(key, flags)
        except FileNotFoundError:
            raise LabStateError(f"no lab is up (no {Path(key) / STATE_NAME})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held = os.fstat(fd)
            now = os.stat(key)
        except FileNotFoundError:
            os.close(fd)
            continue  # removed while we waited: open it again (or find it gone)
        except BaseException:
            os.close(fd)
            raise
        if (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino):
            break
        os.close(fd)
    depth[key] = 1
    try:
        yield
    finally:
        depth[key] = 0
        os.close(fd)  # releases the flock


def _read(path: Path) -> dict[str, Any]:
    """The state document at `path`; LabStateError when there is none or it is unusable."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise LabStateError(f"no lab is up (no {path})") from None
    except (OSError, ValueError) as e:
        raise LabStateError(f"{path}: unreadable lab state ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("resources"), list):
        raise LabStateError(f"{path}: not a lab state file")
    return doc


def _write(path: Path, doc: dict[str, Any]) -> None:
    """Write the document whole or not at all (a private temporary sibling, then rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@dataclass
class LabState:
    """The state document of one lab, and where it lives.

    `doc` is this process's copy. `_base` is what the file held for it when it was last read
    or written: the top-level keys, and a snapshot of each resource by the identity of its
    dict in `doc`, so that `save` can tell this process's changes from other processes'."""

    path: Path
    doc: dict[str, Any] = field(default_factory=dict)
    _top: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    _base: dict[int, tuple[dict[str, Any], dict[str, Any]]] = field(
        default_factory=dict, repr=False, compare=False
    )

    @property
    def resources(self) -> list[dict[str, Any]]:
        return self.doc.setdefault("resources", [])

    @classmethod
    def create(cls, directory: Path = STATE_DIR, **info: Any) -> LabState:
        """Start a new lab's state; LabStateError if a lab (or its leftovers) exists."""
        made = [d for d in (directory, *directory.parents) if not d.exists()]
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / STATE_NAME
        with lab_lock(directory):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                raise LabStateError(
                    f"a lab is already up (or was left half-made): {path}; run `netcc lab down`"
                ) from None
            os.close(fd)
            doc = {"version": 1, "status": "building", "made_dirs": [str(d) for d in made]}
            state = cls(path, {**doc, **info, "resources": []})
            _write(path, state.doc)
            state._adopt(copy.deepcopy(state.doc))
        return state

    @classmethod
    def load(cls, directory: Path = STATE_DIR) -> LabState:
        path = directory / STATE_NAME
        state = cls(path)
        state._adopt(_read(path))
        return state

    @classmethod
    @contextlib.contextmanager
    def locked(cls, directory: Path = STATE_DIR) -> Iterator[LabState]:
        """The state, loaded and held under the lab's lock for the block: no other process
        changes it until the block ends (checks and the changes they allow, together)."""
        with lab_lock(directory):
            yield cls.load(directory)

    @staticmethod
    def exists(directory: Path = STATE_DIR) -> bool:
        return (directory / STATE_NAME).exists()

    def save(self) -> None:
        """Write this process's changes since it last read or wrote the file into what the
        file holds now (under the lab's lock), and take the result as its copy."""
        with lab_lock(self.path.parent):
            disk = _read(self.path)
            pairs = self._merge_into(disk)
            _write(self.path, disk)
            self._adopt(disk, pairs)

    def _merge_into(self, disk: dict[str, Any]) -> dict[int, dict[str, Any]]:
        """Apply to `disk` what changed in `doc` since `_top`/`_base` were taken; which of
        this copy's resources each of `disk`'s is (by the disk dict's id)."""
        missing = object()
        for key in {*self.doc, *self._top} - {"resources"}:
            mine, was = self.doc.get(key, missing), self._top.get(key, missing)
            if mine == was:
                continue
            if mine is missing:
                disk.pop(key, None)
            else:
                disk[key] = copy.deepcopy(mine)
        theirs: list[dict[str, Any]] = disk["resources"]
        alive = {id(r) for r in self.resources}
        for obj, snap in list(self._base.values()):
            if id(obj) not in alive:  # forgotten here: forgotten there (if still there)
                with contextlib.suppress(ValueError):
                    theirs.remove(snap)
        pairs: dict[int, dict[str, Any]] = {}
        for obj in self.resources:
            base = self._base.get(id(obj))
            if base is None or base[0] is not obj:  # recorded here since
                theirs.append(copy.deepcopy(obj))
                pairs[id(theirs[-1])] = obj
                continue
            snap = base[1]
            target = next((r for r in theirs if r == snap and id(r) not in pairs), None)
            if target is None:  # forgotten by another process: not brought back
                continue
            pairs[id(target)] = obj
            for k in {*obj, *snap}:
                if k not in obj:
                    target.pop(k, None)
                elif obj[k] != snap.get(k, missing):
                    target[k] = copy.deepcopy(obj[k])
        return pairs

    def _adopt(self, disk: dict[str, Any], pairs: dict[int, dict[str, Any]] | None = None) -> None:
        """Take `disk` as this process's copy. The resource dicts this process holds (a
        caller's `entry`, paired by `_merge_into`) stay the same objects, updated to what the
        file says."""
        resources = []
        for r in disk["resources"]:
            same = (pairs or {}).get(id(r))
            if same is None:
                resources.append(r)
                continue
            same.clear()
            same.update(r)
            resources.append(same)
        self.doc = {**disk, "resources": resources}
        self._top = copy.deepcopy({k: v for k, v in disk.items() if k != "resources"})
        self._base = {id(r): (r, copy.deepcopy(r)) for r in resources}

    def record(self, kind: str, **attrs: Any) -> dict[str, Any]:
        """Note a resource before it is created, and save; the entry (kept up to date by
        later saves)."""
        entry = {"kind": kind, **attrs}
        self.resources.append(entry)
        self.save()
        return entry

    def update(self, **info: Any) -> None:
        self.doc.update(info)
        self.save()

    def remove(self) -> None:
        """Delete the state file, then the directories `create` made, if they are empty."""
        with lab_lock(self.path.parent):
            self.path.unlink()
            for d in self.doc.get("made_dirs", [str(self.path.parent)]):
                try:
                    os.rmdir(d)
                except OSError:
                    break

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["kind"] == kind]

    def forget(self, entries: list[dict[str, Any]]) -> None:
        """Drop resources that are gone, and save."""
        gone = {id(e) for e in entries}
        self.doc["resources"] = [r for r in self.resources if id(r) not in gone]
        self.save()
