"""Where a node's applied datapath lives: its bpffs pins and its state directory.

Pins, under the pin root (default `/sys/fs/bpf/netcc/<node>/`; in the lab several nodes share
one bpffs, so every node has its own root):

    maps/<map>                      the live maps
    progs/<digest>/<program>        the programs of an applied artifact set (lock sha256)
    links/<ifindex>-<direction>     tcx links
    next/                           maps of a version being applied (gone after an apply)

bpffs holds no regular files, so what was applied is recorded in the state directory
(default `/run/netcc/<node>/`): `state.json` (digest, hooks, endpoints, pin root) and copies of
the applied `netcc.lock.json`, `bpf/layout.json` and `verdicts.json`. These hold digests,
layouts and rule names only: no key material.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PIN_BASE = Path("/sys/fs/bpf/netcc")
STATE_BASE_ENV = "NETCC_STATE_BASE"
STATE_VERSION = 1
STATE_FILE = "state.json"
LOCK_COPY, LAYOUT_COPY, VERDICTS_COPY = "lock.json", "layout.json", "verdicts.json"


def state_base() -> Path:
    """`$NETCC_STATE_BASE`, else `/run/netcc`: the parent of every node's state dir."""
    return Path(os.environ.get(STATE_BASE_ENV) or "/run/netcc")


@dataclass(frozen=True)
class Paths:
    """A node's pin root and state directory."""

    node: str
    pin_root: Path
    state_dir: Path

    @property
    def maps(self) -> Path:
        return self.pin_root / "maps"

    @property
    def staging(self) -> Path:
        return self.pin_root / "next"

    @property
    def progs(self) -> Path:
        return self.pin_root / "progs"

    @property
    def links(self) -> Path:
        return self.pin_root / "links"

    def prog_dir(self, digest: str) -> Path:
        return self.progs / digest

    def link_pin(self, ifindex: int, direction: str) -> Path:
        return self.links / f"{ifindex}-{direction}"

    @property
    def state_file(self) -> Path:
        return self.state_dir / STATE_FILE


def paths_for(
    node: str, pin_root: str | Path | None = None, state_dir: str | Path | None = None
) -> Paths:
    """The default locations of a node's pins and state, unless given."""
    if not node or "/" in node or node in (".", ".."):
        raise ValueError(f"bad node name {node!r}")
    return Paths(
        node,
        Path(pin_root) if pin_root else PIN_BASE / node,
        Path(state_dir) if state_dir else state_base() / node,
    )


def load_state(paths: Paths) -> dict[str, Any] | None:
    """The state document of what is applied, or None if nothing is."""
    try:
        doc = json.loads(paths.state_file.read_text())
    except FileNotFoundError:
        return None
    if not isinstance(doc, dict) or doc.get("version") != STATE_VERSION:
        raise ValueError(f"{paths.state_file}: not a netcc state file (version 1)")
    return doc


def read_copy(paths: Paths, name: str) -> bytes:
    """One of the applied copies (lock, layout, verdicts)."""
    return (paths.state_dir / name).read_bytes()


def write_atomic(path: Path, data: bytes) -> None:
    """Write `path` whole or not at all: a temporary file beside it, synced, renamed over."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_state(paths: Paths, doc: dict[str, Any], copies: dict[str, bytes]) -> None:
    """Write the copies, then `state.json` last (each atomically)."""
    paths.state_dir.mkdir(parents=True, exist_ok=True)
    for name, data in copies.items():
        write_atomic(paths.state_dir / name, data)
    doc = {"version": STATE_VERSION, **doc}
    write_atomic(paths.state_file, (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode())


def remove_state(paths: Paths) -> None:
    shutil.rmtree(paths.state_dir, ignore_errors=True)


def find_state_dirs(base: Path | None = None) -> list[Path]:
    """State directories under the base that hold a state file."""
    base = base or state_base()
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if (p / STATE_FILE).is_file())


@contextmanager
def locked(paths: Paths) -> Iterator[None]:
    """Serialise appliers and detachers of one node (flock on the state dir's `.lock`)."""
    paths.state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(paths.state_dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def remove_pin_tree(root: Path) -> list[str]:
    """Unpin everything under a bpffs directory and remove it; returns what could not be
    removed."""
    problems = []
    if not root.exists():
        return problems
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames:
            try:
                os.unlink(os.path.join(dirpath, name))
            except OSError as e:
                problems.append(f"{os.path.join(dirpath, name)}: {e.strerror}")
        for name in dirnames:
            try:
                os.rmdir(os.path.join(dirpath, name))
            except OSError as e:
                problems.append(f"{os.path.join(dirpath, name)}: {e.strerror}")
    try:
        os.rmdir(root)
    except OSError as e:
        problems.append(f"{root}: {e.strerror}")
    return problems
