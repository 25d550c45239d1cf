"""Kubernetes name syntax, case by case (the same verdicts as apimachinery)."""

from __future__ import annotations

import pytest

from netcc.validate.k8s_names import (
    dns1035_label,
    dns1123_label,
    dns1123_subdomain,
    label_value,
    port_name,
    qualified_name,
)


@pytest.mark.parametrize("value", ["a", "abc", "a-b", "0", "a1", "1a", "x" * 63])
def test_dns1123_label_valid(value: str) -> None:
    assert dns1123_label(value) == []


@pytest.mark.parametrize("value", ["", "A", "a.b", "-a", "a-", "a_b", "x" * 64, "a\n"])
def test_dns1123_label_invalid(value: str) -> None:
    assert dns1123_label(value)


@pytest.mark.parametrize("value", ["a", "a.b", "a-b.c-d", "1.2.3", ("a" * 63 + ".") * 3 + "a" * 61])
def test_dns1123_subdomain_valid(value: str) -> None:
    assert dns1123_subdomain(value) == []


@pytest.mark.parametrize("value", ["", "a..b", ".a", "a.", "A.b", "a_b", "a" * 254])
def test_dns1123_subdomain_invalid(value: str) -> None:
    assert dns1123_subdomain(value)


@pytest.mark.parametrize("value", ["a", "web", "a-1", "x" * 63])
def test_dns1035_label_valid(value: str) -> None:
    assert dns1035_label(value) == []


@pytest.mark.parametrize("value", ["1a", "", "a-", "a.b", "Web", "x" * 64])
def test_dns1035_label_invalid(value: str) -> None:
    assert dns1035_label(value)


@pytest.mark.parametrize(
    "value",
    ["app", "App_1", "a.b-c", "app.kubernetes.io/name", "example.com/My.Name", "x" * 63, "1"],
)
def test_qualified_name_valid(value: str) -> None:
    assert qualified_name(value) == []


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "name part must be non-empty"),
        ("/a", "prefix part must be non-empty"),
        ("a/", "name part must be non-empty"),
        ("a/b/c", "a qualified name must consist of"),
        ("-a", "name part must consist of"),
        ("x" * 64, "name part must be no more than 63 characters"),
        ("Example.com/a", "prefix part a lowercase RFC 1123 subdomain"),
    ],
)
def test_qualified_name_invalid(value: str, problem: str) -> None:
    assert any(p.startswith(problem) for p in qualified_name(value)), qualified_name(value)


@pytest.mark.parametrize("value", ["", "a", "A.b_c-d", "1", "x" * 63])
def test_label_value_valid(value: str) -> None:
    assert label_value(value) == []


@pytest.mark.parametrize("value", ["-a", "a-", "a b", "a/b", "x" * 64, "é"])
def test_label_value_invalid(value: str) -> None:
    assert label_value(value)


@pytest.mark.parametrize("value", ["http", "a", "web-1", "h2c", "x" * 15, "1a"])
def test_port_name_valid(value: str) -> None:
    assert port_name(value) == []


@pytest.mark.parametrize(
    ("value", "problems"),
    [
        ("x" * 16, ["must be no more than 15 characters"]),
        (
            "HTTP",
            [
                "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "must contain at least one letter (a-z)",
            ],
        ),
        ("a--b", ["must not contain consecutive hyphens"]),
        ("123", ["must contain at least one letter (a-z)"]),
        ("-a", ["must not begin or end with a hyphen"]),
        ("a-", ["must not begin or end with a hyphen"]),
        (
            "",
            [
                "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "must contain at least one letter (a-z)",
            ],
        ),
    ],
)
def test_port_name_invalid(value: str, problems: list[str]) -> None:
    assert port_name(value) == problems
