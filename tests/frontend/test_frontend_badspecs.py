"""Golden corpus of invalid specs: badspecs/NAME.yaml must produce exactly NAME.expected.

Regenerate with `make golden` (tests/support/golden.py; review the diff before committing).
Each case fails for exactly one reason, except the ones named several-*.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netcc.diagnostics import KEY_SHAPED, SpecError
from netcc.frontend import INTERNAL_ERROR, parse_spec

BADSPECS = Path(__file__).parent / "badspecs"
CASES = sorted(BADSPECS.glob("*.yaml"))


def diagnostics_of(case: Path) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(case.read_bytes(), case.name)
    return info.value.format() + "\n"


def test_golden_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_golden_bad_spec(case: Path, golden) -> None:
    actual = diagnostics_of(case)
    golden(case.with_suffix(".expected"), actual)
    assert INTERNAL_ERROR not in actual
    lines = actual.splitlines()
    if case.stem.startswith("several-"):
        assert len(lines) > 1
    else:
        assert len(lines) == 1, "a bad spec should fail for exactly one reason"
    assert all(line.startswith(f"{case.name}:") for line in lines)
    assert all(line.isprintable() for line in lines), "a control character reached a message"
    assert not KEY_SHAPED.search(actual), "a message shows a key"


def test_golden_no_orphan_expectations(golden) -> None:
    """Every NAME.expected has its NAME.yaml (a renamed or deleted case leaves none behind)."""
    golden.only(BADSPECS, "*.expected", [c.with_suffix(".expected").name for c in CASES])
