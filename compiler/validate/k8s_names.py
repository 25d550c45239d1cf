"""Kubernetes name and label syntax, as apimachinery validates it (pkg/util/validation).

Each function returns the list of problems (empty when valid), worded like Kubernetes's own.
"""

from __future__ import annotations

import re

from netcc.validate.access import quote

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_PORT_NAME_CHARS = re.compile(r"[-a-z0-9]+")

_DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character"
)
_DNS1035_LABEL_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character"
)
_QUALIFIED_NAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character"
)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character"
)


def _too_long(value: str, limit: int) -> list[str]:
    return [f"must be no more than {limit} characters"] if len(value) > limit else []


def dns1123_label(value: str) -> list[str]:
    """Namespace names."""
    problems = _too_long(value, 63)
    if not _DNS1123_LABEL.fullmatch(value):
        problems.append(_DNS1123_LABEL_MSG)
    return problems


def dns1123_subdomain(value: str) -> list[str]:
    """Node, workload (pod) and NetworkPolicy names; label key prefixes."""
    problems = _too_long(value, 253)
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        problems.append(_DNS1123_SUBDOMAIN_MSG)
    return problems


def dns1035_label(value: str) -> list[str]:
    """Service names."""
    problems = _too_long(value, 63)
    if not _DNS1035_LABEL.fullmatch(value):
        problems.append(_DNS1035_LABEL_MSG)
    return problems


def qualified_name(value: str) -> list[str]:
    """Label keys: an optional DNS-1123 subdomain prefix and '/', then a name of ≤ 63 characters."""
    parts = value.split("/")
    if len(parts) > 2:
        return [
            "a qualified name "
            + _QUALIFIED_NAME_MSG
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    problems: list[str] = []
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            problems.append("prefix part must be non-empty")
        else:
            problems += [f"prefix part {p}" for p in dns1123_subdomain(prefix)]
    if not name:
        problems.append("name part must be non-empty")
    elif len(name) > 63:
        problems.append("name part must be no more than 63 characters")
    if name and not _QUALIFIED_NAME.fullmatch(name):
        problems.append("name part " + _QUALIFIED_NAME_MSG)
    return problems


def label_value(value: str) -> list[str]:
    """Label values: ≤ 63 characters, possibly empty."""
    problems = _too_long(value, 63)
    if not _LABEL_VALUE.fullmatch(value):
        problems.append(_LABEL_VALUE_MSG)
    return problems


def port_name(value: str) -> list[str]:
    """IANA_SVC_NAME (RFC 6335): container, service and policy port names."""
    problems = _too_long(value, 15)
    if not _PORT_NAME_CHARS.fullmatch(value):
        problems.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if "--" in value:
        problems.append("must not contain consecutive hyphens")
    if not re.search(r"[a-z]", value):
        problems.append("must contain at least one letter (a-z)")
    if value.startswith("-") or value.endswith("-"):
        problems.append("must not begin or end with a hyphen")
    return problems


def describe(kind: str, value: str, problems: list[str]) -> str:
    """One message for all `problems` of `value`."""
    return f"invalid {kind} {quote(value)}: " + "; ".join(problems)
