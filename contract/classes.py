"""`classes.json`: the workload classes of OUT, and how a runtime pod is classified.

The compiler writes it; the node daemon reads it to decide, from a pod's namespace and labels
alone, which class the pod belongs to (and so its address block, identity and endpoint
values), with no spec and no message to other nodes.

A class is decided by the *keys that matter* in its namespace: every label key a selector of
the spec reads that can apply to the namespace's pods, and every key a class of the namespace
declares. A pod belongs to the class whose declared labels agree with the pod's on every key
that matters (a key absent from both agrees); its other labels (`pod-template-hash`, ...) are
ignored. The compiler refuses two classes of a namespace that agree on every key that matters,
so at most one class fits. Closed world: no fitting class, or an undeclared namespace, and the
pod gets no network.

    {"classesVersion": 1,
     "namespaces": {"shop": {"keys": ["app", "tier"]}},
     "classes": [{"class": 1, "key": "shop/web", "namespace": "shop", "name": "web",
                  "match": {"app": "web", "tier": null}, "labels": {...},
                  "identity": 123, "peer": 4, "profile": 2,
                  "endpoint": {...endpoint_info values but ip, ifindex and router...},
                  "block": {"offset": 32, "size": 8}, "perNode": 8, "ports": [...]}]}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from typing import Any

from netcc.contract.text import escape

CLASSES_FILE = "classes.json"
CLASSES_VERSION = 1
ABSENT = None  # a key that matters and that the class (or pod) does not have


def block_cidr(pod_cidr: IPv4Network, offset: int, size: int) -> IPv4Network:
    """A class's block on one node: the CIDR of `size` addresses (a power of two) at `offset`
    (a multiple of it) inside the node's podCIDR, the same offset on every node. ValueError
    when the block is not one, or does not fit."""
    if size <= 0 or size & (size - 1) or offset % size or offset + size > pod_cidr.num_addresses:
        raise ValueError(f"block {offset}/{size} does not fit podCIDR {pod_cidr}")
    return IPv4Network((int(pod_cidr.network_address) + offset, 33 - size.bit_length()))


class ClassesFormatError(ValueError):
    """`classes.json` is not in the format this netcc reads."""


@dataclass(frozen=True)
class ClassInfo:
    """One class as the daemon uses it."""

    number: int
    key: str  # namespace/name
    namespace: str
    name: str
    match: tuple[tuple[str, str | None], ...]  # every key that matters, with its value or None
    identity: int
    peer: int
    profile: int
    endpoint: Mapping[str, int]  # endpoint_info values except ip, ifindex and router
    offset: int  # of the block inside a node's podCIDR
    size: int  # addresses in the block (a power of two)
    doc: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Refusal:
    """Why a pod gets no network: a message naming the pod and the label values that decided."""

    reason: str


@dataclass(frozen=True)
class Classes:
    """Every class of OUT, indexed for classification."""

    namespaces: Mapping[str, tuple[str, ...]]  # namespace -> keys that matter, sorted
    by_match: Mapping[tuple[str, tuple[str | None, ...]], ClassInfo]
    classes: tuple[ClassInfo, ...]

    def classify(
        self, namespace: str, labels: Mapping[str, str], pod: str = ""
    ) -> ClassInfo | Refusal:
        """The class of a pod of `namespace` with `labels`, or why it has none."""
        who = f"pod {escape(pod or namespace + '/?')}"
        keys = self.namespaces.get(namespace)
        if keys is None:
            return Refusal(
                f"{who}: namespace {escape(namespace)} is not declared in the spec, so none of "
                "its pods is networked (closed world)"
            )
        values = tuple(labels.get(k) for k in keys)
        found = self.by_match.get((namespace, values))
        if found is not None:
            return found
        return Refusal(f"{who} matches no workload class: {self._explain(namespace, keys, values)}")

    def _explain(
        self, namespace: str, keys: tuple[str, ...], values: tuple[str | None, ...]
    ) -> str:
        decided = ", ".join(_pair(k, v) for k, v in zip(keys, values, strict=True))
        candidates = [c for c in self.classes if c.namespace == namespace]
        if not keys:
            return "its namespace declares no class"
        listed = "; ".join(
            f"{escape(c.name)} ({', '.join(_pair(k, v) for k, v in c.match)})" for c in candidates
        )
        return (
            f"its labels that matter are {decided}; the classes of {escape(namespace)} are "
            f"{listed or 'none'} (other labels are ignored)"
        )

    def by_key(self, key: str) -> ClassInfo | None:
        """The class `namespace/name`, if OUT has it."""
        for c in self.classes:
            if c.key == key:
                return c
        return None


def _pair(key: str, value: str | None) -> str:
    return f"{escape(key)}={escape(value)}" if value is not None else f"{escape(key)} absent"


def dump(namespaces: Mapping[str, list[str]], classes: list[dict[str, Any]]) -> bytes:
    """The `classes.json` document (sorted, one class per line group)."""
    doc = {
        "classesVersion": CLASSES_VERSION,
        "namespaces": {ns: {"keys": sorted(keys)} for ns, keys in sorted(namespaces.items())},
        "classes": sorted(classes, key=lambda c: c["class"]),
    }
    return (json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=True) + "\n").encode()


def load(data: bytes) -> Classes:
    """Parse `classes.json`; raises ClassesFormatError."""
    try:
        doc = json.loads(data)
        if doc.get("classesVersion") != CLASSES_VERSION:
            raise ClassesFormatError(
                f"classes version {doc.get('classesVersion')!r}, this netcc reads {CLASSES_VERSION}"
            )
        namespaces = {ns: tuple(sorted(v["keys"])) for ns, v in doc["namespaces"].items()}
        classes = tuple(_class(c, namespaces) for c in doc["classes"])
    except ClassesFormatError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ClassesFormatError(f"not a classes document: {e}") from None
    by_match: dict[tuple[str, tuple[str | None, ...]], ClassInfo] = {}
    for c in classes:
        values = tuple(v for _, v in c.match)
        if (c.namespace, values) in by_match:
            other = by_match[(c.namespace, values)].key
            raise ClassesFormatError(f"classes {c.key} and {other} cannot be told apart")
        by_match[(c.namespace, values)] = c
    return Classes(namespaces, by_match, classes)


def _class(doc: Mapping[str, Any], namespaces: Mapping[str, tuple[str, ...]]) -> ClassInfo:
    namespace = doc["namespace"]
    keys = namespaces[namespace]
    match = doc["match"]
    if sorted(match) != list(keys):
        raise ClassesFormatError(f"class {doc['key']}: match keys differ from its namespace's")
    size, offset = int(doc["block"]["size"]), int(doc["block"]["offset"])
    if size <= 0 or size & (size - 1) or offset % size:
        raise ClassesFormatError(f"class {doc['key']}: block {offset}/{size} is not aligned")
    return ClassInfo(
        number=int(doc["class"]),
        key=doc["key"],
        namespace=namespace,
        name=doc["name"],
        match=tuple((k, match[k]) for k in keys),
        identity=int(doc["identity"]),
        peer=int(doc["peer"]),
        profile=int(doc["profile"]),
        endpoint={k: int(v) for k, v in doc["endpoint"].items()},
        offset=offset,
        size=size,
        doc=doc,
    )
