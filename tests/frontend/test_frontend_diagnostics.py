"""Diagnostic formatting, SpecError ordering and SourceMap lookups."""

from __future__ import annotations

import pickle

from netcc.diagnostics import (
    REDACTED,
    Diagnostic,
    SourceMap,
    SpecError,
    ancestors,
    escape,
    has_key_shape,
    join_index,
    join_key,
    join_path,
    quote,
    show,
)


def test_format_with_path_and_position() -> None:
    d = Diagnostic("bad thing", "spec.nodes[0].name", 3, 7)
    assert d.format("a.yaml") == "a.yaml:3:7: error: bad thing (spec.nodes[0].name)"


def test_format_without_path_or_line() -> None:
    assert Diagnostic("oops", line=2, col=1).format("a.yaml") == "a.yaml:2:1: error: oops"
    assert Diagnostic("oops").format("a.yaml") == "a.yaml: error: oops"
    assert Diagnostic("hm", severity="warning").format("f") == "f: warning: hm"


def test_spec_error_sorts_and_deduplicates() -> None:
    ds = [
        Diagnostic("b", "x", 5, 1),
        Diagnostic("a", "y", 2, 9),
        Diagnostic("c", "a", 2, 9),
        Diagnostic("b", "x", 5, 1),
    ]
    e = SpecError(ds, "f.yaml")
    assert [d.message for d in e.diagnostics] == ["c", "a", "b"]
    assert str(e) == "f.yaml:2:9: error: c (a)\nf.yaml:2:9: error: a (y)\nf.yaml:5:1: error: b (x)"


def test_spec_error_pickles() -> None:
    e = SpecError([Diagnostic("m", "p", 1, 2)], "f.yaml")
    again = pickle.loads(pickle.dumps(e))
    assert again.diagnostics == e.diagnostics and again.filename == "f.yaml"


def test_paths() -> None:
    assert join_key("", "spec") == "spec"
    assert join_path("spec", "nodes", 0, "name") == "spec.nodes[0].name"
    assert join_key("labels", "app.kubernetes.io/name") == 'labels["app.kubernetes.io/name"]'
    assert join_key("n", 'we"ird') == 'n["we\\"ird"]'
    assert join_index("ips", 3) == "ips[3]"


def test_ancestors() -> None:
    path = 'spec.workloads[1].labels["a.b/c"]'
    assert ancestors(path) == [
        path,
        "spec.workloads[1].labels",
        "spec.workloads[1]",
        "spec.workloads",
        "spec",
        "",
    ]
    assert ancestors("") == [""]


def test_locate_falls_back_to_nearest_ancestor() -> None:
    m = SourceMap()
    m.add("", 1, 1)
    m.add("spec", 5, 3, key=(4, 1))
    m.add("spec.nodes[0]", 7, 7)
    assert m.locate("spec") == (5, 3)
    assert m.locate_key("spec") == (4, 1)
    assert m.locate("spec.nodes[0].podCIDR") == (7, 7)
    assert m.locate_key("spec.nodes[0].podCIDR") == (7, 7)
    assert m.locate("metadata.name") == (1, 1)
    assert SourceMap().locate("spec") == (0, 0)


KEY = "IKbn3RwfPbsEp7lyD6XuLDCO5yJcGAQyQfYuRDlIWH8="
HOSTILE = "a\nb\rc\x1b[2Jd\x00e\x07f\x7fg\x85h\x9bi\u202ej\u2066k\u2028l\u2029m\ufeffn\u200bo"


def test_escape_keeps_printable_text_and_escapes_the_rest() -> None:
    assert escape("naïve 名前 /x\\y") == "naïve 名前 /x\\y"
    assert escape("a\nb\tc\rd\x1b\x85\u202e\U000e0041") == (
        "a\\nb\\tc\\rd\\x1b\\x85\\u202e\\U000e0041"
    )
    assert escape(escape(HOSTILE)) == escape(HOSTILE)  # escaping twice changes nothing
    assert escape(HOSTILE).isprintable()


def test_quote_escapes_shortens_and_redacts() -> None:
    assert quote("web") == '"web"'
    assert quote('a"b\\c\n') == '"a\\"b\\\\c\\n"'
    assert quote(HOSTILE).isprintable()
    assert quote("x" * 200) == '"' + "x" * 77 + '..."'
    for value in (KEY, f"/etc/wg/{KEY}", "x" * 70 + KEY, {"a": [KEY]}, f"{KEY}\n"):
        assert quote(value) == f'"{REDACTED}"', value
    assert quote(3) == "3" and quote(None) == "null"


def test_show_is_unquoted() -> None:
    assert show("!!foo") == "!!foo"
    assert show("\x1b[2J") == "\\x1b[2J"
    assert show("prefix" + KEY) == REDACTED


def test_key_shape_is_found_anywhere_but_not_in_hex_digests() -> None:
    for text in (KEY, "/" + KEY, "+" + KEY, "x" + KEY + "x", f"a: {KEY}=="):
        assert has_key_shape(text), text
    digest = "ghcr.io/netcc/netcc@sha256:" + "ab" * 32
    for text in (digest, KEY[:-1], KEY.replace("=", "-"), "10.0.0.0/8", "a" * 43 + "-="):
        assert not has_key_shape(text), text


def test_every_diagnostic_is_one_clean_line_whoever_built_it() -> None:
    d = Diagnostic(f"bad {HOSTILE} {KEY}", f'spec.x["{HOSTILE}"]', 1, 2)
    line = d.format(f"spec\n{HOSTILE}.yaml")
    assert line.isprintable() and KEY not in line and REDACTED in line
    assert line.startswith("spec\\n")
    assert Diagnostic(f"/etc/wg/{KEY}").message == f"/etc/wg/{REDACTED}"


def test_paths_escape_unprintable_keys() -> None:
    path = join_key("labels", "a\nb\u202e")
    assert path == 'labels["a\\nb\\u202e"]' and path.isprintable()
    assert ancestors(join_key(path, "x")) == ['labels["a\\nb\\u202e"].x', path, "labels", ""]


def test_spec_error_file_names_are_shown_on_one_line() -> None:
    e = SpecError([Diagnostic("m", "", 1, 1)], "a\nb\x1b.yaml")
    assert e.filename == "a\\nb\\x1b.yaml" and e.format() == "a\\nb\\x1b.yaml:1:1: error: m"
