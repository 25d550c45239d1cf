"""load_yaml: positions, and every way a YAML file can be refused."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from netcc.diagnostics import SpecError
from netcc.load import document as load
from netcc.load.document import ALIAS_BUDGET, MAX_DEPTH, load_yaml


def load_error(text: str | bytes) -> list[tuple[str, int, int, str]]:
    with pytest.raises(SpecError) as info:
        load_yaml(text, "f.yaml")
    assert info.value.filename == "f.yaml"
    return [(d.message, d.line, d.col, d.path) for d in info.value.diagnostics]


def billion_laughs(levels: int = 9) -> str:
    text = 'x0: &x0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for i in range(1, levels + 1):
        text += f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * 10) + "]\n"
    return text


def test_values_and_marks() -> None:
    text = "spec:\n  nodes:\n    - name: n1\n      labels: {app.kubernetes.io/name: x}\n"
    doc, smap = load_yaml(text, "f.yaml")
    assert doc == {"spec": {"nodes": [{"name": "n1", "labels": {"app.kubernetes.io/name": "x"}}]}}
    assert smap.locate("spec.nodes[0]") == (3, 7)
    assert smap.locate("spec.nodes[0].name") == (3, 13)
    assert smap.locate_key("spec.nodes[0].name") == (3, 7)
    assert smap.locate('spec.nodes[0].labels["app.kubernetes.io/name"]') == (4, 40)
    assert smap.locate_key('spec.nodes[0].labels["app.kubernetes.io/name"]') == (4, 16)
    assert smap.locate("spec.nodes[0].missing") == (3, 7)


def test_scalar_types() -> None:
    doc, _ = load_yaml("a: 1\nb: true\nc: ~\nd: 1.5\ne: '1'\nf: 2024-01-01\ng: 0x10\n", "f")
    assert doc == {"a": 1, "b": True, "c": None, "d": 1.5, "e": "1", "f": "2024-01-01", "g": 16}


def test_bytes_with_bom() -> None:
    doc, _ = load_yaml(b"\xef\xbb\xbfa: b\n", "f")
    assert doc == {"a": "b"}


def test_duplicate_key_reported_at_second_key() -> None:
    assert load_error("a: 1\nb:\n  x: 1\n  x: 2\n") == [
        ('duplicate key "x" (first defined on line 3)', 4, 3, "b.x")
    ]


def test_all_duplicate_keys_reported_together() -> None:
    assert len(load_error("a: 1\na: 2\nb: 1\nb: 2\n")) == 2


def test_syntax_error_position() -> None:
    [(message, line, col, _)] = load_error("a: [1, 2\nb: 3\n")
    assert message.startswith("YAML syntax error:")
    assert (line, col) == (2, 2)


def test_more_than_one_document() -> None:
    [(message, line, col, _)] = load_error("a: 1\n---\nb: 2\n")
    assert "more than one YAML document" in message
    assert (line, col) == (2, 1)


@pytest.mark.parametrize(
    ("text", "where"),
    [("", (1, 1)), ("   \n", (1, 1)), ("# just a comment\n", (1, 1)), ("~\n", (1, 1)),
     ("---\n", (2, 1)), ("# a\n\n~\n", (3, 1))],
)  # fmt: skip
def test_empty_document_is_located(text: str, where: tuple[int, int]) -> None:
    [(message, line, col, _)] = load_error(text)
    assert message.startswith("empty document")
    assert (line, col) == where


def test_invalid_utf8_position() -> None:
    assert load_error(b"a: 1\nb: x\xffy\n") == [("file is not valid UTF-8", 2, 5, "")]


def test_unacceptable_character() -> None:
    [(message, line, col, _)] = load_error("a: 1\nb: x\x07\n")
    assert message == "YAML syntax error: unacceptable character U+0007"
    assert (line, col) == (2, 5)


@pytest.mark.parametrize(
    ("text", "got"),
    [
        ("1: a\n", "integer 1"),
        ("yes: a\n", "boolean yes"),
        ("~: a\n", "null ~"),
        ("1.5: a\n", "number 1.5"),
    ],
)
def test_non_string_keys(text: str, got: str) -> None:
    [(message, line, col, _)] = load_error(text)
    assert message == f"mapping keys must be strings, got {got} (quote the key)"
    assert (line, col) == (1, 1)


def test_collection_key() -> None:
    [(message, *_)] = load_error("? [a]\n: b\n")
    assert message == "mapping keys must be strings, got a collection"


def test_merge_key_rejected() -> None:
    [(message, line, col, _)] = load_error("base: &b {x: 1}\nitem:\n  <<: *b\n  y: 2\n")
    assert "merge keys" in message
    assert (line, col) == (3, 3)


@pytest.mark.parametrize(
    "tag", ["!!binary aGk=", "!foo x", "!!python/object:os.system x", "!!set {a}"]
)
def test_unsupported_tags(tag: str) -> None:
    [(message, *_)] = load_error(f"a: {tag}\n")
    assert message.startswith("unsupported YAML tag")


def test_invalid_explicit_scalar() -> None:
    [(message, *_)] = load_error("a: !!int nope\n")
    assert message == 'invalid integer "nope"'


def test_huge_integer() -> None:
    [(message, *_)] = load_error("a: " + "9" * 5000 + "\n")
    assert message.startswith("invalid integer")


def test_aliases_allowed_and_located_at_the_alias() -> None:
    doc, smap = load_yaml("a: &x {k: [1, 2]}\nb: *x\n", "f")
    assert doc == {"a": {"k": [1, 2]}, "b": {"k": [1, 2]}}
    assert smap.locate("b") == (2, 4)
    assert smap.locate("b.k[1]") == (2, 4)  # inside an alias: the alias itself


def test_alias_bomb_stops_fast_at_the_alias() -> None:
    start = time.perf_counter()
    [(message, line, col, path)] = load_error(billion_laughs())
    assert time.perf_counter() - start < 1.0
    assert message.startswith(f"aliases expand to more than {ALIAS_BUDGET} nodes")
    assert line > 1 and col > 1 and path.startswith("x")


def test_many_aliases_under_budget() -> None:
    doc, _ = load_yaml(billion_laughs(levels=3), "f")
    assert len(doc["x3"]) == 10 and len(doc["x3"][0][0]) == 10


def test_recursive_alias() -> None:
    [(message, line, col, _)] = load_error("a: &x\n  b: *x\n")
    assert message.startswith("recursive alias")
    assert (line, col) == (2, 6)


def test_deep_nesting_is_an_error() -> None:
    [(message, *_)] = load_error("[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5))
    assert "nested" in message
    [(message, *_)] = load_error("[" * 1500 + "]" * 1500)
    assert "nested" in message


def test_deep_nesting_through_aliases() -> None:
    text = "a0: &a0 [x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, MAX_DEPTH + 5))
    [(message, *_)] = load_error(text)
    assert "nested" in message


def test_duplicate_anchor() -> None:
    [(message, line, *_)] = load_error("a: &x 1\nb: &x 2\n")
    assert message == "duplicate anchor 'x' (first defined on line 1)"
    assert line == 2


TOO_DEEP = f"document is nested more than {MAX_DEPTH} levels deep"
BLOCK_MAPPINGS = "".join("  " * i + "k:\n" for i in range(100)) + "  " * 100 + "v\n"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("a: " + "[" * 100 + "]" * 100 + "\n", (1, 4 + MAX_DEPTH - 1)),
        ("a: " + "{b: " * 100 + "c" + "}" * 100 + "\n", (1, 4 + 4 * (MAX_DEPTH - 1))),
        ("- " * 100 + "x\n", (1, 1 + 2 * MAX_DEPTH)),
        (BLOCK_MAPPINGS, (MAX_DEPTH + 1, 1 + 2 * MAX_DEPTH)),
        ("a: &x 1\nb: " + "[" * 100 + "*x" + "]" * 100 + "\n", (2, 4 + MAX_DEPTH - 1)),
        ("a: [" + "[" * 200 + "\n", (1, 5 + MAX_DEPTH - 2)),  # unclosed: still located
    ],
    ids=["flow-sequences", "flow-mappings", "compact-sequences", "block-mappings", "anchors",
         "unclosed"],
)  # fmt: skip
def test_depth_is_bounded_before_composing_at_the_first_collection_too_deep(
    text: str, where: tuple[int, int]
) -> None:
    assert load_error(text) == [(TOO_DEEP, *where, "")]


def test_depth_at_the_bound_is_fine() -> None:
    doc, _ = load_yaml("[" * MAX_DEPTH + "]" * MAX_DEPTH, "f")
    depth = 0
    while doc != []:
        assert isinstance(doc, list) and len(doc) == 1
        doc, depth = doc[0], depth + 1
    assert depth == MAX_DEPTH - 1  # MAX_DEPTH lists, the innermost empty


@pytest.mark.parametrize("opener", ["[", "{a: ", "- ", "[{a: "])
def test_nesting_that_overflows_libyaml_fails_cleanly(opener: str) -> None:
    # Tens of thousands of levels overflow the stack of libyaml's recursive composer (a
    # segfault): run in a child so that a regression fails this test, not the whole run.
    code = (
        "from netcc.frontend import parse_spec\nfrom netcc.diagnostics import SpecError\n"
        f"text = {opener!r} * 200000\n"
        "try:\n    parse_spec(text, 'deep.yaml')\nexcept SpecError as e:\n    print(e.format())\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("deep.yaml:1:") and TOO_DEEP in run.stdout


def test_size_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(load, "MAX_SPEC_BYTES", 64)
    load_yaml("a: " + "b" * 59 + "\n", "f")  # 63 bytes
    [(message, line, col, _)] = load_error(b"a: 1\n" + b"b" * 100)
    assert "larger than" in message and (line, col) == (2, 60)
    [(message, *_)] = load_error("x" * 65)
    assert "larger than" in message


def test_a_lone_surrogate_is_a_located_error() -> None:
    [(message, line, col, _)] = load_error("a: 1\nb: \ud800\n")
    assert message == "YAML syntax error: unacceptable character U+D800"
    assert (line, col) == (2, 4)


def test_messages_quoting_scalars_are_escaped_and_redacted() -> None:
    key = "IKbn3RwfPbsEp7lyD6XuLDCO5yJcGAQyQfYuRDlIWH8="
    [(message, *_)] = load_error(f"a: !!int {key}\n")
    assert message == 'invalid integer "<redacted: looks like a key>"'
    [(message, *_)] = load_error('a: !!int "1\\e[2J"\n')
    assert message == 'invalid integer "1\\x1b[2J"'
    [(message, *_)] = load_error("a: !<%1B[31m%0A> x\n")
    assert message == "unsupported YAML tag \\x1b[31m\\n"
    [(message, *_)] = load_error('a: 1\n"a\\n": 2\n"a\\n": 3\n')
    assert message == 'duplicate key "a\\n" (first defined on line 2)'
