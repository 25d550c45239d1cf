"""The spec's NetworkPolicies as the cluster's own objects, so that what Kubernetes shows is
what the datapath enforces.

Each policy is the spec's object as written (after YAML parsing: anchors expanded, keys
sorted), with one label added: `app.kubernetes.io/managed-by: netcc`, and two defaults made
explicit, so that every Kubernetes version reads it as netcc did:
- `metadata.namespace`: a policy that names none gets the spec's default namespace
  (`spec.defaultNamespace`, else `default`), where `kubectl apply -n` would have put it;
- `spec.podSelector`: an absent one (optional since Kubernetes 1.37's API, required by the
  OpenAPI schema of earlier versions) is written as `{}`, the empty selector it means.
Kubernetes applies the other defaults to it (policyTypes, protocol) as netcc did.
"""

from __future__ import annotations

from typing import Any

from netcc.emit.k8s.constants import MANAGED_BY
from netcc.model.types import DEFAULT_NAMESPACE


def policies_document(document: dict[str, Any]) -> dict[str, Any]:
    """What `policy_objects` reads of the spec's document: its policies and its default
    namespace (the rest of the document is not needed to write the manifests)."""
    keep = ("policies", "defaultNamespace")
    return {"spec": {k: v for k, v in document["spec"].items() if k in keep}}


def policy_objects(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`policies/NAMESPACE/NAME.yaml` -> NetworkPolicy, for every policy of the spec."""
    default_namespace = document["spec"].get("defaultNamespace", DEFAULT_NAMESPACE)
    out = {}
    for raw in document["spec"].get("policies", []):
        metadata = raw["metadata"]
        namespace = metadata.get("namespace", default_namespace)
        labels = {**metadata.get("labels", {}), **MANAGED_BY}
        spec = raw.get("spec", {})
        policy = {  # the dumper copies the rest
            **raw,
            "metadata": {**metadata, "namespace": namespace, "labels": labels},
            "spec": spec if "podSelector" in spec else {"podSelector": {}, **spec},
        }
        out[f"policies/{namespace}/{metadata['name']}.yaml"] = policy
    return dict(sorted(out.items()))


def policy_comments(cluster: str, namespace: str, defaulted: bool) -> list[str]:
    """The comment on top of a policy's manifest; `defaulted`: it named no namespace."""
    comments = [f"A NetworkPolicy of ClusterNetwork {cluster}, as written."]
    if defaulted:
        comments += [
            f"It names no namespace: metadata.namespace {namespace} is the spec's default",
            f"namespace, where `kubectl apply -n {namespace}` would put it.",
        ]
    return comments
