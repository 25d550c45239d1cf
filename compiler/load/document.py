"""Load a YAML spec into plain Python objects, keeping where every value came from.

PyYAML composes the node graph (SafeLoader: no arbitrary tags); the objects are built here so that
duplicate keys, non-string keys, unsupported tags and alias bombs are caught with their positions.

Before anything is composed, the text is bounded: at most MAX_SPEC_BYTES, and at most MAX_DEPTH
nested collections, found by a pass over the parser's events (an iterative state machine, in C
when libyaml is there). libyaml's composer recurses once per level in C, and a deep enough
document overflows the stack (a segfault, not an exception), so the depth is known first.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from netcc.diagnostics import Diagnostic, SourceMap, SpecError, join_index, join_key, quote, show

ALIAS_BUDGET = 100_000  # nodes that aliases may expand to, in total
MAX_DEPTH = 64  # nesting of collections; real specs use about 12
MAX_SPEC_BYTES = 64 << 20  # far above any real spec (10,000 services take a few MB)
TOO_DEEP = f"document is nested more than {MAX_DEPTH} levels deep"

_TAG = "tag:yaml.org,2002:"
_SCALAR_TYPES = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "null": "null",
    "timestamp": "string",  # kept as written: `2024-01-01` is text to us
    "value": "string",  # the YAML 1.1 `=` scalar, harmless text
}
_CONSTRUCT = SafeConstructor()
_SURROGATE = re.compile("[\ud800-\udfff]")
_T = TypeVar("_T")


class _Abort(Exception):
    """Building stopped at `node` (alias bombs, recursion, nesting); the message says why."""

    def __init__(self, message: str, node: Node, path: str) -> None:
        super().__init__(message)
        self.node, self.path = node, path


class _TooDeep(Exception):
    """Composing reached a collection nested more than MAX_DEPTH levels deep, at `mark`."""

    def __init__(self, mark: Any) -> None:
        super().__init__(TOO_DEEP)
        self.mark = mark


class _Loader(yaml.SafeLoader):
    """SafeLoader whose alias nodes are copies carrying the alias's own position, and which
    stops at MAX_DEPTH nested collections (the pre-pass already did; this keeps the recursive
    composer bounded whatever the parsers disagree on)."""

    netcc_depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if self.check_event(CollectionStartEvent):
            self.netcc_depth += 1
            try:
                if self.netcc_depth > MAX_DEPTH:
                    raise _TooDeep(self.peek_event().start_mark)
                return super().compose_node(parent, index)
            finally:
                self.netcc_depth -= 1
        if not self.check_event(AliasEvent):
            return super().compose_node(parent, index)
        event = self.peek_event()
        target = super().compose_node(parent, index)
        alias = type(target)(target.tag, target.value, event.start_mark, event.end_mark)
        alias.netcc_alias = True  # type: ignore[attr-defined]
        return alias


_FAST_LOADER = getattr(yaml, "CSafeLoader", None)


def _tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag


def _mark(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _position(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of character `offset` in `text`."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _check_size(data: str | bytes) -> None:
    """Refuse a spec over MAX_SPEC_BYTES, located where the bound is crossed."""
    if len(data) <= MAX_SPEC_BYTES:
        return
    line = data.count(b"\n" if isinstance(data, bytes) else "\n", 0, MAX_SPEC_BYTES) + 1
    start = data.rfind(b"\n" if isinstance(data, bytes) else "\n", 0, MAX_SPEC_BYTES) + 1
    message = f"the spec is larger than {MAX_SPEC_BYTES >> 20} MiB; netcc reads no more"
    raise SpecError([Diagnostic(message, "", line, MAX_SPEC_BYTES - start + 1)])


def decode(data: str | bytes) -> str:
    """The spec's text: UTF-8 without a byte order mark; SpecError (located) otherwise."""
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as e:
        raw = bytes(data)
        line = raw.count(b"\n", 0, e.start) + 1
        col = len(raw[raw.rfind(b"\n", 0, e.start) + 1 : e.start].decode("utf-8", "replace")) + 1
        raise SpecError([Diagnostic("file is not valid UTF-8", "", line, col)]) from None
    return text.removeprefix("\ufeff")


def check_depth(text: str) -> None:
    """Refuse a document nested more than MAX_DEPTH collections deep, at the first collection
    too deep, before anything is composed. A syntax error ends the pass quietly: composing
    reports it, with the same message whichever parser is used."""
    try:
        loader = (_FAST_LOADER or yaml.SafeLoader)(text)
    except UnicodeError:  # a lone surrogate in a str: the reader reports it
        return
    depth = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    line, col = event.start_mark.line + 1, event.start_mark.column + 1
                    raise SpecError([Diagnostic(TOO_DEEP, "", line, col)])
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    except (yaml.YAMLError, UnicodeError):
        return
    finally:
        loader.dispose()


def _compose(text: str) -> Node | None:
    return _composed(text, yaml.compose)


