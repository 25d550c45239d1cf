"""Deterministic security identities from label sets.

An identity is a number derived from a hash of the pod's full label set (its own labels, its
namespace and the namespace's labels, as Cilium composes them). Numbers depend only on the label
set, so adding a workload never renumbers another, in any spec and on any machine. A 32-bit hash
collision (about one in 430,000 at 10,000 identities) is resolved by probing in sorted order and
reported, since only then could a later addition move an existing number.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from netcc.contract.constants import IDENTITY_MIN_LABELS
from netcc.model.types import Cluster, Labels, Workload, WorkloadClass

IDENTITY_SPACE = 2**32 - IDENTITY_MIN_LABELS
NAMESPACE_LABEL = "io.kubernetes.pod.namespace"
NAMESPACE_LABELS_PREFIX = "io.cilium.k8s.namespace.labels."


@dataclass(frozen=True)
class Identity:
    number: int
    labels: Labels  # the full label set the number stands for

    def describe(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.labels)


def identity_labels(cluster: Cluster, w: Workload | WorkloadClass) -> Labels:
    """The label set an identity is made of."""
    ns = cluster.namespace(w.namespace)
    full = dict(w.labels)
    full[NAMESPACE_LABEL] = w.namespace
    for k, v in ns.labels:
        full[NAMESPACE_LABELS_PREFIX + k] = v
    return tuple(sorted(full.items()))


def _hash(labels: Labels, probe: int) -> int:
    blob = json.dumps([labels, probe], separators=(",", ":")).encode()
    digest = int.from_bytes(hashlib.sha256(blob).digest()[:8], "big")
    return IDENTITY_MIN_LABELS + digest % IDENTITY_SPACE


def allocate(label_sets: set[Labels]) -> tuple[dict[Labels, Identity], list[str]]:
    """Numbers for every label set, and a note for each hash collision resolved."""
    taken: dict[int, Labels] = {}
    out: dict[Labels, Identity] = {}
    notes: list[str] = []
    for labels in sorted(label_sets):
        probe = 0
        number = _hash(labels, probe)
        while number in taken:
            probe += 1
            number = _hash(labels, probe)
        if probe:
            notes.append(f"identity hash collision resolved for labels {labels!r}")
        taken[number] = labels
        out[labels] = Identity(number, labels)
    return out, notes


def workload_identities(cluster: Cluster) -> tuple[dict[str, Identity], list[str]]:
    """Identity of every workload and workload class, by `namespace/name` (a class's pods have
    its labels, so its identity, on every node)."""
    sets = {w.key: identity_labels(cluster, w) for w in (*cluster.workloads, *cluster.classes)}
    table, notes = allocate(set(sets.values()))
    return {key: table[labels] for key, labels in sets.items()}, notes
