"""`netcc lint` on workload classes: what compiles but will hurt later.

- a class whose block takes a quarter or more of the smallest node podCIDR, and blocks that
  together take most of it (then a new class may not fit, or may move another's block, whose
  running pods must then be recreated);
- a class that no policy selects in a direction in which every other workload and class of
  its namespace is isolated (its pods are open where all their neighbours are not);
- classes of a namespace told apart only by label keys no selector reads: the same policy
  applies to both, so they differ only in their blocks and ports (a note, not a warning).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from netcc.diagnostics import join_key
from netcc.model.types import Cluster, Workload, WorkloadClass
from netcc.plan.blocks import RESERVED_LOW, layout, reserved_offsets
from netcc.resolve.classes import classes_by_namespace, keys_that_matter
from netcc.semantics.policy import policies_selecting

ONE_CLASS_SHARE = 4  # a class's block of 1/4 or more of the smallest podCIDR is worth a word
ALL_CLASSES_PERCENT = 75  # blocks over 75% of the smallest podCIDR leave little room

Report = Callable[[str, str, str], None]  # (path, message, severity)


def lint_classes(cluster: Cluster, report: Report) -> None:
    """Every class finding, given to `report`."""
    if not cluster.classes or not cluster.nodes:
        return
    _capacity(cluster, report)
    _unselected(cluster, report)
    _told_apart_by_unread_keys(cluster, report)


def _capacity(cluster: Cluster, report: Report) -> None:
    smallest = min(cluster.nodes, key=lambda n: (n.pod_cidr.num_addresses, n.name))
    span = smallest.pod_cidr.num_addresses
    where = (
        f"the {span} addresses of the smallest node podCIDR "
        f"({smallest.pod_cidr} of node {smallest.name})"
    )
    blocks = layout(cluster)
    for cls in cluster.classes:
        size = blocks[cls.key].size
        if size * ONE_CLASS_SHARE >= span:
            rounded = "" if size == cls.per_node else f" (perNode {cls.per_node} rounded up)"
            report(
                f"{cls.path}.perNode" if cls.path else "",
                f"class {cls.key} reserves {size} addresses{rounded} in every node's podCIDR: "
                f"{100 * size // span}% of {where}; every node keeps them for it whether its "
                "pods run there or not",
                "warning",
            )
    used = sum(b.size for b in blocks.values())
    taken = len(reserved_offsets(cluster, span))
    if 100 * used > ALL_CLASSES_PERCENT * span:
        report(
            join_key(smallest.path, "podCIDR") if smallest.path else "",
            f"the blocks of {len(cluster.classes)} class(es) take {used} ({100 * used // span}%) "
            f"of {where}, {taken} more are reserved ({RESERVED_LOW} per node and static "
            f"addresses), {span - used - taken} are left: a new or larger class may not fit, "
            "or move another class's block (whose running pods must then be recreated)",
            "warning",
        )


def _isolated(cluster: Cluster, pod: Workload, direction: str) -> bool:
    return bool(policies_selecting(cluster, pod, direction))


def _unselected(cluster: Cluster, report: Report) -> None:
    members: dict[str, list[tuple[str, Workload]]] = {}
    for w in cluster.workloads:
        members.setdefault(w.namespace, []).append((w.key, w))
    for c in cluster.classes:
        members.setdefault(c.namespace, []).append((c.key, c.pod()))
    for cls in cluster.classes:
        pod = cls.pod()
        for direction in ("ingress", "egress"):
            if _isolated(cluster, pod, direction):
                continue
            others = [key for key, _ in members[cls.namespace] if key != cls.key]
            if not others or not all(
                _isolated(cluster, w, direction)
                for key, w in members[cls.namespace]
                if key != cls.key
            ):
                continue
            report(
                cls.path,
                f"class {cls.key} is open for {direction}: no policy selects its pods, while "
                f"every other workload or class of namespace {cls.namespace!r} is isolated "
                f"({', '.join(sorted(others))})",
                "warning",
            )


def _read_keys(cluster: Cluster) -> dict[str, set[str]]:
    """Per namespace, the keys selectors read: the keys that matter, less the keys only
    classes declare (recomputed from a cluster without classes)."""
    without = replace(cluster, classes=(), _index={})
    return {ns: set(keys) for ns, keys in keys_that_matter(without).items()}


def _told_apart_by_unread_keys(cluster: Cluster, report: Report) -> None:
    read = _read_keys(cluster)
    for ns, classes in classes_by_namespace(cluster).items():
        keys = read.get(ns, set())
        seen: dict[tuple, WorkloadClass] = {}
        for cls in classes:
            labels = dict(cls.labels)
            signature = tuple(sorted((k, labels.get(k)) for k in keys))
            first = seen.setdefault(signature, cls)
            if first is cls:
                continue
            apart = sorted(k for k in set(labels) | {k for k, _ in first.labels} if k not in keys)
            report(
                cls.path,
                f"classes {first.key} and {cls.key} are told apart only by label keys no "
                f"selector reads ({', '.join(apart)}): the same policy applies to both",
                "note",
            )
