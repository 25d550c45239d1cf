"""Where the command line reads a spec's sources from: the disk beside the spec, a git
revision, or standard input. (An OUT carries its sources' bytes: `Bundle.from_json`.)"""

from __future__ import annotations

import os
import posixpath
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from netcc.diagnostics import SpecError
from netcc.fsguard import read_input, shown
from netcc.load.document import load_yaml
from netcc.sources.bundle import Bundle, SourceError, collect, source_entries


class DiskReader:
    """Paths relative to the spec file's directory."""

    def __init__(self, base: Path) -> None:
        self.base = base

    def _path(self, path: str) -> Path:
        return self.base / path

    def kind(self, path: str) -> str:
        p = self._path(path)
        return "dir" if p.is_dir() else "file" if p.exists() else "missing"

    def read(self, path: str) -> bytes:
        try:
            return read_input(self._path(path))
        except (OSError, ValueError) as e:
            why = getattr(e, "strerror", None) or str(e)
            raise SourceError(f"cannot read {shown(self._path(path))}: {why}") from None

    def walk(self, path: str) -> list[str]:
        root = self._path(path)
        found = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rel = os.path.relpath(dirpath, root)
            for name in filenames:
                found.append(posixpath.normpath(posixpath.join(rel.replace(os.sep, "/"), name)))
        return sorted(found)


class GitReader:
    """Paths relative to the spec's directory at a git revision (`git:REV:PATH`)."""

    def __init__(self, rev: str, base: str, show: Callable[[str, str], bytes], tree: Any) -> None:
        self.rev, self.base, self._show, self._tree = rev, base, show, tree

    def _path(self, path: str) -> str:
        return posixpath.normpath(posixpath.join(self.base, path))

    def kind(self, path: str) -> str:
        return self._tree(self.rev, self._path(path))

    def read(self, path: str) -> bytes:
        return self._show(self.rev, self._path(path))

    def walk(self, path: str) -> list[str]:
        return self._tree(self.rev, self._path(path), listing=True)


def stdin_bytes() -> bytes:
    """Standard input, bounded like a spec."""
    return read_input("/dev/stdin") if not sys.stdin.isatty() else b""


def bundle_for(spec: bytes, spec_name: str, reader: Any, stdin: bool = True) -> Bundle | None:
    """The bundle of a spec's sources (None when it names none); a spec that does not load
    gets none (its errors come from the compile)."""
    if b"sources" not in spec:  # no need to load a spec that cannot name any
        return None
    try:
        document, _ = load_yaml(spec, spec_name)
    except SpecError:  # the compile reports it
        return None
    if not source_entries(document):
        return None
    return collect(document, reader, stdin_bytes if stdin else None)


def disk_bundle(spec: bytes, spec_path: str | Path) -> Bundle | None:
    """The bundle of a spec file's sources, read beside it (no standard input)."""
    return bundle_for(spec, str(spec_path), DiskReader(Path(spec_path).parent), stdin=False)