def _compose_all(text: str) -> list[Node]:
    """Every document of a stream, composed."""
    return _composed(text, lambda text, Loader: list(yaml.compose_all(text, Loader=Loader)))


def _composed(text: str, compose: Callable[..., _T]) -> _T:
    """`compose(text, Loader=...)`, bounded first, its errors located (SpecError)."""
    check_depth(text)
    if _FAST_LOADER is not None and "&" not in text and "*" not in text:
        # Without anchors there are no aliases, and libyaml builds the very same node graph
        # with the same marks, ~6x faster. Any error is left to the pure-Python composer so
        # that messages are the same everywhere.
        try:
            return compose(text, Loader=_FAST_LOADER)
        except (yaml.YAMLError, UnicodeError):
            pass
    try:
        return compose(text, Loader=_Loader)
    except _TooDeep as e:
        line, col = e.mark.line + 1, e.mark.column + 1
        raise SpecError([Diagnostic(TOO_DEEP, "", line, col)]) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        if e.context == "expected a single document in the stream":
            message = "more than one YAML document; a spec file holds exactly one ClusterNetwork"
        elif e.context and e.context.startswith("found duplicate anchor"):
            first = e.context_mark.line + 1 if e.context_mark else 0
            anchor = e.context.split(";")[0].removeprefix("found duplicate anchor ")
            message = f"duplicate anchor {show(anchor)} (first defined on line {first})"
        else:
            parts = [p for p in (e.context, e.problem) if p]
            message = "YAML syntax error: " + ", ".join(parts)
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise SpecError([Diagnostic(message, "", line, col)]) from None
    except yaml.reader.ReaderError as e:
        line, col = _position(text, e.position)
        char = e.character
        code = (
            char if isinstance(char, int) else ord(char[:1] or "?") if isinstance(char, str) else 0
        )
        message = f"YAML syntax error: unacceptable character U+{code:04X}"
        raise SpecError([Diagnostic(message, "", line, col)]) from None
    except yaml.YAMLError as e:  # any other PyYAML complaint, without a position
        raise SpecError([Diagnostic(f"YAML error: {e}")]) from None
    except RecursionError:  # not expected: the depth is bounded before
        raise SpecError([Diagnostic(TOO_DEEP, "", 1, 1)]) from None


class _Builder:
    """Turns a composed node graph into dicts, lists and scalars, recording positions.

    A collection reached again through an alias is not rebuilt: the same object is reused and its
    size (what it would expand to) is charged to the alias budget, so alias bombs stop at once.
    Paths inside an alias are not recorded; they locate at the alias itself.
    """

    def __init__(self) -> None:
        self.source_map = SourceMap()
        self.errors: list[Diagnostic] = []
        self.nodes = 0  # nodes in the expanded document so far
        self.expanded = 0  # of which produced by aliases
        self.built: dict[int, tuple[Any, int, int]] = {}  # id(node.value) -> object, size, height
        self.active: set[int] = set()  # collections being built, to catch recursive aliases

    def error(self, node: Node, path: str, message: str) -> None:
        line, col = _mark(node)
        self.errors.append(Diagnostic(message, path, line, col))

    def build(
        self, node: Node, path: str, depth: int, key: tuple[int, int] | None = None
    ) -> tuple[Any, int]:
        """(object, height) for `node` at `path`, `depth` collections deep."""
        self.source_map.add(path, *_mark(node), key=key)
        if not isinstance(node, ScalarNode):
            return self.collection(node, path, depth)
        self.nodes += 1
        if getattr(node, "netcc_alias", False):
            self.charge(1, node, path)
        return self.scalar(node, path), 0

    def charge(self, size: int, node: Node, path: str) -> None:
        self.expanded += size
        if self.expanded > ALIAS_BUDGET:
            message = f"aliases expand to more than {ALIAS_BUDGET} nodes (alias bomb?)"
            raise _Abort(message, node, path)

    def collection(self, node: Node, path: str, depth: int) -> tuple[Any, int]:
        if depth >= MAX_DEPTH:
            raise _Abort(TOO_DEEP, node, "")
        ident = id(node.value)
        if ident in self.active:
            raise _Abort("recursive alias: an anchored collection contains itself", node, path)
        if ident in self.built:
            value, size, height = self.built[ident]
            self.nodes += size
            self.charge(size, node, path)
        else:
            self.active.add(ident)
            before = self.nodes
            value, height = self.children(node, path, depth)
            self.active.discard(ident)
            self.nodes += 1
            self.built[ident] = (value, self.nodes - before, height)
        if depth + height > MAX_DEPTH:
            raise _Abort(TOO_DEEP, node, "")
        return value, height

    def children(self, node: Node, path: str, depth: int) -> tuple[Any, int]:
        """(object, height) of a collection built for the first time."""
        if isinstance(node, SequenceNode) and node.tag == _TAG + "seq":
            items: list[Any] = []
            height = 0
            for i, child in enumerate(node.value):
                value, child_height = self.build(child, join_index(path, i), depth + 1)
                items.append(value)
                height = max(height, child_height)
            return items, height + 1
        if isinstance(node, MappingNode) and node.tag == _TAG + "map":
            return self.mapping(node, path, depth)
        self.error(node, path, f"unsupported YAML tag {show(_tag(node.tag))}")
        return None, 1

    def mapping(self, node: MappingNode, path: str, depth: int) -> tuple[dict[str, Any], int]:
        result: dict[str, Any] = {}
        first: dict[str, Node] = {}
        height = 0
        for key_node, value_node in node.value:
            key = self.key(key_node, path)
            if key is None:
                continue
            key_path = join_key(path, key)
            if key in first:
                line = _mark(first[key])[0]
                self.error(
                    key_node, key_path, f"duplicate key {quote(key)} (first defined on line {line})"
                )
                continue
            first[key] = key_node
            value, child_height = self.build(value_node, key_path, depth + 1, _mark(key_node))
            result[key] = value
            height = max(height, child_height)
        return result, height + 1

    def scalar(self, node: ScalarNode, path: str) -> Any:
        kind = node.tag.removeprefix(_TAG)
        if not node.tag.startswith(_TAG) or kind not in _SCALAR_TYPES:
            self.error(node, path, f"unsupported YAML tag {show(_tag(node.tag))}")
            return None
        if kind in ("str", "timestamp", "value"):
            return self.text(node, path)
        try:
            return getattr(_CONSTRUCT, f"construct_yaml_{kind}")(node)
        except (ValueError, TypeError, KeyError, OverflowError):
            self.error(node, path, f"invalid {_SCALAR_TYPES[kind]} {quote(node.value)}")
            return None

    def text(self, node: ScalarNode, path: str) -> str | None:
        """A string scalar's text. A lone surrogate (`"\\ud800"`: the pure-Python scanner takes
        it, libyaml does not) is no Unicode character and could be written nowhere."""
        if m := _SURROGATE.search(node.value):
            code = ord(m.group())
            message = f"invalid escape: U+{code:04X} is a lone surrogate, no character"
            self.error(node, path, message)
            return None
        return node.value

    def key(self, node: Node, path: str) -> str | None:
        if isinstance(node, ScalarNode) and node.tag == _TAG + "merge":
            self.error(node, path, 'YAML merge keys ("<<") are not supported; write the fields out')
            return None
        if isinstance(node, ScalarNode) and node.tag in (_TAG + "str", _TAG + "timestamp"):
            return self.text(node, path)
        if isinstance(node, ScalarNode):
            kind = _SCALAR_TYPES.get(node.tag.removeprefix(_TAG), node.tag)
            got = f"{kind} {show(node.value)}" if node.value else kind
            self.error(node, path, f"mapping keys must be strings, got {got} (quote the key)")
        else:
            self.error(node, path, "mapping keys must be strings, got a collection")
        return None


