"""Kubernetes objects read from YAML/JSON streams, Markdown files and directories, with positions.

Each object is a `Manifest`: the object, the file it came from, and where every path inside it
is in that file. A `kind: List`'s items are objects of their own. Nothing here interprets an
object beyond that (`netcc.sources.translate` does).
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netcc.diagnostics import Diagnostic, SourceMap, SpecError, join_index
from netcc.fsguard import read_input, shown
from netcc.load.document import MAX_SPEC_BYTES, decode, load_yaml_stream
from netcc.sources.bundle import wanted
from netcc.sources.markdown import Block, as_stream, fenced_blocks

YAML_LANGS = ("yaml", "yml")
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\']|\'\')*\'|\t')


@dataclass(frozen=True)
class Manifest:
    """One Kubernetes object, the file it is in, and where each of its paths is there."""

    obj: dict[str, Any]
    file: str  # the file's name, as messages show it
    sources: SourceMap  # paths relative to the object: "metadata.name", "spec.ports[0].port"
    index: int  # the document's number in its file (0-based; empty documents not counted)

    @property
    def kind(self) -> str:
        return _text(self.obj.get("kind"))

    @property
    def api_version(self) -> str:
        return _text(self.obj.get("apiVersion"))

    @property
    def name(self) -> str:
        return _text(_metadata(self.obj).get("name"))

    @property
    def namespace(self) -> str | None:
        namespace = _metadata(self.obj).get("namespace")
        return namespace if isinstance(namespace, str) else None

    def locate(self, path: str) -> tuple[int, int]:
        """Line and column of `path` in the file (of its nearest ancestor that is there)."""
        return self.sources.locate(path)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


class _Within(SourceMap):
    """The positions of the object at `prefix` in `parent`, by paths relative to that object."""

    def __init__(self, parent: SourceMap, prefix: str) -> None:
        super().__init__()
        self._parent, self._prefix = parent, prefix

    def _path(self, path: str) -> str:
        if not path:
            return self._prefix
        return self._prefix + (path if path.startswith("[") else "." + path)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and self._path(path) in self._parent

    def locate(self, path: str) -> tuple[int, int]:
        return self._parent.locate(self._path(path))

    def locate_key(self, path: str) -> tuple[int, int]:
        return self._parent.locate_key(self._path(path))


def _untab_json(text: str) -> str:
    """A JSON text's tabs between tokens as spaces (columns kept): the pure-Python YAML scanner
    takes no tab there, and JSON is read as YAML."""
    if "\t" not in text or not text.lstrip(" \t\r\n").startswith(("{", "[")):
        return text
    return _JSON_TOKENS.sub(lambda m: " " if m.group() == "\t" else m.group(), text)


def _decoded(data: bytes | str, file: str) -> str:
    try:
        if len(data) > MAX_SPEC_BYTES:
            message = f"the file is larger than {MAX_SPEC_BYTES >> 20} MiB; netcc reads no more"
            raise SpecError([Diagnostic(message, "", 1, 1)])
        return decode(data)
    except SpecError as e:
        raise _in_file(e, file) from None


def _in_file(error: SpecError, file: str) -> SpecError:
    """`error` with every diagnostic naming `file`."""
    diagnostics = [
        d if d.file else Diagnostic(d.message, d.path, d.line, d.col, d.severity, file)
        for d in error.diagnostics
    ]
    return SpecError(diagnostics, file)


def _manifests(text: str, file: str, keep_all: bool) -> list[Manifest]:
    """The objects of a YAML stream; `keep_all` False: only mappings with apiVersion and kind
    (a Markdown file's snippets that are no objects are left out)."""
    out: list[Manifest] = []
    errors: list[Diagnostic] = []
    try:
        documents = load_yaml_stream(text, file)
    except SpecError as e:
        raise _in_file(e, file) from None
    for index, (obj, source_map, line) in enumerate(documents):
        if not keep_all and not is_object(obj):
            continue
        if not isinstance(obj, dict):
            message = f"document {index} is not a Kubernetes object: expected a mapping"
            errors.append(Diagnostic(message, "", line, 1, file=file))
            continue
        _expand(Manifest(obj, file, source_map, index), out, errors)
    if errors:
        raise SpecError(errors, file)
    return out


def is_object(obj: Any) -> bool:
    """True for a mapping with `apiVersion` and `kind` (strings): a Kubernetes object."""
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("apiVersion"), str)
        and isinstance(obj.get("kind"), str)
    )


