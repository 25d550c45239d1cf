"""YAML out: every manifest goes through PyYAML's safe dumper, never string concatenation.

Output is deterministic: keys sorted at every level (a document's `apiVersion`, `kind` and
`metadata` first, as people write them), block style, no anchors, ASCII only (other
characters are escaped), no line folding. A string is quoted whenever a YAML 1.1 or 1.2
parser could read it as anything but a string (`yes`, `null`, `0o17`, `1e3`, `.5`...), as
kubectl's parser would; multi-line strings are literal blocks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import yaml

from netcc.emit.k8s.constants import HEADER

FIRST_KEYS = ("apiVersion", "kind", "metadata")
_BOOL_NULL = ("y", "yes", "n", "no", "true", "false", "on", "off", "null", "~", "=")
_KEYWORDS = frozenset((*_BOOL_NULL, "nan", "inf", ".nan", ".inf", "-.inf", "+.inf"))
_NUMBER_LIKE = re.compile(r"[-+]?\.?[0-9]")


def ambiguous(value: str) -> bool:
    """True for a string some YAML parser might not read back as that string."""
    return value == "" or value.lower() in _KEYWORDS or bool(_NUMBER_LIKE.match(value))


# libyaml's emitter when PyYAML has it (10x faster on large ConfigMaps), else PyYAML's own
# port of it: the same bytes either way (tests/k8s compare them).
_BASE = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_BASE):  # type: ignore[misc, valid-type]
    """The safe dumper, without anchors and aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


class _PyDumper(yaml.SafeDumper):
    """The pure-Python safe dumper (what `_Dumper` is without libyaml)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else "'" if ambiguous(value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)
_PyDumper.add_representer(str, _represent_str)


def ordered(value: Any, top: bool = False) -> Any:
    """`value` with every mapping's keys sorted (FIRST_KEYS first at the top level)."""
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (not (top and k in FIRST_KEYS), _first(k, top), k))
        return {k: ordered(value[k]) for k in keys}
    if isinstance(value, list | tuple):
        return [ordered(v) for v in value]
    return value


def _first(key: str, top: bool) -> int:
    return FIRST_KEYS.index(key) if top and key in FIRST_KEYS else 0


def _printable(comment: str) -> str:
    """A comment line that stays one line of printable ASCII whatever it quotes."""
    return "".join(ch if " " <= ch <= "~" else "?" for ch in comment)


# Long base64 values (ConfigMap binaryData: the BPF object, parts of large map files) are
# emitted as plain scalars, verbatim: no character of the alphabet needs quoting or escaping,
# and without spaces nothing is folded. The emitter still scans them character by character
# (~100 MB/s), so they are set aside and put back into its output (see `_stash`).
LONG = 1024
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_TOKEN = "netcc-long-scalar-{:08d}"
_TOKEN_RE = re.compile(r"netcc-long-scalar-(\d{8})")
_LINE_TOKEN_RE = re.compile(r"^([^\n]*?)netcc-long-scalar-(\d{8})", re.M)  # and what precedes


# Long multi-line text (ConfigMap data: map files and their parts) goes around the emitter
# too, as the literal block it would write: `|` (`|2` when the text starts with a space), each
# line indented two spaces past its key, empty lines left empty. Only text whose block the
# emitter writes that way is set aside: printable ASCII lines, none ending in a space, the
# text ending in exactly one line end (tests/unit/test_unit_yamlout_long.py compares).
_PRINTABLE = bytes(range(0x20, 0x7F))


def _block_ok(value: str) -> bool:
    if not value.isascii() or not value.endswith("\n") or value.endswith("\n\n"):
        return False
    if value[0] == "\n" or " \n" in value:  # a leading line end, a line ending in a space
        return False
    return not value.encode().translate(None, _PRINTABLE + b"\n")  # no other control


def _stash(value: Any, stash: list[str], blocks: set[int] | None = None) -> Any:
    """`value` with every long base64 string (one a YAML parser reads back as that string
    without quotes) replaced by a token that emits plain as well, appended to `stash`; with
    `blocks`, long text that is a mapping's value too (its position added to `blocks`)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if blocks is not None and isinstance(v, str) and len(v) >= LONG and _block_ok(v):
                blocks.add(len(stash))
                stash.append(v)
                out[k] = _TOKEN.format(len(stash) - 1)
            else:
                out[k] = _stash(v, stash, blocks)
        return out
    if isinstance(value, list):
        return [_stash(v, stash, blocks) for v in value]
    if (
        isinstance(value, str)
        and len(value) >= LONG
        and not ambiguous(value)
        and _BASE64.fullmatch(value)
    ):
        stash.append(value)
        return _TOKEN.format(len(stash) - 1)
    return value


def _literal(text: str, indent: int) -> str:
    """`text` as the emitter writes it as a literal block whose lines are at `indent`,
    without the final line end (the skeleton's line ends it)."""
    prefix = " " * indent
    body = prefix + text[:-1].replace("\n", "\n" + prefix)
    blank = "\n" + prefix + "\n"
    while blank in body:  # empty lines stay empty
        body = body.replace(blank, "\n\n")
    return ("|2\n" if text.startswith(" ") else "|\n") + body


def _emit(document: Any, dumper: type) -> str:
    return yaml.dump(
        document,
        Dumper=dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=False,
        width=2**31 - 1,
        explicit_start=False,
    )


def _body(document: dict[str, Any], dumper: type) -> str:
    """The document's YAML, long base64 values emitted around instead of through PyYAML."""
    doc = ordered(document, top=True)
    stash: list[str] = []
    blocks: set[int] = set()
    skeleton = _emit(_stash(doc, stash, blocks), dumper)
    if not stash:
        return skeleton
    found = [int(m) for m in _TOKEN_RE.findall(skeleton)]
    if found != list(range(len(stash))):  # a token-like string of the document's own
        return _emit(doc, dumper)

    def put_back(m: re.Match[str]) -> str:
        n = int(m.group(2))
        if n not in blocks:
            return m.group(1) + stash[n]
        return m.group(1) + _literal(stash[n], len(m.group(1)) - len(m.group(1).lstrip()) + 2)

    return _LINE_TOKEN_RE.sub(put_back, skeleton)


def dump(document: dict[str, Any], comments: Iterable[str] = (), dumper: type = _Dumper) -> bytes:
    """One YAML file: the generated-code header, `comments` as `#` lines, the document."""
    lines = [HEADER] + [f"# {_printable(c)}".rstrip() + "\n" for c in comments]
    text = "".join(lines) + _body(document, dumper)
    assert text.isascii()
    return text.encode()
