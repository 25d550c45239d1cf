"""`netcc diff` on workload classes: what changes for pods already running, beyond flows.

Flows of class pods are compared with the others' (a class is one party, `NS/CLASS (class)`).
This module reports what the flows cannot show: classes added or removed; a class's block that
moved (its offset or size changed, or the podCIDR of a node it runs on), whose running pods
must be recreated, since an address outside its class's block is refused by the node daemon;
the label keys that decide a pod's class in a namespace; and a class's own labels for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netcc.model.types import Cluster, WorkloadClass
from netcc.plan.blocks import Block, layout
from netcc.resolve.classes import keys_that_matter, match_of


@dataclass(frozen=True)
class ClassChange:
    """One change of the classes: `kind` is added, removed, moved, node, keys or labels."""

    kind: str
    name: str  # the class (namespace/name), the namespace (keys) or the node (node)
    message: str
    detail: tuple[tuple[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "message": self.message, **dict(self.detail)}


def _block_text(cluster: Cluster, block: Block) -> str:
    """`offset 144, 8 addresses (10.244.1.144/29 on node-a)`: the block on the first node."""
    where = ""
    if cluster.nodes:
        node = min(cluster.nodes, key=lambda n: n.name)
        where = f" ({block.on(node.pod_cidr)} on {node.name})"
    return f"offset {block.offset}, {block.size} addresses{where}"


def _block_json(block: Block) -> dict[str, int]:
    return {"offset": block.offset, "size": block.size}


def _match_text(match: dict[str, str | None]) -> str:
    return ", ".join(f"{k}={v}" if v is not None else f"{k} absent" for k, v in match.items())


def class_changes(old: Cluster, new: Cluster) -> list[ClassChange]:
    """Every change of the classes between `old` and `new`: added, removed, moved, node,
    keys, labels, each by name."""
    if not (old.classes or new.classes):
        return []
    out: list[ClassChange] = []
    before: dict[str, WorkloadClass] = {c.key: c for c in old.classes}
    after: dict[str, WorkloadClass] = {c.key: c for c in new.classes}
    blocks_a, blocks_b = layout(old), layout(new)
    for key in sorted(after.keys() - before.keys()):
        b = blocks_b[key]
        out.append(
            ClassChange(
                "added",
                key,
                f"class {key} added: block at {_block_text(new, b)}",
                (("block", _block_json(b)),),
            )
        )
    for key in sorted(before.keys() - after.keys()):
        out.append(
            ClassChange(
                "removed",
                key,
                f"class {key} removed: its running pods lose their network",
            )
        )
    for key in sorted(before.keys() & after.keys()):
        a, b = blocks_a[key], blocks_b[key]
        if a != b:
            out.append(
                ClassChange(
                    "moved",
                    key,
                    f"block of {key} moved from {_block_text(old, a)} to {_block_text(new, b)}: "
                    "its running pods must be recreated",
                    (("from", _block_json(a)), ("to", _block_json(b))),
                )
            )
    out += _nodes(old, new, before.keys() & after.keys())
    out += _keys_and_labels(old, new, before, after)
    return out


def _nodes(old: Cluster, new: Cluster, kept: set[str]) -> list[ClassChange]:
    """Nodes whose podCIDR changed: the class pods running there are outside their blocks."""
    if not kept:
        return []
    cidrs = {n.name: n.pod_cidr for n in old.nodes}
    out = []
    for n in sorted(new.nodes, key=lambda n: n.name):
        was = cidrs.get(n.name)
        if was is not None and was != n.pod_cidr:
            out.append(
                ClassChange(
                    "node",
                    n.name,
                    f"podCIDR of node {n.name} changed from {was} to {n.pod_cidr}: the class "
                    "pods running there must be recreated",
                    (("from", str(was)), ("to", str(n.pod_cidr))),
                )
            )
    return out


def _keys_and_labels(
    old: Cluster,
    new: Cluster,
    before: dict[str, WorkloadClass],
    after: dict[str, WorkloadClass],
) -> list[ClassChange]:
    """Keys that decide a pod's class, per namespace with classes; each kept class's values."""
    keys_a, keys_b = keys_that_matter(old), keys_that_matter(new)
    namespaces = {c.namespace for c in (*before.values(), *after.values())}
    out = []
    for ns in sorted(namespaces):
        a, b = keys_a.get(ns, []), keys_b.get(ns, [])
        if a != b and ns in keys_a and ns in keys_b:
            gained = sorted(set(b) - set(a))
            lost = sorted(set(a) - set(b))
            parts = [f"+{k}" for k in gained] + [f"-{k}" for k in lost]
            out.append(
                ClassChange(
                    "keys",
                    ns,
                    f"label keys that decide a pod's class in namespace {ns} changed "
                    f"({', '.join(parts)}): now {', '.join(b) or 'none'}",
                    (("from", a), ("to", b)),
                )
            )
    for key in sorted(before.keys() & after.keys()):
        ns = after[key].namespace
        was = match_of(before[key], keys_a.get(ns, []))
        now = match_of(after[key], keys_b.get(ns, []))
        if was != now:
            out.append(
                ClassChange(
                    "labels",
                    key,
                    f"pods of class {key} are now those with {_match_text(now) or 'any labels'} "
                    f"(were {_match_text(was) or 'any labels'})",
                    (("from", was), ("to", now)),
                )
            )
    return out


def format_changes(changes: list[ClassChange]) -> list[str]:
    """`~ MESSAGE`, one line per change."""
    return [f"~ {c.message}" for c in changes]
