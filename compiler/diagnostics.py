"""Diagnostics: located error messages, the exception carrying them, and spec-path locations.

A spec path names a place in the document the way a user reads it: `spec.nodes[0].name`, with
map keys that are not identifiers quoted (`spec.workloads[0].labels["app.kubernetes.io/name"]`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_COMPONENT = re.compile(r'\.?[A-Za-z_][A-Za-z0-9_]*|\[\d+\]|\["(?:[^"\\]|\\.)*"\]')

Location = tuple[int, int]


def join_key(base: str, key: str) -> str:
    """Path of map key `key` under `base`."""
    if _IDENT.fullmatch(key):
        return f"{base}.{key}" if base else key
    return f"{base}[{json.dumps(key, ensure_ascii=False)}]"


def join_index(base: str, index: int) -> str:
    """Path of list item `index` under `base`."""
    return f"{base}[{index}]"


def join_path(base: str, *parts: str | int) -> str:
    """Path of `parts` (keys and indexes) under `base`."""
    for part in parts:
        base = join_index(base, part) if isinstance(part, int) else join_key(base, part)
    return base


def ancestors(path: str) -> list[str]:
    """`path` then each of its ancestors, nearest first, ending with the root ``""``."""
    ends = [m.end() for m in _COMPONENT.finditer(path)]
    if not ends or ends[-1] != len(path):  # not a path we produced: only it and the root
        return [path, ""] if path else [""]
    return [path[:end] for end in reversed(ends)] + [""]


@dataclass(frozen=True)
class Diagnostic:
    """One message about the spec, located by spec path and 1-based line/column (0 = unknown)."""

    message: str
    path: str = ""
    line: int = 0
    col: int = 0
    severity: str = "error"  # "error" | "warning"

    def format(self, filename: str) -> str:
        """`FILE:LINE:COL: error: MESSAGE (PATH)`, or `FILE: error: MESSAGE` without a line."""
        where = f"{filename}:{self.line}:{self.col}" if self.line else filename
        suffix = f" ({self.path})" if self.path else ""
        return f"{where}: {self.severity}: {self.message}{suffix}"

    def sort_key(self) -> tuple[int, int, str, str]:
        return (self.line, self.col, self.path, self.message)


class SpecError(Exception):
    """The spec is invalid. `diagnostics` holds every error found, sorted by position."""

    def __init__(self, diagnostics: Iterable[Diagnostic], filename: str = "<spec>") -> None:
        self.diagnostics: list[Diagnostic] = sorted(set(diagnostics), key=Diagnostic.sort_key)
        self.filename = filename
        super().__init__(self.format())

    def __reduce__(self) -> tuple[type[SpecError], tuple[list[Diagnostic], str]]:
        return (SpecError, (self.diagnostics, self.filename))  # picklable across processes

    def format(self) -> str:
        """All diagnostics, one per line."""
        return "\n".join(d.format(self.filename) for d in self.diagnostics)


class SourceMap:
    """Where each spec path is in the source: its value's position, and its key's if it has one."""

    def __init__(self) -> None:
        self._values: dict[str, Location] = {}
        self._keys: dict[str, Location] = {}

    def add(self, path: str, line: int, col: int, *, key: Location | None = None) -> None:
        """Record the 1-based position of the value at `path` (first occurrence wins)."""
        self._values.setdefault(path, (line, col))
        if key is not None:
            self._keys.setdefault(path, key)

    def __contains__(self, path: object) -> bool:
        return path in self._values

    def __len__(self) -> int:
        return len(self._values)

    def locate(self, path: str) -> Location:
        """Position of the value at `path`, else of its nearest recorded ancestor, else (0, 0)."""
        for candidate in ancestors(path):
            if candidate in self._values:
                return self._values[candidate]
        return (0, 0)

    def locate_key(self, path: str) -> Location:
        """Position of the map key ending `path`; the value's position when there is no key."""
        if path in self._keys:
            return self._keys[path]
        return self.locate(path)

    def diagnostic(self, path: str, message: str, *, at_key: bool = False) -> Diagnostic:
        """An error about `path`, located at its value (or key)."""
        line, col = self.locate_key(path) if at_key else self.locate(path)
        return Diagnostic(message, path, line, col)
