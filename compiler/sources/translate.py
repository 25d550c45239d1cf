"""Kubernetes objects -> spec entries: namespaces, workload classes (from pod templates),
services and NetworkPolicies, each an `Item` that maps its paths back into its manifest.

Pure: no spec, no files. Objects without `metadata.namespace` take `default_namespace`, as with
`kubectl apply -n`; a namespace some entry uses but no Namespace object declares is declared
here (with a note). Kinds netcc does not use are counted, never an error. Output order is input
order.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from netcc.diagnostics import show
from netcc.sources.entries import Finding, Item, described, ident, item, labels
from netcc.sources.manifests import Manifest
from netcc.sources.services import service
from netcc.sources.workloads import TEMPLATES, workload_class

__all__ = ["Finding", "Item", "Translation", "translate"]

DEFAULT_NAMESPACE = "default"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
POLICY_API = "networking.k8s.io/v1"
# set by the API server, never by the user: left out of a NetworkPolicy taken verbatim
SERVER_METADATA = (
    "creationTimestamp",
    "generation",
    "managedFields",
    "resourceVersion",
    "selfLink",
    "uid",
)


@dataclass
class Translation:
    """The entries taken from the manifests, what was not used, and the messages."""

    namespaces: list[Item] = field(default_factory=list)
    workloads: list[Item] = field(default_factory=list)
    services: list[Item] = field(default_factory=list)
    policies: list[Item] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # "APIVERSION KIND" -> objects
    findings: list[Finding] = field(default_factory=list)


def _group(api_version: str) -> str:
    return api_version.split("/")[0] if "/" in api_version else ""


def _use(manifest: Manifest) -> str | None:
    """What netcc takes from the object: "namespace", "workload", "service", "policy", or
    "policy-version" (a NetworkPolicy of an API netcc does not read); None for nothing."""
    group, kind = _group(manifest.api_version), manifest.kind
    if (group, kind) in TEMPLATES:
        return "workload"
    if group == "" and kind in ("Namespace", "Service"):
        return kind.lower()
    if kind == "NetworkPolicy" and group in ("networking.k8s.io", "extensions"):
        return "policy" if manifest.api_version == POLICY_API else "policy-version"
    return None


class _Translator:
    def __init__(
        self,
        manifests: Sequence[Manifest],
        default_namespace: str | None,
        known: Iterable[str] = (),
    ) -> None:
        self.out = Translation()
        self.default = default_namespace or DEFAULT_NAMESPACE
        self.declared = {m.name for m in manifests if _use(m) == "namespace"} | set(known)
        self.implicit: set[str] = set()
        # (section, namespace/name) -> the first object of that key, as messages name it
        self.first: dict[tuple[str, str], tuple[Manifest, str]] = {}

    def error(self, manifest: Manifest, path: str, message: str) -> None:
        self.out.findings.append(Finding(message, manifest, path))

    def note(self, manifest: Manifest, path: str, message: str) -> None:
        self.out.findings.append(Finding(message, manifest, path, "note"))

    def one(self, m: Manifest) -> None:
        for key, what in (("apiVersion", "API version"), ("kind", "kind")):
            if not isinstance(m.obj.get(key), str) or not m.obj[key]:
                got = "" if key not in m.obj else f", got {described(m.obj[key])}"
                why = f"every Kubernetes object names its {key} (a string){got}"
                self.error(m, key, f"object without {what}: {why}")
                return
        use = _use(m)
        hook = _helm_hook(m)
        if use is not None and hook:  # `helm template` prints hooks (tests, jobs) too
            self.note(m, "metadata.annotations", f"{ident(m, None)}: a helm {hook} hook, not "
                      "part of the release's running objects: skipped")  # fmt: skip
            use = None
        if use is None:
            key = f"{m.api_version} {m.kind}"
            self.out.skipped[key] = self.out.skipped.get(key, 0) + 1
            return
        namespace = None if use == "namespace" else self.namespace_of(m)
        what = ident(m, namespace)
        if not self.named(m, what):
            return
        if use == "policy-version":
            why = f"{show(m.api_version)} NetworkPolicies are not served by Kubernetes"
            self.error(m, "apiVersion", f"{what}: {why}; write apiVersion: {POLICY_API}")
        elif use == "namespace":
            self.namespace(m, what)
        elif namespace is not None:
            self.namespaced(m, use, namespace, what)

    def namespace_of(self, m: Manifest) -> str | None:
        metadata = m.obj.get("metadata")
        value = metadata.get("namespace") if isinstance(metadata, dict) else None
        if value is None or value == "":
            return self.default
        if not isinstance(value, str):
            why = f"metadata.namespace must be a string, got {described(value)}"
            self.error(m, "metadata.namespace", f"{ident(m, None)}: {why}")
            return None
        return value

    def named(self, m: Manifest, what: str) -> bool:
        metadata = m.obj.get("metadata")
        if not isinstance(metadata, dict):
            got = described(metadata)
            self.error(m, "metadata", f"{what}: metadata must be a mapping, got {got}")
            return False
        name = metadata.get("name")
        if isinstance(name, str) and name:
            return True
        if name is None and "generateName" in metadata:
            why = " has no metadata.name (generateName gives a new name each time; netcc needs one)"
        elif name is None or name == "":
            why = " has no metadata.name"
        else:
            why = f": metadata.name must be a string, got {described(name)}"
        self.error(m, "metadata.name", what + why)
        return False

    def unique(self, section: str, key: str, m: Manifest, what: str, rule: str) -> bool:
        first, first_what = self.first.setdefault((section, key), (m, what))
        if first is m:
            return True
        line, _ = first.locate("metadata.name")
        where = f"{first_what} ({show(first.file)}:{line})"
        self.error(m, "metadata.name", f"{what}: {key} is already declared by {where}; {rule}")
        return False

    def namespace(self, m: Manifest, what: str) -> None:
        found = labels(m, "metadata.labels", what, self.out.findings)
        if found is None or not self.unique("namespace", m.name, m, what, "names are unique"):
            return
        doc = {"name": m.name, "labels": {**found, NAMESPACE_NAME_LABEL: m.name}}
        paths = {"": "metadata", "name": "metadata.name", "labels": "metadata.labels"}
        self.out.namespaces.append(item("namespace", doc, m, paths))

    def namespaced(self, m: Manifest, use: str, namespace: str, what: str) -> None:
        key = f"{namespace}/{m.name}"
        if use == "workload":
            template = TEMPLATES[_group(m.api_version), m.kind]
            taken = workload_class(m, template, namespace, what, self.out.findings)
            rule = "netcc names a class after its object: names are unique per namespace"
            target = self.out.workloads
        elif use == "service":
            taken = service(m, namespace, what, self.out.findings)
            rule = "names are unique per namespace"
            target = self.out.services
        else:
            taken = self.policy(m, namespace)
            rule = "names are unique per namespace"
            target = self.out.policies
        if taken is None or not self.unique(use, key, m, what, rule):
            return
        self.uses(m, namespace, what)
        target.append(item(use, taken[0], m, taken[1]))

    def policy(self, m: Manifest, namespace: str) -> tuple[dict[str, Any], dict[str, str]]:
        doc = copy.deepcopy(m.obj)
        doc.pop("status", None)
        metadata = doc["metadata"]
        for key in SERVER_METADATA:
            metadata.pop(key, None)
        metadata["namespace"] = namespace
        return doc, {"": ""}

    def uses(self, m: Manifest, namespace: str, what: str) -> None:
        """`namespace` is used by `m`: declared here when no Namespace object declares it."""
        if namespace in self.declared or namespace in self.implicit:
            return
        self.implicit.add(namespace)
        doc = {"name": namespace, "labels": {NAMESPACE_NAME_LABEL: namespace}}
        paths = {"": "metadata", "name": "metadata.namespace", "labels": "metadata.namespace"}
        self.out.namespaces.append(item("namespace", doc, m, paths))
        message = (
            f"namespace {show(namespace)} of {what} is declared by no Namespace object: "
            f"netcc declares it (labels: {NAMESPACE_NAME_LABEL} only)"
        )
        self.note(m, "metadata.namespace", message)


def _helm_hook(m: Manifest) -> str:
    """The `helm.sh/hook` annotation of an object ("" when it has none)."""
    metadata = m.obj.get("metadata")
    notes = metadata.get("annotations") if isinstance(metadata, dict) else None
    value = notes.get("helm.sh/hook") if isinstance(notes, dict) else None
    return value if isinstance(value, str) else ""


def translate(
    manifests: Sequence[Manifest],
    default_namespace: str | None = None,
    known_namespaces: Iterable[str] = (),
) -> Translation:
    """The spec entries of `manifests`, in their order, with errors and notes;
    `known_namespaces` (the spec's own) are not declared again."""
    translator = _Translator(manifests, default_namespace, known_namespaces)
    for manifest in manifests:
        translator.one(manifest)
    return translator.out
