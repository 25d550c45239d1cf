"""The spec's NetworkPolicies as the cluster's own objects, so that what Kubernetes shows is
what the datapath enforces.

Each policy is the spec's object as written (after YAML parsing: anchors expanded, keys
sorted), in its own namespace, with one label added: `app.kubernetes.io/managed-by: netcc`.
Kubernetes applies the same defaults to it (policyTypes, protocol) as netcc did.
"""

from __future__ import annotations

from typing import Any

from netcc.emit.k8s.constants import MANAGED_BY


def policy_objects(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`policies/NAMESPACE/NAME.yaml` -> NetworkPolicy, for every policy of the spec."""
    out = {}
    for raw in document["spec"].get("policies", []):
        metadata = raw["metadata"]
        labels = {**metadata.get("labels", {}), **MANAGED_BY}
        policy = {**raw, "metadata": {**metadata, "labels": labels}}  # the dumper copies the rest
        out[f"policies/{metadata['namespace']}/{metadata['name']}.yaml"] = policy
    return dict(sorted(out.items()))
