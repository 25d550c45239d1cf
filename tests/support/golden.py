"""The golden registry: every comparison of netcc's output against a checked-in file goes
through here.

A test asks for the `golden` fixture (tests/conftest.py), which marks it `golden`, and calls
`golden(path, actual)` for one file or `golden.tree(root, files)` for a directory that must
mirror `files` exactly. `make golden` runs exactly the tests marked `golden` with
NETCC_UPDATE_GOLDEN=1: then each call writes `actual` instead of comparing, and `golden.only`
removes the files that no longer belong. Review the diff before committing.

Otherwise a golden file that differs fails with a diff, and a missing golden file is a
failure, never a skip.
"""

from __future__ import annotations

import difflib
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import pytest

ENV = "NETCC_UPDATE_GOLDEN"
ROOT = Path(__file__).resolve().parents[2]
HOW = "if intended: `make golden`, then review the diff"


def updating() -> bool:
    """True when goldens are being regenerated (`make golden`)."""
    return os.environ.get(ENV) == "1"


def _name(path: Path) -> str:
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def _bytes(data: str | bytes) -> bytes:
    return data.encode() if isinstance(data, str) else data


def diff(name: str, want: bytes, got: bytes, lines: int = 60) -> str:
    """A unified diff of the golden file `name` against what the test produced."""
    out = difflib.unified_diff(
        want.decode(errors="replace").splitlines(),
        got.decode(errors="replace").splitlines(),
        f"golden/{name}",
        f"now/{name}",
        lineterm="",
    )
    return "\n".join(list(out)[:lines])


class Golden:
    """What a test compares against checked-in files (see the module docstring)."""

    def __init__(self, update: bool) -> None:
        self.update = update

    def __call__(self, path: Path, actual: str | bytes) -> None:
        """The file at `path` holds exactly `actual`."""
        data = _bytes(actual)
        if self.update:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.is_file() or path.read_bytes() != data:
                path.write_bytes(data)
            return
        if not path.is_file():
            pytest.fail(f"no golden file {_name(path)} ({HOW})")
        want = path.read_bytes()
        if want != data:
            pytest.fail(f"{_name(path)} differs ({HOW}):\n{diff(_name(path), want, data)}")

    def tree(self, root: Path, files: dict[str, bytes]) -> None:
        """The directory `root` holds exactly `files` (relative POSIX path -> bytes)."""
        if self.update:
            shutil.rmtree(root, ignore_errors=True)
            for path, data in files.items():
                (root / path).parent.mkdir(parents=True, exist_ok=True)
                (root / path).write_bytes(data)
            return
        have = self.read_tree(root)
        problems = []
        for path in sorted(set(files) | set(have)):
            if path not in have:
                problems.append(f"{path}: produced, but there is no golden file")
            elif path not in files:
                problems.append(f"{path}: golden file, but no longer produced")
            elif have[path] != files[path]:
                problems.append(diff(f"{_name(root)}/{path}", have[path], files[path]))
        if problems:
            pytest.fail(f"{_name(root)} differs ({HOW}):\n" + "\n".join(problems))

    def read_tree(self, root: Path) -> dict[str, bytes]:
        """The golden directory `root` as relative POSIX path -> bytes; missing is a failure."""
        if not root.is_dir():
            pytest.fail(f"no golden files in {_name(root)} ({HOW})")
        return {
            p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    def only(self, directory: Path, pattern: str, names: Iterable[str]) -> None:
        """The entries of `directory` matching `pattern` are among `names`: an entry no test
        produces any more (a renamed or deleted case) is an orphan, removed when updating."""
        keep = set(names)
        orphans = sorted(p for p in directory.glob(pattern) if p.name not in keep)
        if self.update:
            for p in orphans:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
            return
        if orphans:
            pytest.fail(f"golden files nothing produces ({HOW}): {[_name(p) for p in orphans]}")
