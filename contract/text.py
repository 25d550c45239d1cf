"""Text for one-line messages: every unprintable character escaped.

Both sides quote names they did not choose (spec values, paths inside OUT, interface names), and
a name holding a newline, a carriage return or a terminal escape must not forge output lines.
`escape` is the one escaping: `netcc.diagnostics` uses it for spec text, `files.shown` for paths.
"""

from __future__ import annotations

_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape(text: str) -> str:
    """`text` with every unprintable character escaped (`\\n`, `\\x1b`, `\\u202e`).

    Printable text, non-ASCII letters included, is kept; backslashes are kept as they are, so
    that escaping twice changes nothing."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape_char(c) for c in text)


def _escape_char(c: str) -> str:
    if c in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[c]
    code = ord(c)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
