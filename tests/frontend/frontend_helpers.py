"""Shared helpers for the front-end tests (a uniquely named module: tests/ has no packages)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from netcc.diagnostics import SpecError
from netcc.frontend import parse_spec
from netcc.model.types import Cluster

HERE = Path(__file__).parent
SPECS = HERE / "specs"
SHOP_TEXT = (SPECS / "shop.yaml").read_text()
SHOP = yaml.safe_load(SHOP_TEXT)


def shop() -> dict[str, Any]:
    """A fresh, mutable copy of the valid shop spec."""
    return copy.deepcopy(SHOP)


def dump(document: Any) -> str:
    """YAML text of `document` (libyaml's emitter when available: it is much faster)."""
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(document, Dumper=dumper, sort_keys=False, allow_unicode=True)


def parse(document: Any) -> Cluster:
    """Model of `document` (a dict, dumped to YAML first, or YAML text)."""
    text = document if isinstance(document, str | bytes) else dump(document)
    return parse_spec(text, "test.yaml")[0]


def errors(document: Any) -> list[tuple[str, str]]:
    """(path, message) of every error `document` produces; [] when it is valid."""
    try:
        parse(document)
    except SpecError as e:
        return [(d.path, d.message) for d in e.diagnostics]
    return []


def assert_clean(
    error: SpecError, filename: str = "test.yaml", secrets: tuple[str, ...] = ()
) -> None:
    """Every diagnostic of `error` is exactly one line of printable text, no internal error, and
    shows no key-shaped text nor any 12-character piece of one of `secrets`."""
    from netcc.diagnostics import KEY_SHAPED
    from netcc.frontend import INTERNAL_ERROR

    assert error.diagnostics, "SpecError without diagnostics"
    for d in error.diagnostics:
        line = d.format(filename)
        assert line.isprintable(), repr(line)  # no newline, CR, ESC, C1, bidi override...
        assert len(line.splitlines()) == 1, repr(line)
        assert INTERNAL_ERROR not in line, line
        assert not KEY_SHAPED.search(line), line
        for secret in secrets:
            pieces = {secret[i : i + 12] for i in range(0, len(secret) - 11)}
            assert not any(p in line for p in pieces), line
