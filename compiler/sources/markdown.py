"""Fenced code blocks of a Markdown file, and their YAML as one stream at the file's own lines.

A block's lines keep their place (line and column) in the stream: every other line of the file is
blank there and each block's opening fence is a `---` (a new document), so positions in the
stream are positions in the Markdown file. Fences are CommonMark's (three or more backticks or
tildes, closed by a like fence at least as long, or by the end of the file), at any indentation
(a block in a list item is indented); a block's `---` and `...` document markers are moved to
column 1, where YAML wants them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_OPEN = re.compile(r"( *)(`{3,}|~{3,})(.*)")
_CLOSE = re.compile(r" *(`{3,}|~{3,}) *")
_LANG = re.compile(r"[\w+-]+")
_MARKER = re.compile(r"(---|\.\.\.)(?:[ \t].*)?")


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language (the info string's first word, lowercased; "" for
    none), the 0-based line of its opening fence, and its lines as written."""

    lang: str
    fence: int
    lines: tuple[str, ...]

    def text(self) -> str:
        """The block's lines as a YAML stream of their own."""
        return "\n".join(self.lines)


def _content(line: str, indent: int) -> str:
    """A block line, with a document marker indented like the fence moved to column 1."""
    if indent and not line[:indent].strip(" ") and _MARKER.fullmatch(line[indent:]):
        return line[indent:]
    return line


def fenced_blocks(lines: list[str]) -> list[Block]:
    """The fenced code blocks of a Markdown file's lines (without their line breaks)."""
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _OPEN.fullmatch(lines[i].rstrip("\r"))
        if opening is None or (opening[2][0] == "`" and "`" in opening[3]):
            i += 1
            continue
        indent, fence, info = len(opening[1]), opening[2], opening[3].strip()
        lang = m[0].lower() if (m := _LANG.search(info)) else ""
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            line = lines[j].rstrip("\r")
            closing = _CLOSE.fullmatch(line)
            if closing and closing[1][0] == fence[0] and len(closing[1]) >= len(fence):
                break
            body.append(_content(line, indent))
            j += 1
        blocks.append(Block(lang, i, tuple(body)))
        i = j + 1
    return blocks


def as_stream(blocks: list[Block], line_count: int) -> str:
    """The blocks' YAML as one stream of `line_count` lines, each block a new document at its
    own lines."""
    out = [""] * line_count
    for block in blocks:
        out[block.fence] = "---"
        out[block.fence + 1 : block.fence + 1 + len(block.lines)] = block.lines
    return "\n".join(out)
