"""Diagnostic formatting, SpecError ordering and SourceMap lookups."""

from __future__ import annotations

import pickle

from netcc.diagnostics import (
    Diagnostic,
    SourceMap,
    SpecError,
    ancestors,
    join_index,
    join_key,
    join_path,
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
