"""The lab's state file: exactly what `netcc lab up` made, written before each creation.

`/run/netcc/lab/state.json` lists every resource the lab is about to create, in order, and is
rewritten (atomically) before each creation, so that `netcc lab down` can remove a lab that
crashed half-way through `up` and never touches anything the lab did not make. Resources:

- `netns`: a network namespace (`/run/netns/NAME`); its links go with it
- `link`: a link inside one of the lab's namespaces (recorded for the record; it dies with it)
- `load`: the loader ran for a node (inside `netns`, pins under `pin_root`)
- `pins`: a bpffs directory the lab created for the loader's pins
- `dir`: a directory the lab created (the compiled artifacts)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATE_DIR = Path(os.environ.get("NETCC_LAB_DIR", "/run/netcc/lab"))
STATE_NAME = "state.json"


class LabStateError(Exception):
    """No lab, a lab already up, or an unreadable state file."""


@dataclass
class LabState:
    """The state document of one lab, and where it lives."""

    path: Path
    doc: dict[str, Any] = field(default_factory=dict)

    @property
    def resources(self) -> list[dict[str, Any]]:
        return self.doc.setdefault("resources", [])

    @classmethod
    def create(cls, directory: Path = STATE_DIR, **info: Any) -> LabState:
        """Start a new lab's state; LabStateError if a lab (or its leftovers) exists."""
        made = [d for d in (directory, *directory.parents) if not d.exists()]
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / STATE_NAME
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise LabStateError(
                f"a lab is already up (or was left half-made): {path}; run `netcc lab down`"
            ) from None
        os.close(fd)
        doc = {"version": 1, "status": "building", "made_dirs": [str(d) for d in made], **info}
        state = cls(path, {**doc, "resources": []})
        state.save()
        return state

    @classmethod
    def load(cls, directory: Path = STATE_DIR) -> LabState:
        path = directory / STATE_NAME
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise LabStateError(f"no lab is up (no {path})") from None
        except (OSError, ValueError) as e:
            raise LabStateError(f"{path}: unreadable lab state ({e})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("resources"), list):
            raise LabStateError(f"{path}: not a lab state file")
        return cls(path, doc)

    @staticmethod
    def exists(directory: Path = STATE_DIR) -> bool:
        return (directory / STATE_NAME).exists()

    def save(self) -> None:
        """Write the document atomically (a temporary sibling, then rename)."""
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(self.doc, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, self.path)

    def record(self, kind: str, **attrs: Any) -> dict[str, Any]:
        """Note a resource before it is created, and save."""
        entry = {"kind": kind, **attrs}
        self.resources.append(entry)
        self.save()
        return entry

    def update(self, **info: Any) -> None:
        self.doc.update(info)
        self.save()

    def remove(self) -> None:
        """Delete the state file, then the directories `create` made, if they are empty."""
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
