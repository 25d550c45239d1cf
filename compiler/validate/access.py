"""Typed, forgiving access to a document that may have failed the schema.

Semantic checks run even when the schema found errors, so they read the raw document through
these helpers: a value of the wrong type reads as absent and is left to the schema's report.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from netcc.diagnostics import join_index, quote

__all__ = ["entries", "integer", "items", "mapping", "quote", "text"]


def mapping(value: Any) -> dict[str, Any]:
    """`value` if it is a mapping, else an empty one."""
    return value if isinstance(value, dict) else {}


def items(value: Any) -> list[Any]:
    """`value` if it is a list, else an empty one."""
    return value if isinstance(value, list) else []


def entries(value: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, item) for each mapping in the list `value` at `path`."""
    for i, item in enumerate(items(value)):
        if isinstance(item, dict):
            yield join_index(path, i), item


def text(value: Any) -> str | None:
    """`value` if it is a string."""
    return value if isinstance(value, str) else None


def integer(value: Any) -> int | None:
    """`value` if it is an integer (booleans are not)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None