def _expand(manifest: Manifest, out: list[Manifest], errors: list[Diagnostic]) -> None:
    """`manifest`, or the items of a `v1 List`, into `out`."""
    if manifest.kind != "List" or manifest.api_version != "v1":
        out.append(manifest)
        return
    items = manifest.obj.get("items")
    if items is None:
        return
    if not isinstance(items, list):
        line, col = manifest.locate("items")
        errors.append(
            Diagnostic("List items must be a list", "items", line, col, file=manifest.file)
        )
        return
    for i, item in enumerate(items):
        path = join_index("items", i)
        if not isinstance(item, dict):
            line, col = manifest.locate(path)
            message = "List item is not a Kubernetes object: expected a mapping"
            errors.append(Diagnostic(message, path, line, col, file=manifest.file))
            continue
        sources = _Within(manifest.sources, path)
        _expand(Manifest(item, manifest.file, sources, manifest.index), out, errors)


def read_stream(data: bytes | str, file: str) -> list[Manifest]:
    """The objects of a YAML multi-document stream (JSON is YAML); empty documents skipped, a
    List's items expanded. SpecError (located in `file`) for input that does not parse or a
    document that is no mapping."""
    return _manifests(_untab_json(_decoded(data, file)), file, keep_all=True)


def read_markdown(data: bytes | str, file: str) -> list[Manifest]:
    """The objects of a Markdown file's fenced YAML blocks (```yaml, ```yml, and unlabelled
    blocks that hold a Kubernetes object), at their lines in the Markdown file. A labelled block
    that does not parse is an error; documents that are no objects (snippets) are ignored."""
    lines = _decoded(data, file).split("\n")
    blocks = [
        b
        for b in fenced_blocks(lines)
        if b.lang in YAML_LANGS or (not b.lang and _holds_object(b, file))
    ]
    return _manifests(as_stream(blocks, len(lines)), file, keep_all=False)


def _holds_object(block: Block, file: str) -> bool:
    """True when an unlabelled block parses as YAML holding a Kubernetes object."""
    try:
        return any(is_object(obj) for obj, _, _ in load_yaml_stream(block.text(), file))
    except SpecError:
        return False


def _files_below(root: Path) -> list[str]:
    """Stream and Markdown files below `root`, relative to it, sorted; hidden ones and
    kustomize/Helm files skipped."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel = Path(dirpath).relative_to(root).as_posix()
        for name in filenames:
            path = posixpath.normpath(posixpath.join(rel, name))
            if wanted(path):
                found.append(path)
    return sorted(found)


def _read_file(path: Path, display: str) -> list[Manifest]:
    try:
        data = read_input(path)
    except (OSError, ValueError) as e:
        why = getattr(e, "strerror", None) or str(e)
        raise SpecError([Diagnostic(f"cannot read {shown(path)}: {why}")], display) from None
    return read_named(data, display, path.name)


def read_named(data: bytes | str, file: str, name: str | None = None) -> list[Manifest]:
    """The objects of a file by its name (`name`, else `file`): `.md` is Markdown, anything
    else a YAML or JSON stream."""
    return (read_markdown if (name or file).endswith(".md") else read_stream)(data, file)


def read_path(path: Path, display: str) -> list[Manifest]:
    """The objects of a file (.md: `read_markdown`; else `read_stream`) or of every .yaml,
    .yml, .json and .md file below a directory, by sorted relative path (hidden files and
    directories, kustomization.yaml, Chart.yaml and values.yaml skipped). Files are named
    `display`, joined with their relative path below a directory."""
    if not path.is_dir():
        return _read_file(path, display)
    out: list[Manifest] = []
    for rel in _files_below(path):
        out += _read_file(path / rel, posixpath.join(display, rel) if display else rel)
    return out
