"""The manifests a spec names (`spec.sources`), read once at the edge, carried as bytes.

The compile is pure: the command line (or `netcc review`'s source loader) reads every file a
source names, with a `Reader` (the disk, a git revision, or the copy an OUT carries), into a
`Bundle`; the pipeline takes the bundle like it takes the spec's bytes. The bundle is written
into OUT as `sources.json` (every file's name, digest and text), so `netcc review OUT` and
`diff OUT1 OUT2` need nothing else, and the lock lists each source file's digest, so `netcc
check` sees a manifest that changed.

A source is `{path, namespace?, perNode?}`: `path` is a file (YAML or JSON streams; `.md`:
the YAML blocks of a Markdown file), a directory (every such file below it, sorted, hidden
ones skipped), or `-`, the standard input (read once, whatever several sources say).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

SOURCES_IN_OUT = "sources.json"
STDIN = "-"
SUFFIXES = (".yaml", ".yml", ".json", ".md")
SKIPPED_NAMES = frozenset({"kustomization.yaml", "kustomization.yml", "Chart.yaml", "values.yaml"})
MAX_FILES = 10_000


class SourceError(ValueError):
    """A source cannot be read: the message names it."""


@dataclass(frozen=True)
class SourceFile:
    """One file of one source: the source's index in `spec.sources`, its name as messages
    show it (the source's path, joined with the file's path below a directory), its bytes."""

    source: int
    name: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class Bundle:
    files: tuple[SourceFile, ...] = ()

    def digest(self) -> str:
        """One digest of every file, for the compile cache's key."""
        h = hashlib.sha256()
        for f in self.files:
            h.update(f"{f.source}\0{f.name}\0{len(f.data)}\0".encode())
            h.update(f.data)
        return h.hexdigest()

    def of(self, source: int) -> list[SourceFile]:
        return [f for f in self.files if f.source == source]

    def to_json(self, summary: str = "", notes: tuple[str, ...] = ()) -> bytes:
        """`sources.json`: every file, with its digest and its text; what the compile took
        from them (`summary`) and its notes."""
        doc = {
            "sourcesVersion": 1,
            "summary": summary,
            "notes": list(notes),
            "files": [
                {
                    "source": f.source,
                    "name": f.name,
                    "sha256": f.sha256,
                    "text": f.data.decode("utf-8", "replace"),
                }
                for f in self.files
            ],
        }
        return (json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> Bundle:
        try:
            doc = json.loads(data)
            files = tuple(
                SourceFile(int(f["source"]), str(f["name"]), str(f["text"]).encode())
                for f in doc["files"]
            )
        except (ValueError, KeyError, TypeError) as e:
            raise SourceError(f"{SOURCES_IN_OUT} is not a sources document: {e}") from None
        return cls(files)


class Reader(Protocol):
    """Where a spec's sources are read from: paths relative to the spec's directory."""

    def kind(self, path: str) -> str:  # "file" | "dir" | "missing"
        ...

    def read(self, path: str) -> bytes: ...

    def walk(self, path: str) -> list[str]:  # files below a directory, relative to it
        ...


def source_entries(document: Any) -> list[Mapping[str, Any]]:
    """The `spec.sources` entries of a loaded spec document (none when absent or malformed:
    validation reports that)."""
    spec = document.get("spec") if isinstance(document, dict) else None
    entries = spec.get("sources") if isinstance(spec, dict) else None
    if not isinstance(entries, list):
        return []
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("path"), str)]


def wanted(rel: str) -> bool:
    """Whether a file below a source directory is read: a stream or Markdown file, not
    hidden (nor below a hidden directory), not a kustomize or Helm file."""
    return (
        rel.endswith(SUFFIXES)
        and not any(part.startswith(".") for part in rel.split("/"))
        and posixpath.basename(rel) not in SKIPPED_NAMES
    )


def collect(document: Any, reader: Reader, stdin: Callable[[], bytes] | None = None) -> Bundle:
    """Read every file the spec's sources name. SourceError when one cannot be read."""
    files: list[SourceFile] = []
    read_stdin: bytes | None = None
    for i, entry in enumerate(source_entries(document)):
        path = entry["path"]
        if path == STDIN:
            if stdin is None:
                raise SourceError(
                    f"spec.sources[{i}]: `-` (standard input) can only be read by a command "
                    "given the spec on its command line"
                )
            if read_stdin is None:
                read_stdin = stdin()
            files.append(SourceFile(i, "<stdin>", read_stdin))
            continue
        norm = posixpath.normpath(path)
        kind = reader.kind(norm)
        if kind == "file":
            files.append(SourceFile(i, norm, reader.read(norm)))
        elif kind == "dir":
            below = [rel for rel in sorted(reader.walk(norm)) if wanted(rel)]
            if len(files) + len(below) > MAX_FILES:
                raise SourceError(f"spec.sources[{i}]: {path} holds more than {MAX_FILES} files")
            for rel in below:
                name = posixpath.join(norm, rel) if norm != "." else rel
                files.append(SourceFile(i, name, reader.read(name)))
        else:
            raise SourceError(f"spec.sources[{i}]: {path}: no such file or directory")
    return Bundle(tuple(files))


def report(data: bytes) -> tuple[str, list[str]]:
    """The summary and notes a `sources.json` holds."""
    try:
        doc = json.loads(data)
        return str(doc.get("summary", "")), [str(n) for n in doc.get("notes", [])]
    except (ValueError, AttributeError):
        return "", []


def lock_entries(bundle: Bundle) -> dict[str, str]:
    """What the lock records of the sources: each file's name and digest."""
    return {f"{f.source}:{f.name}": f.sha256 for f in bundle.files}