def load_yaml(text: str | bytes, filename: str) -> tuple[object, SourceMap]:
    """Parse one YAML document into plain objects and a SourceMap; raise SpecError if invalid.

    `filename` is only used to name the file in the raised error's text.
    """
    try:
        _check_size(text)
        source = decode(text)
        root = _compose(source)
        if root is None or (isinstance(root, ScalarNode) and root.tag == _TAG + "null"):
            line, col = _mark(root) if root is not None else (1, 1)
            message = "empty document: expected a ClusterNetwork spec"
            raise SpecError([Diagnostic(message, "", line, col)])
        builder = _Builder()
        try:
            document, _ = builder.build(root, "", 0)
        except _Abort as e:
            line, col = _mark(e.node)
            raise SpecError([Diagnostic(str(e), e.path, line, col)]) from None
        if builder.errors:
            raise SpecError(builder.errors)
    except SpecError as e:
        raise SpecError(e.diagnostics, filename) from None
    return document, builder.source_map


def load_yaml_stream(text: str | bytes, filename: str) -> list[tuple[object, SourceMap, int]]:
    """Parse a multi-document YAML stream: each non-empty document, its SourceMap (paths from
    the document's root, positions in the whole stream) and the line it starts on; raise
    SpecError if any document is invalid.

    The bounds of `load_yaml` hold for the whole stream (size, depth, duplicate keys, tags);
    its documents share one alias budget. `filename` only names the file in the error's text.
    """
    documents: list[tuple[object, SourceMap, int]] = []
    errors: list[Diagnostic] = []
    expanded = 0
    try:
        _check_size(text)
        for root in _compose_all(decode(text)):
            if isinstance(root, ScalarNode) and root.tag == _TAG + "null":
                continue  # an empty document (`---` with nothing after it)
            builder = _Builder()
            builder.expanded = expanded
            try:
                document, _ = builder.build(root, "", 0)
            except _Abort as e:
                line, col = _mark(e.node)
                raise SpecError([Diagnostic(str(e), e.path, line, col)]) from None
            expanded = builder.expanded
            errors += builder.errors
            documents.append((document, builder.source_map, _mark(root)[0]))
        if errors:
            raise SpecError(errors)
    except SpecError as e:
        raise SpecError(e.diagnostics, filename) from None
    return documents
