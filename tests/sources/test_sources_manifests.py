"""Reading Kubernetes objects: YAML streams, Lists, JSON, directories; positions and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from netcc.diagnostics import SpecError
from netcc.load.document import ALIAS_BUDGET, MAX_DEPTH, load_yaml_stream
from netcc.sources.manifests import read_path, read_stream

FIXTURES = Path(__file__).parent / "fixtures"


def errors(text: str | bytes, file: str = "m.yaml") -> list[tuple[str, int, int, str, str]]:
    with pytest.raises(SpecError) as info:
        read_stream(text, file)
    assert info.value.filename == file
    return [(d.message, d.line, d.col, d.path, d.file) for d in info.value.diagnostics]


STREAM = """\
# leading comment
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  template:
    metadata:
      labels: {app: web}
--- # only a comment
...
---
kind: Service
apiVersion: v1
metadata: {name: web}
"""


def test_stream_documents_positions_and_properties() -> None:
    ms = read_stream(STREAM, "app.yaml")
    assert [(m.kind, m.api_version, m.name, m.namespace) for m in ms] == [
        ("Namespace", "v1", "shop", None),
        ("Deployment", "apps/v1", "web", "shop"),
        ("Service", "v1", "web", None),
    ]
    assert [m.index for m in ms] == [0, 1, 2]  # empty documents are not counted
    assert {m.file for m in ms} == {"app.yaml"}
    assert ms[0].locate("metadata.name") == (5, 9)
    assert ms[1].locate("metadata.name") == (11, 9)
    assert ms[1].locate("spec.template.metadata.labels.app") == (16, 21)
    assert ms[1].locate("spec.template.spec.containers") == (15, 5)  # nearest ancestor
    assert ms[2].locate("metadata.name") == (22, 18)
    assert ms[2].locate("") == (20, 1)


def test_bytes_with_bom_and_crlf() -> None:
    data = "\ufeffapiVersion: v1\r\nkind: Pod\r\nmetadata:\r\n  name: p\r\n".encode()
    (m,) = read_stream(data, "p.yaml")
    assert (m.kind, m.name, m.locate("metadata.name")) == ("Pod", "p", (4, 9))


def test_empty_and_comment_only_streams() -> None:
    assert read_stream("", "e.yaml") == []
    assert read_stream("# nothing\n---\n---\n", "e.yaml") == []


LIST = """\
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Service
    metadata:
      name: a
  - apiVersion: v1
    kind: List
    items:
      - apiVersion: v1
        kind: Pod
        metadata: {name: p}
