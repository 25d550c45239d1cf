"""The review's account of workload classes: where their pods' addresses are, which label keys
decide a pod's class, and what a pod that fits no class gets (nothing: the world is closed)."""

from __future__ import annotations

from typing import Any

from netcc.model.types import Cluster
from netcc.plan.blocks import layout
from netcc.resolve.classes import keys_that_matter, match_of
from netcc.semantics.policy import policies_selecting

CLOSED_WORLD = (
    "A pod of a namespace the spec does not declare, or whose labels fit no class of its "
    "namespace, gets no network: its CNI ADD fails naming the pod and the label values "
    "that decided (closed world)."
)


def classes_report(cluster: Cluster) -> dict[str, Any] | None:
    """The classes section of the review; None for a spec without classes."""
    if not cluster.classes:
        return None
    blocks = layout(cluster)
    keys = keys_that_matter(cluster)
    example = min(cluster.nodes, key=lambda n: n.name)
    out = []
    for cls in cluster.classes:
        block = blocks[cls.key]
        selected = {
            d: [p.key for p in policies_selecting(cluster, cls, d)]  # type: ignore[arg-type]
            for d in ("ingress", "egress")
        }
        out.append(
            {
                "class": cls.key,
                "labels": dict(cls.labels),
                "match": match_of(cls, keys[cls.namespace]),
                "perNode": cls.per_node,
                "block": {
                    "offset": block.offset,
                    "size": block.size,
                    "example": {"node": example.name, "cidr": str(block.on(example.pod_cidr))},
                },
                "isolated_by": selected,
            }
        )
    return {
        "classes": out,
        "keys": {ns: ks for ns, ks in sorted(keys.items())},
        "undeclared": CLOSED_WORLD,
    }
