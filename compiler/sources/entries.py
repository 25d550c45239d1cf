"""What a translation yields: spec entries that remember their manifest (`Item`), and messages
about manifests (`Finding`); helpers the translators share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netcc.diagnostics import join_key, quote, show
from netcc.sources.manifests import Manifest

_KINDS = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "a mapping",
}


def join(base: str, rest: str) -> str:
    """Path `rest` (relative, as `spec.ports[0]` or `[0].port`) under `base`."""
    if not rest:
        return base
    if not base or rest.startswith("["):
        return base + rest
    return f"{base}.{rest}"


@dataclass(frozen=True)
class Item:
    """One spec entry taken from a manifest, and how paths inside it map back into the
    manifest: `paths` holds (entry path prefix, manifest path prefix), longest prefix first."""

    kind: str  # "namespace" | "workload" | "service" | "policy"
    doc: dict[str, Any]
    manifest: Manifest
    paths: tuple[tuple[str, str], ...]

    def manifest_path(self, entry_path: str) -> str:
        """The manifest path `entry_path` (a path inside `doc`) came from."""
        for prefix, target in self.paths:
            if prefix == entry_path:
                return target
            if not prefix:
                return join(target, entry_path)
            if entry_path.startswith(prefix) and entry_path[len(prefix)] in ".[":
                return join(target, entry_path[len(prefix) :].removeprefix("."))
        return ""

    def origin(self, entry_path: str) -> tuple[str, int, int]:
        """File, line and column of `entry_path` (a path inside `doc`) in the manifest."""
        line, col = self.manifest.locate(self.manifest_path(entry_path))
        return self.manifest.file, line, col


def item(kind: str, doc: dict[str, Any], manifest: Manifest, paths: dict[str, str]) -> Item:
    """An Item whose `paths` are sorted longest prefix first."""
    ordered = sorted(paths.items(), key=lambda p: len(p[0]), reverse=True)
    return Item(kind, doc, manifest, tuple(ordered))


@dataclass(frozen=True)
class Finding:
    """An error or a note about a manifest, at a path inside its object."""

    message: str
    manifest: Manifest
    path: str
    severity: str = "error"  # "error" | "note"


def ident(manifest: Manifest, namespace: str | None) -> str:
    """How messages name an object: `Deployment shop/web`, `Namespace shop`."""
    name = show(manifest.name) if manifest.name else "(no name)"
    kind = show(manifest.kind) if manifest.kind else "object"
    return f"{kind} {show(namespace)}/{name}" if namespace is not None else f"{kind} {name}"


def at(obj: Any, path: str) -> Any:
    """The value at dotted `path` (plain keys) in `obj`; None when absent. "" is `obj`."""
    for key in path.split(".") if path else ():
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def described(value: Any) -> str:
    """What `value` is, for a message: "an integer", "a mapping", "none"."""
    return _KINDS.get(type(value), "none" if value is None else "a value")


def labels(
    manifest: Manifest, path: str, what: str, findings: list[Finding]
) -> dict[str, str] | None:
    """The labels at `path` ({} when absent); None, with errors, when they are no mapping of
    strings. `what` names their owner in messages."""
    value = at(manifest.obj, path)
    if value is None:
        return {}
    if not isinstance(value, dict):
        message = f"labels of {what} must be a mapping, got {described(value)}"
        findings.append(Finding(message, manifest, path))
        return None
    ok = True
    for key, label in value.items():
        if not isinstance(label, str):
            message = (
                f"label {quote(key)} of {what} must be a string, got {described(label)} "
                f"{quote(label)} (quote it)"
            )
            findings.append(Finding(message, manifest, join_key(path, key)))
            ok = False
    return dict(value) if ok else None
