"""The loader's Namespace and ServiceAccount (and why there is no RBAC)."""

from __future__ import annotations

from typing import Any

from netcc.emit.k8s.constants import LOADER, NAMESPACE, labels

# The loader pod needs hostNetwork, hostPath volumes and capabilities beyond `baseline`:
# only the `privileged` Pod Security Standard admits it.
POD_SECURITY = {
    f"pod-security.kubernetes.io/{mode}": "privileged" for mode in ("enforce", "audit", "warn")
}

NAMESPACE_COMMENTS = (
    "Where the loader runs. Pod Security: `privileged`, the only level that admits the loader",
    "pod (hostNetwork, hostPath, CAP_BPF/NET_ADMIN/PERFMON, AppArmor unconfined); nothing else",
    "belongs in this namespace.",
)

SERVICE_ACCOUNT_COMMENTS = (
    "The loader's identity. It has no RBAC at all, on purpose: the loader reads only the",
    "artifacts mounted in its pod and never talks to the API server, so there is no Role or",
    "RoleBinding, and no token is mounted (automountServiceAccountToken: false).",
)


def namespace() -> dict[str, Any]:
    """Namespace `netcc-system`, labelled for the privileged Pod Security Standard."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": {**labels("namespace"), **POD_SECURITY}},
    }


def service_account() -> dict[str, Any]:
    """The loader's ServiceAccount: no token, no permissions."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": LOADER, "namespace": NAMESPACE, "labels": labels("loader")},
        "automountServiceAccountToken": False,
    }
