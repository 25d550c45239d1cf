"""The published JSON Schema and how its errors are reported."""

from __future__ import annotations

from typing import Any

import pytest
from frontend_helpers import SHOP_TEXT, errors
from jsonschema import Draft202012Validator

from netcc.diagnostics import SpecError
from netcc.frontend import parse_spec
from netcc.validate.schema import load_schema


def walk(schema: Any, where: str = "#"):
    if isinstance(schema, dict):
        yield where, schema
        for key, value in schema.items():
            yield from walk(value, f"{where}/{key}")
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            yield from walk(value, f"{where}/{i}")


def test_schema_is_valid_draft_2020_12() -> None:
    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "https://netcc.io/schemas/v1alpha1/clusternetwork.schema.json"


def test_every_object_with_fields_is_closed() -> None:
    for where, node in walk(load_schema()):
        if "properties" in node:
            assert node.get("additionalProperties") is False, where


def test_every_definition_and_field_is_documented() -> None:
    schema = load_schema()
    for name, definition in schema["$defs"].items():
        assert "title" in definition or "description" in definition, name
    for where, node in walk(schema):
        for field, sub in node.get("properties", {}).items():
            documented = "description" in sub or "$ref" in sub
            assert documented, f"{where}/properties/{field}"


def test_valid_spec_passes_the_raw_schema() -> None:
    import yaml

    validator = Draft202012Validator(load_schema())
    doc = yaml.safe_load(SHOP_TEXT)
    assert list(validator.iter_errors(doc)) == []
    # the control: the same validator refuses the spec without its nodes
    del doc["spec"]["nodes"]
    assert [e.message for e in validator.iter_errors(doc)] == ["'nodes' is a required property"]


def located(text: str) -> list[tuple[int, int, str, str]]:
    with pytest.raises(SpecError) as info:
        parse_spec(text, "f.yaml")
    return [(d.line, d.col, d.path, d.message) for d in info.value.diagnostics]


def test_unknown_field_points_at_the_key() -> None:
    text = SHOP_TEXT.replace("        podSelector: {}\n", "        podSelectr: {}\n")
    line = SHOP_TEXT.splitlines().index("        podSelector: {}") + 1
    assert (
        line,
        9,
        "spec.policies[2].spec.podSelectr",
        'unknown field "podSelectr"; did you mean "podSelector"?',
    ) in located(text)


def test_missing_field_points_at_the_parent() -> None:
    text = SHOP_TEXT.replace("      podCIDR: 10.244.2.0/24\n", "")
    line = SHOP_TEXT.splitlines().index("    - name: node-2") + 1
    assert located(text) == [(line, 7, "spec.nodes[1].podCIDR", 'missing required field "podCIDR"')]


def test_no_suggestion_for_unrelated_field(doc: dict) -> None:
    doc["spec"]["zzz"] = 1
    assert errors(doc) == [("spec.zzz", 'unknown field "zzz"')]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (8080, "expected string, got integer (quote it to make it a string)"),
        (True, "expected string, got boolean (quote it to make it a string)"),
        (None, "expected string, got null"),
        ([1], "expected string, got list"),
        ({"a": 1}, "expected string, got mapping"),
    ],
)
def test_type_messages(doc: dict, value: Any, message: str) -> None:
    doc["spec"]["nodes"][0]["address"] = value
    assert errors(doc) == [("spec.nodes[0].address", message)]


def test_integer_rejects_float_and_bool(doc: dict) -> None:
    doc["spec"]["workloads"][0]["ports"][0]["port"] = 8080.0
    doc["spec"]["workloads"][1]["ports"][0]["port"] = True
    assert errors(doc) == [
        ("spec.workloads[0].ports[0].port", "expected integer, got number"),
        ("spec.workloads[1].ports[0].port", "expected integer, got boolean"),
    ]


def test_int_or_string(doc: dict) -> None:
    doc["spec"]["services"][0]["ports"][0]["targetPort"] = 1.5
    assert errors(doc) == [
        ("spec.services[0].ports[0].targetPort", "expected integer or string, got number")
    ]


def test_wrong_type_is_reported_once(doc: dict) -> None:
    doc["spec"]["services"][0]["type"] = 3
    assert errors(doc) == [
        ("spec.services[0].type", "expected string, got integer (quote it to make it a string)")
    ]


def test_enum_const_and_ranges(doc: dict) -> None:
    doc["apiVersion"] = "netcc.io/v1"
    doc["spec"]["services"][0]["type"] = "LoadBalancer"
    doc["spec"]["services"][1]["ports"][0]["nodePort"] = 40000
    assert sorted(errors(doc)) == [
        ("apiVersion", 'expected "netcc.io/v1alpha1", got "netcc.io/v1"'),
        ("spec.services[0].type", 'expected one of "ClusterIP", "NodePort", got "LoadBalancer"'),
        ("spec.services[1].ports[0].nodePort", "must be between 30000 and 32767, got 40000"),
    ]


def test_root_must_be_a_mapping() -> None:
    assert errors("- a\n- b\n") == [("", "expected mapping, got list")]
    assert errors("hello\n") == [("", "expected mapping, got string")]


def test_all_schema_errors_reported_together(doc: dict) -> None:
    del doc["kind"]
    doc["spec"]["podCIDR"] = 1
    doc["spec"]["nodes"][0]["extra"] = "x"
    doc["spec"]["policies"][0]["spec"]["policyTypes"] = ["Sideways"]
    assert sorted(errors(doc)) == [
        ("kind", 'missing required field "kind"'),
        ("spec.nodes[0].extra", 'unknown field "extra"'),
        ("spec.podCIDR", "expected string, got integer (quote it to make it a string)"),
        (
            "spec.policies[0].spec.policyTypes[0]",
            'expected one of "Ingress", "Egress", got "Sideways"',
        ),
    ]
