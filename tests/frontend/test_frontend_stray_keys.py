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
    """The diagnostics of `text`; [] when it is valid."""
    try:
        parse_spec(text, "spec.yaml")
    except SpecError as e:
        return e.diagnostics
    return []


def test_declared_public_keys_are_fine():
    assert errors(ENCRYPTED) == []
    cluster, _ = parse_spec(ENCRYPTED, "spec.yaml")
    keys = [n.public_key for n in cluster.wireguard.nodes]
    assert len(keys) == 2 and all(f'publicKey: "{k}"' in ENCRYPTED for k in keys)


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


PUBLIC = "MsPAnE9IISWl9FsGgDIkcxOO+cz2rkKEXrBy78VyQH4="  # node-a's, declared in ENCRYPTED
NAMESPACES = "  namespaces:\n    - {name: web}\n"


def with_namespace_field(field: str) -> str:
    """ENCRYPTED with `field` (YAML text) added to its namespace."""
    text = ENCRYPTED.replace(NAMESPACES, f"  namespaces:\n    - name: web\n      {field}\n")
    assert text != ENCRYPTED
    return text


def x_escaped(text: str) -> str:
    return "".join(f"\\x{ord(c):02x}" for c in text)


def assert_refused_silently(text: str) -> list:
    found = errors(text)
    shown = "\n".join(d.format("spec.yaml") for d in found)
    assert STRAY[:12] not in shown and STRAY[-12:] not in shown, shown
    assert all(d.format("spec.yaml").isprintable() for d in found)
    return found


@pytest.mark.parametrize(
    "value",
    [
        f'"{x_escaped(STRAY)}"',
        '"' + "".join(f"\\u{ord(c):04x}" for c in STRAY) + '"',
        '"' + "".join(f"\\U{ord(c):08x}" for c in STRAY) + '"',
        f'"{STRAY[:20]}\\\n        {STRAY[20:]}"',
        f'"{STRAY[:1]}\\\n   {STRAY[1:30]}\\\n   {STRAY[30:]}"',
    ],
    ids=["x-escapes", "u-escapes", "U-escapes", "continuation", "two-continuations"],
)
def test_a_key_hidden_by_yaml_escapes_is_refused_at_its_value(value: str) -> None:
    text = with_namespace_field(f"labels: {{team: {value}}}")
    found = assert_refused_silently(text)
    assert any(
        d.path == "spec.namespaces[0].labels.team" and "looks like a WireGuard key" in d.message
        for d in found
    ), found


@pytest.mark.parametrize("prefix", ["/", "+", "x", "/etc/wg/", "a+b/", "0"])
def test_a_prefix_does_not_hide_a_key(prefix: str) -> None:
    text = ENCRYPTED + f"# the key: {prefix}{STRAY}\n"
    [d] = assert_refused_silently(text)
    assert (d.line, d.col) == (text.count("\n"), len(f"# the key: {prefix}") + 1)


def test_a_key_in_a_key_file_path_is_refused() -> None:
    text = ENCRYPTED.replace('"/etc/netcc/wg/private.key"', f'"/etc/wg/{STRAY}"', 1)
    [d] = assert_refused_silently(text)
    assert d.path == 'spec.encryption.wireguard.nodes["node-a"].privateKeyFile'


def test_a_key_escaped_as_a_map_key_is_refused_at_the_key() -> None:
    text = with_namespace_field(f'labels: {{"{x_escaped(STRAY)}": x}}')
    found = assert_refused_silently(text)
    assert any("looks like a WireGuard key" in d.message for d in found)


def test_a_public_key_is_accepted_only_in_its_place() -> None:
    assert errors(ENCRYPTED + f"# node-a: {PUBLIC}\n") == []  # public, and said where
    misplaced = with_namespace_field(f'labels: {{team: "{x_escaped(PUBLIC)}"}}')
    assert any("looks like a WireGuard key" in d.message for d in errors(misplaced))
    declared_anywhere = with_namespace_field(f'publicKey: "{x_escaped(STRAY)}"')
    assert_refused_silently(declared_anywhere)  # a field named publicKey declares nothing


def test_a_public_key_written_with_escapes_is_still_a_public_key() -> None:
    text = ENCRYPTED.replace(f'"{PUBLIC}"', f'"{x_escaped(PUBLIC)}"')
    assert text != ENCRYPTED and errors(text) == []


def test_digests_and_long_names_are_not_keys() -> None:
    digest = "sha256:" + "0123456789abcdef" * 4
    text = ENCRYPTED.replace(
        "  namespaces:", f"  deploy: {{image: 'ghcr.io/netcc/netcc:1.0@{digest}'}}\n  namespaces:"
    )
    text += "# " + "a" * 80 + "\n# x-" + "b" * 42 + "=c\n# " + "=" * 60 + "\n"
    assert errors(text) == []


def test_other_messages_about_a_key_never_quote_it() -> None:
    text = ENCRYPTED.replace("name: encrypted", f'name: "{x_escaped(STRAY)}"')
    found = assert_refused_silently(text)
    assert any(d.message.startswith("invalid cluster name") for d in found)
