"""Diagnostics: located error messages, the exception carrying them, and spec-path locations.

A spec path names a place in the document the way a user reads it: `spec.nodes[0].name`, with
map keys that are not identifiers quoted (`spec.workloads[0].labels["app.kubernetes.io/name"]`).

This module is the one place where text from the spec enters a message. `quote` and `show`
render a spec value for a message, and every Diagnostic cleans its own message and path (and
`format` the file name) the same way, whoever built them:

- characters that are not printable (newline, CR, ESC and the other C0 and C1 controls, DEL,
  bidi overrides and other format characters, separators) are escaped, so a diagnostic is
  always exactly one line that cannot rewrite the terminal or forge another `FILE:LINE:COL`;
- text shaped like a WireGuard key (base64 of 32 bytes: 43 base64 characters and `=`,
  anywhere in the text) is never shown: CI logs keep messages, and a private key pasted into
  the spec must not reach them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from netcc.contract.text import escape

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_COMPONENT = re.compile(r'\.?[A-Za-z_][A-Za-z0-9_]*|\[\d+\]|\["(?:[^"\\]|\\.)*"\]')

# Base64 of exactly 32 bytes, as `wg genkey` and `wg pubkey` print it, found anywhere in a
# text: no look-behind, so no prefix (`/etc/wg/KEY`, `xKEY`) hides it. Hex digests
# (`sha256:<64 hex>`) have no `=` and never match.
KEY_SHAPED = re.compile(r"[A-Za-z0-9+/]{43}=")
REDACTED = "<redacted: looks like a key>"
MAX_QUOTED = 80  # characters of a spec value shown in a message; longer ones are shortened

Location = tuple[int, int]


def has_key_shape(text: str) -> bool:
    """True when `text` holds key-shaped text anywhere (see KEY_SHAPED)."""
    return KEY_SHAPED.search(text) is not None


def clean(text: str) -> str:
    """`text` safe for a one-line message: escaped, and key-shaped text redacted."""
    return KEY_SHAPED.sub(REDACTED, escape(text))


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_QUOTED else text[: MAX_QUOTED - 3] + "..."


def quote(value: Any) -> str:
    """A spec value for a message: JSON-quoted, shortened when long, escaped; a value holding
    key-shaped text anywhere is replaced by `"<redacted: looks like a key>"` as a whole (it
    is checked before shortening, so no prefix of a key is ever shown)."""
    if isinstance(value, str):
        if has_key_shape(value):
            return f'"{REDACTED}"'
        return _quoted(_shorten(value))
    try:
        rendered = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        rendered = repr(value)
    return f'"{REDACTED}"' if has_key_shape(rendered) else escape(_shorten(rendered))


def _quoted(text: str) -> str:
    """`text` in double quotes: `"` and `\\` backslashed, unprintables escaped."""
    return '"' + escape(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'


def show(value: Any) -> str:
    """A spec value for a message without quotes (a tag, a scalar as written): shortened,
    escaped, and redacted as a whole when it holds key-shaped text."""
    text = value if isinstance(value, str) else str(value)
    return REDACTED if has_key_shape(text) else escape(_shorten(text))


def join_key(base: str, key: str) -> str:
    """Path of map key `key` under `base` (a key that is no identifier JSON-quoted, with any
    unprintable character escaped)."""
    if _IDENT.fullmatch(key):
        return f"{base}.{key}" if base else key
    return f"{base}[{_quoted(key)}]"


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
    severity: str = "error"  # "error" | "warning" | "note"
    file: str = ""  # the file it is in, when not the spec's (a manifest of spec.sources)

    def __post_init__(self) -> None:
        # Whoever built the message: one line, no control characters, no key.
        object.__setattr__(self, "message", clean(self.message))
        object.__setattr__(self, "path", clean(self.path))

    def format(self, filename: str) -> str:
        """`FILE:LINE:COL: error: MESSAGE (PATH)`, or `FILE: error: MESSAGE` without a line;
        FILE is the manifest's for what came from one."""
        filename = clean(self.file or filename)
        where = f"{filename}:{self.line}:{self.col}" if self.line else filename
        suffix = f" ({self.path})" if self.path else ""
        return f"{where}: {self.severity}: {self.message}{suffix}"

    def beside(self, spec: str) -> Diagnostic:
        """This diagnostic with its manifest's name as seen from where the spec was named
        (manifest names are relative to the spec's directory)."""
        if not self.file or self.file.startswith("<") or self.file.startswith("/"):
            return self
        base = spec.rsplit("/", 1)[0] if "/" in spec else ""
        file = f"{base}/{self.file}" if base else self.file
        return Diagnostic(self.message, self.path, self.line, self.col, self.severity, file)

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.file, self.line, self.col, self.path, self.message)


class SpecError(Exception):
    """The spec is invalid. `diagnostics` holds every error found, sorted by position."""

    def __init__(self, diagnostics: Iterable[Diagnostic], filename: str = "<spec>") -> None:
        self.diagnostics: list[Diagnostic] = sorted(set(diagnostics), key=Diagnostic.sort_key)
        self.filename = clean(filename)  # for messages only: one line, like every diagnostic
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
        # spec path prefix -> (file, locate in that file): entries that came from a manifest
        self._mounts: dict[str, tuple[str, Callable[[str], Location]]] = {}

    def mount(self, prefix: str, file: str, locate: Callable[[str], Location]) -> None:
        """Paths under `prefix` (a spec entry taken from a manifest) are in `file`, where
        `locate(rest)` finds them (`rest`: the path below the prefix, "" for the entry)."""
        self._mounts[prefix] = (file, locate)

    def _mounted(self, path: str) -> tuple[str, Callable[[str], Location], str] | None:
        if not self._mounts:
            return None
        for candidate in ancestors(path):
            found = self._mounts.get(candidate)
            if found is not None:
                rest = path[len(candidate) :].lstrip(".")
                return found[0], found[1], rest
        return None

    def file_of(self, path: str) -> str:
        """The manifest file `path` came from ("" when it is the spec's own)."""
        m = self._mounted(path)
        return m[0] if m else ""

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
        """Position of the value at `path`, else of its nearest recorded ancestor, else (0, 0);
        for an entry taken from a manifest, its position in that manifest (`file_of`)."""
        m = self._mounted(path)
        if m is not None:
            return m[1](m[2])
        for candidate in ancestors(path):
            if candidate in self._values:
                return self._values[candidate]
        return (0, 0)

    def locate_key(self, path: str) -> Location:
        """Position of the map key ending `path`; the value's position when there is no key."""
        if self._mounts and self._mounted(path) is not None:
            return self.locate(path)
        if path in self._keys:
            return self._keys[path]
        return self.locate(path)

    def diagnostic(self, path: str, message: str, *, at_key: bool = False) -> Diagnostic:
        """An error about `path`, located at its value (or key)."""
        line, col = self.locate_key(path) if at_key else self.locate(path)
        return Diagnostic(message, path, line, col, file=self.file_of(path))
