"""JSON Schema validation (schemas/clusternetwork.schema.json), with errors made human."""

from __future__ import annotations

import difflib
import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, ValidationError, validators

from netcc.diagnostics import Diagnostic, SourceMap, join_key, join_path
from netcc.validate.access import quote
from netcc.validate.secrets import is_private_key_field

SCHEMA_FILE = "clusternetwork.schema.json"
_TYPE_NAMES = {
    "object": "mapping",
    "array": "list",
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "null": "null",
}


def load_schema() -> dict[str, Any]:
    """The published JSON Schema."""
    return json.loads((resources.files("netcc.schemas") / SCHEMA_FILE).read_text("utf-8"))


def _is_integer(_checker: Any, instance: Any) -> bool:
    """Integers only: YAML `80.0` is a float, not a port."""
    return isinstance(instance, int) and not isinstance(instance, bool)


@cache
def _validator() -> Draft202012Validator:
    checker = Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer)
    cls = validators.extend(Draft202012Validator, type_checker=checker)
    return cls(inlined(load_schema()))


def inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with every `{"$ref": "#/$defs/NAME"}` replaced by that definition itself.

    The same constraints, found without a lookup: a spec of 3,000 workloads makes 80,000 of
    them, a third of the validator's time. A `$ref`'s siblings are annotations only
    (`description`), which validation ignores; a definition that reaches itself keeps its
    `$ref` (the published schema has none)."""
    defs = schema.get("$defs", {})

    def resolve(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [resolve(v, seen) for v in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref.removeprefix("#/$defs/")
            if name in defs and name not in seen and set(node) <= {"$ref", "description"}:
                return resolve(defs[name], (*seen, name))
        return {k: resolve(v, seen) for k, v in node.items()}

    return resolve(schema, ())


def type_name(value: Any) -> str:
    """The JSON-Schema-ish name of a loaded YAML value, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "mapping"


def check_schema(document: Any, source_map: SourceMap) -> list[Diagnostic]:
    """Every schema error, one diagnostic each, located through `source_map`."""
    errors = list(_validator().iter_errors(document))
    mistyped = {tuple(e.absolute_path) for e in errors if e.validator == "type"}
    found: list[Diagnostic] = []
    for error in errors:
        parts = tuple(error.absolute_path)
        if any(isinstance(p, str) and is_private_key_field(p) for p in parts):
            continue  # reported once, without echoing it, by the secrets check
        if error.validator != "type" and parts in mistyped:
            continue  # the wrong type says it all
        found.extend(_diagnostics(error, join_path("", *parts), source_map))
    return found


def _diagnostics(error: ValidationError, path: str, source_map: SourceMap) -> list[Diagnostic]:
    kind, instance, schema = error.validator, error.instance, error.schema
    if kind == "additionalProperties" and isinstance(instance, dict):
        known = list(schema.get("properties", {}) if isinstance(schema, dict) else ())
        return [
            source_map.diagnostic(join_key(path, key), _unknown_field(key, known), at_key=True)
            for key in instance
            if key not in known and not is_private_key_field(key)
        ]
    if kind == "required" and isinstance(instance, dict):
        return [
            source_map.diagnostic(join_key(path, key), f"missing required field {quote(key)}")
            for key in error.validator_value
            if key not in instance
        ]
    return [source_map.diagnostic(path, _message(error))]


def _unknown_field(key: str, known: list[str]) -> str:
    message = f"unknown field {quote(key)}"
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f"{message}; did you mean {quote(close[0])}?" if close else message


def _message(error: ValidationError) -> str:
    kind, value, instance = error.validator, error.validator_value, error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}
    if kind == "type":
        expected = [value] if isinstance(value, str) else list(value)
        names = " or ".join(_TYPE_NAMES.get(t, t) for t in expected)
        got = type_name(instance)
        scalar = got in ("boolean", "integer", "number")
        hint = " (quote it to make it a string)" if expected == ["string"] and scalar else ""
        return f"expected {names}, got {got}{hint}"
    if kind == "enum":
        options = ", ".join(quote(v) for v in value)
        return f"expected one of {options}, got {quote(instance)}"
    if kind == "const":
        return f"expected {quote(value)}, got {quote(instance)}"
    if kind in ("minimum", "maximum"):
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None and high is not None:
            return f"must be between {low} and {high}, got {instance}"
        return f"must be at {'least' if kind == 'minimum' else 'most'} {value}, got {instance}"
    if kind == "minItems":
        return "must not be empty" if value == 1 else f"must have at least {value} items"
    return error.message
