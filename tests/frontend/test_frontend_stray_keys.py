"""A key-shaped value that is not a declared public key is refused wherever it sits in the
spec, comments included: OUT carries the spec as written, so a private key pasted anywhere
would reach it."""

from pathlib import Path

import pytest

from netcc.diagnostics import SpecError
from netcc.frontend import parse_spec

ROOT = Path(__file__).resolve().parents[2]
ENCRYPTED = (ROOT / "tests" / "golden" / "specs" / "encrypted.yaml").read_text()
STRAY = "IKbn3RwfPbsEp7lyD6XuLDCO5yJcGAQyQfYuRDlIWH8="  # 32 bytes, declared nowhere


def errors(text: str) -> list:
    with pytest.raises(SpecError) as e:
        parse_spec(text, "spec.yaml")
    return e.value.diagnostics


def test_declared_public_keys_are_fine():
    parse_spec(ENCRYPTED, "spec.yaml")


def test_a_key_in_a_comment_is_refused_at_its_place_without_quoting_it():
    text = ENCRYPTED + f"# node-a's private key: {STRAY}\n"
    [d] = errors(text)
    assert (d.line, d.col) == (text.count("\n"), len("# node-a's private key: ") + 1)
    assert "not even in a comment" in d.message and STRAY not in d.message


def test_a_key_after_a_value_on_its_line_is_refused():
    text = ENCRYPTED.replace("    - {name: web}\n", f"    - {{name: web}}  # {STRAY}\n")
    assert text != ENCRYPTED
    [d] = errors(text)
    assert "looks like a WireGuard key" in d.message


def test_a_key_in_private_key_file_is_reported_once():
    text = ENCRYPTED.replace('"/etc/netcc/wg/private.key"', f'"{STRAY}"', 1)
    found = [d for d in errors(text) if "key" in d.message]
    assert len(found) == 1 and STRAY not in found[0].message
