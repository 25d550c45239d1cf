"""Golden corpus of invalid specs: badspecs/NAME.yaml must produce exactly NAME.expected.

Regenerate with NETCC_UPDATE_GOLDEN=1 (the tests then pass; review the diff before committing).
Each case fails for exactly one reason, except the ones named several-*.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netcc.diagnostics import KEY_SHAPED, SpecError
from netcc.frontend import INTERNAL_ERROR, parse_spec

BADSPECS = Path(__file__).parent / "badspecs"
CASES = sorted(BADSPECS.glob("*.yaml"))
UPDATE = os.environ.get("NETCC_UPDATE_GOLDEN") == "1"


def diagnostics_of(case: Path) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(case.read_bytes(), case.name)
    return info.value.format() + "\n"


def test_golden_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_golden_bad_spec(case: Path) -> None:
    actual = diagnostics_of(case)
    expected_file = case.with_suffix(".expected")
    if UPDATE:
        expected_file.write_text(actual)
    assert expected_file.exists(), f"no {expected_file.name}; run with NETCC_UPDATE_GOLDEN=1"
    assert actual == expected_file.read_text()
    assert INTERNAL_ERROR not in actual
    lines = actual.splitlines()
    if case.stem.startswith("several-"):
        assert len(lines) > 1
    else:
        assert len(lines) == 1, "a bad spec should fail for exactly one reason"
    assert all(line.startswith(f"{case.name}:") for line in lines)
    assert all(line.isprintable() for line in lines), "a control character reached a message"
    assert not KEY_SHAPED.search(actual), "a message shows a key"


def test_golden_no_orphan_expectations() -> None:
    orphans = [p.name for p in BADSPECS.glob("*.expected") if not p.with_suffix(".yaml").exists()]
    assert orphans == []