---
apiVersion: v1
kind: List
items: []
---
apiVersion: v1
kind: Pod
metadata: {name: q}
"""


def test_list_items_are_objects_of_their_own() -> None:
    ms = read_stream(LIST, "list.yaml")
    assert [(m.kind, m.name, m.index) for m in ms] == [
        ("Service", "a", 0),
        ("Pod", "p", 0),
        ("Pod", "q", 2),
    ]
    # paths are relative to the item; positions are the file's
    assert ms[0].locate("metadata.name") == (7, 13)
    assert ms[0].locate("") == (4, 5)
    assert "metadata.name" in ms[0].sources
    assert "items" not in ms[0].sources
    assert ms[1].locate("metadata.name") == (13, 26)
    assert ms[1].sources.locate_key("metadata.name") == (13, 20)


def test_list_of_something_else_is_an_error() -> None:
    text = "apiVersion: v1\nkind: List\nitems:\n  - 3\n"
    assert errors(text) == [
        (
            "List item is not a Kubernetes object: expected a mapping",
            4,
            5,
            "items[0]",
            "m.yaml",
        )
    ]
    text = "apiVersion: v1\nkind: List\nitems: {a: 1}\n"
    assert errors(text)[0][:3] == ("List items must be a list", 3, 8)


def test_a_list_of_another_api_is_an_object() -> None:
    text = "apiVersion: example.com/v1\nkind: List\nmetadata: {name: x}\nitems: [1]\n"
    (m,) = read_stream(text, "x.yaml")
    assert m.kind == "List"


JSON = """{
\t"apiVersion": "v1",
\t"kind": "Service",
\t"metadata": {"name": "web*", "annotations": {"note": "a\\ttab \\" and *"}},
\t"spec": {"ports": [{"port": 80}]}
}
"""


def test_json_with_tabs_and_anchor_like_characters() -> None:
    (m,) = read_stream(JSON, "svc.json")
    assert m.obj["metadata"] == {"name": "web*", "annotations": {"note": 'a\ttab " and *'}}
    assert m.locate("spec.ports[0].port") == (5, 30)


def test_json_list() -> None:
    text = '{"apiVersion": "v1", "kind": "List", "items": [\n {"apiVersion": "v1", "kind": "Pod",'
    text += ' "metadata": {"name": "p"}}]}'
    (m,) = read_stream(text, "l.json")
    assert (m.kind, m.name, m.locate("metadata.name")) == ("Pod", "p", (2, 59))


def test_syntax_errors_are_located_in_the_file() -> None:
    text = "apiVersion: v1\nkind: Pod\n---\nmetadata:\n  name: [p\n"
    ((message, line, col, _, file),) = errors(text, "bad.yaml")
    assert message.startswith("YAML syntax error")
    assert (line, file) == (6, "bad.yaml")
    assert col >= 1
    text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  name: q\n"
    assert errors(text) == [
        ('duplicate key "name" (first defined on line 4)', 5, 3, "metadata.name", "m.yaml")
    ]


def test_invalid_utf8_and_unsupported_tags() -> None:
    assert errors(b"kind: Pod\nname: \xff\n") == [("file is not valid UTF-8", 2, 7, "", "m.yaml")]
    tag = errors("kind: !!python/object:os.system x\n")[0]
    assert tag[:3] == ("unsupported YAML tag !!python/object:os.system", 1, 7)


def test_documents_that_are_no_mappings() -> None:
    text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n---\n- a\n- b\n---\nplain\n"
    assert errors(text) == [
        ("document 1 is not a Kubernetes object: expected a mapping", 5, 1, "", "m.yaml"),
        ("document 2 is not a Kubernetes object: expected a mapping", 8, 1, "", "m.yaml"),
    ]


def test_stream_positions_are_the_whole_files() -> None:
    docs = load_yaml_stream("a: 1\n---\n\nb:\n  c: 2\n", "s.yaml")
    assert [(d, line) for d, _, line in docs] == [({"a": 1}, 1), ({"b": {"c": 2}}, 4)]
    assert docs[1][1].locate("b.c") == (5, 6)


def test_stream_alias_budget_is_shared_by_its_documents() -> None:
    one = "a: &a [" + ", ".join(["1"] * 600) + "]\nb: [" + ", ".join(["*a"] * 100) + "]\n"
    assert len(load_yaml_stream(one, "s.yaml")) == 1
    with pytest.raises(SpecError) as info:
        load_yaml_stream(one + "---\n" + one, "s.yaml")
    (d,) = info.value.diagnostics
    assert d.message == f"aliases expand to more than {ALIAS_BUDGET} nodes (alias bomb?)"
    assert (d.line, d.path) == (5, "b[66]")  # in the second document


def test_stream_depth_is_bounded() -> None:
    deep = "a: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "\n"
    with pytest.raises(SpecError) as info:
        load_yaml_stream("a: 1\n---\n" + deep, "s.yaml")
    assert [(d.line, d.message) for d in info.value.diagnostics] == [
        (3, f"document is nested more than {MAX_DEPTH} levels deep")
    ]


def test_undefined_alias_across_documents() -> None:
    with pytest.raises(SpecError) as info:
        load_yaml_stream("a: &x 1\n---\nb: *x\n", "s.yaml")
    assert info.value.diagnostics[0].line == 3


def test_read_path_directory_sorted_hidden_and_tool_files_skipped() -> None:
    ms = read_path(FIXTURES / "shop", "manifests")
    files = [m.file for m in ms]
    assert files == sorted(files)
    assert sorted(set(files)) == [
        "manifests/00-namespace.yaml",
        "manifests/README.md",
        "manifests/db/statefulset.json",
        "manifests/policies/allow-web.yaml",
        "manifests/web.yaml",
    ]
    assert [(m.kind, m.name) for m in ms] == [
        ("Namespace", "shop"),
        ("ConfigMap", "web-settings"),
        ("StatefulSet", "db"),
        ("Service", "db"),
        ("NetworkPolicy", "default-deny"),
        ("NetworkPolicy", "allow-web"),
        ("Deployment", "web"),
        ("Service", "web"),
        ("ConfigMap", "web-config"),
    ]


def test_read_path_single_files(tmp_path: Path) -> None:
    (m,) = read_path(FIXTURES / "shop" / "00-namespace.yaml", "ns.yaml")
    assert (m.file, m.name, m.locate("metadata.labels.tier")) == ("ns.yaml", "shop", (7, 11))
    (md,) = read_path(FIXTURES / "shop" / "README.md", "README.md")
    assert (md.kind, md.locate("metadata.name")) == ("ConfigMap", (15, 9))
    other = tmp_path / "objects.txt"
    other.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n")
    assert [m.name for m in read_path(other, "objects.txt")] == ["p"]


def test_read_path_names_the_unreadable_and_the_invalid(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        read_path(tmp_path / "missing.yaml", "missing.yaml")
    assert info.value.filename == "missing.yaml"
    assert info.value.diagnostics[0].message.startswith("cannot read")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "bad.yml").write_text("a: [\n")
    with pytest.raises(SpecError) as info:
        read_path(tmp_path, "src")
    assert {d.file for d in info.value.diagnostics} == {"src/sub/bad.yml"}
