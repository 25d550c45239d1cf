"""Namespaces: names, labels, and the kubernetes.io/metadata.name label Kubernetes adds."""

from __future__ import annotations

from typing import Any

from netcc.diagnostics import join_key
from netcc.model.types import NAMESPACE_NAME_LABEL
from netcc.validate.access import entries, mapping, quote, text
from netcc.validate.context import Context
from netcc.validate.k8s_names import describe, dns1123_label
from netcc.validate.labels import check_labels


def check_namespaces(ctx: Context, namespaces: Any) -> None:
    """Records the declared names in `ctx.namespaces` for reference checks."""
    seen: dict[str, str] = {}
    readable = namespaces is None or (
        isinstance(namespaces, list) and all(isinstance(n, dict) for n in namespaces)
    )
    for path, namespace in entries(namespaces, "spec.namespaces"):
        name = text(namespace.get("name"))
        labels_path = join_key(path, "labels")
        check_labels(ctx, namespace.get("labels"), labels_path)
        if name is None:
            readable = False
            continue
        name_path = join_key(path, "name")
        if problems := dns1123_label(name):
            ctx.error(name_path, describe("namespace name", name, problems))
        if name in seen:
            ctx.error(name_path, f"namespace {quote(name)} is already declared by {seen[name]}")
        seen.setdefault(name, path)
        own = mapping(namespace.get("labels")).get(NAMESPACE_NAME_LABEL)
        if isinstance(own, str) and own != name:
            ctx.error(
                join_key(labels_path, NAMESPACE_NAME_LABEL),
                f"label {NAMESPACE_NAME_LABEL} must be the namespace name {quote(name)}, "
                f"not {quote(own)}",
            )
    if readable:
        ctx.namespaces = set(seen)
