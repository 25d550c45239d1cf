"""The CNI spec's rules for identifiers, and Kubernetes' rules for pod references.

Each `*_problem` function returns None for a valid value, else what is wrong with it, phrased
to follow the variable's name in an error message.
"""

from __future__ import annotations

import re

_CNI_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_POD_UID = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]*")

MAX_IFNAME = 15
"""Interface names are under 16 bytes (IFNAMSIZ with its NUL)."""
MAX_ID = 1024
"""A bound on container IDs and network names (the spec sets none; runtimes use 64 hex)."""


def container_id_problem(value: str) -> str | None:
    """CNI_CONTAINERID: an alphanumeric, then alphanumerics, '_', '.' or '-' (CNI spec)."""
    if not value:
        return "is missing"
    if len(value) > MAX_ID:
        return f"is longer than {MAX_ID} characters"
    if not _CNI_NAME.fullmatch(value) or not value.isascii():
        return "must start with a letter or digit, followed by letters, digits, '_', '.' or '-'"
    return None


def network_name_problem(value: str) -> str | None:
    """The configuration's `name`: the same rule as container IDs (CNI spec)."""
    return container_id_problem(value)


def ifname_problem(value: str) -> str | None:
    """CNI_IFNAME: not empty, not '.' or '..', under 16 bytes, no '/', ':' or whitespace."""
    if not value:
        return "is missing"
    if len(value.encode("utf-8", "surrogatepass")) > MAX_IFNAME:
        return f"is longer than {MAX_IFNAME} bytes"
    if value in (".", ".."):
        return "must not be '.' or '..'"
    if any(c in "/:" or c.isspace() for c in value):
        return "must not contain '/', ':' or whitespace"
    if "\0" in value:
        return "must not contain NUL"
    return None


def netns_problem(value: str) -> str | None:
    """CNI_NETNS: an absolute path without NUL (it need not exist: DEL runs after it is gone)."""
    if not value.startswith("/"):
        return "must be an absolute path"
    if "\0" in value or len(value) > 4096:
        return "must be a path of at most 4096 characters without NUL"
    return None


def namespace_problem(value: str) -> str | None:
    """K8S_POD_NAMESPACE: a DNS-1123 label."""
    if len(value) > 63 or not _DNS_LABEL.fullmatch(value):
        return "must be a DNS-1123 label (lower-case letters, digits, '-'; at most 63)"
    return None


def pod_name_problem(value: str) -> str | None:
    """K8S_POD_NAME: a DNS-1123 subdomain."""
    if len(value) > 253 or not all(_DNS_LABEL.fullmatch(p) for p in value.split(".")):
        return "must be a DNS-1123 subdomain (lower-case letters, digits, '-', '.'; at most 253)"
    return None


def pod_uid_problem(value: str) -> str | None:
    """K8S_POD_UID: a UUID (or a static pod's hash): letters, digits and '-'."""
    if len(value) > 128 or not _POD_UID.fullmatch(value) or not value.isascii():
        return "must be a UID (letters, digits and '-')"
    return None
