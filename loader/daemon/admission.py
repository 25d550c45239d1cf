"""Whether the daemon may serve a CNI ADD, before it makes anything: netcc first in the
chain, a Kubernetes pod named, its labels read (the Kubernetes API's errors mapped to CNI
errors), a workload class found (closed world).

Every refusal here is a `CniError` with the code a runtime acts on: 7 (a config to fix), 11
(try again later), 3, 5, or netcc's own 100 (no class) and 101 (a full block).
"""

from __future__ import annotations

from collections.abc import Mapping

from netcc.contract.classes import ClassInfo, Refusal
from netcc.loader.cni.errors import (
    INVALID_CONFIG,
    INVALID_ENVIRONMENT,
    IO_FAILURE,
    TRY_AGAIN_LATER,
    UNKNOWN_CONTAINER,
    CniError,
)
from netcc.loader.cni.protocol import PodRef, Request
from netcc.loader.daemon.view import NodeView
from netcc.loader.kube import (
    BadResponse,
    ConfigError,
    Forbidden,
    KubeError,
    NotFound,
    Unauthorized,
    Unavailable,
)

POD_REFUSED = 100
"""Plugin-specific CNI error: the pod matches no workload class (closed world)."""
BLOCK_FULL = 101
"""Plugin-specific CNI error: the class's address block on this node is full."""


def kube_cni_error(ref: PodRef, e: KubeError) -> CniError:
    """The CNI error for a failed read of the pod's labels: 11 (try again later) for what
    passes (unreachable, timeouts, 429, 5xx), 3 for a pod the API does not know, 5 for what
    an operator must fix (a token the API refuses, a missing RBAC rule, no API configured,
    answers this client cannot use). The message says which, and the API's own words."""
    where = f"pod {ref}: reading its labels from the Kubernetes API failed"
    if isinstance(e, Unavailable):
        return CniError(TRY_AGAIN_LATER, f"{where}: {e}; try again later")
    if isinstance(e, NotFound):
        return CniError(UNKNOWN_CONTAINER, f"pod {ref}: the Kubernetes API does not know it: {e}")
    if isinstance(e, Unauthorized):
        fix = "the node's service account token is not accepted (expired, revoked, another cluster)"
        return CniError(IO_FAILURE, f"{where}: {e}; {fix}")
    if isinstance(e, Forbidden):
        return CniError(IO_FAILURE, f"{where}: {e}")
    if isinstance(e, ConfigError):
        return CniError(IO_FAILURE, f"{where}: no API configuration: {e}")
    if isinstance(e, BadResponse):
        return CniError(IO_FAILURE, f"{where}: a bad answer: {e}")
    return CniError(IO_FAILURE, f"{where}: {e}")


def first_in_chain(req: Request) -> None:
    """netcc makes the pod's interface, so it runs first: a `prevResult` that already has
    interfaces means another plugin made one (CNI error 7, a config to fix)."""
    prev = req.config.prev_result
    if prev and prev.get("interfaces"):
        names = ", ".join(str(i.get("name", "?")) for i in prev["interfaces"] if i)
        raise CniError(
            INVALID_CONFIG,
            f"netcc must be the first plugin of the network config list {req.config.name!r}: "
            f"an earlier plugin already made interfaces ({names}); put netcc first and chain "
            "portmap, bandwidth, tuning, ... after it",
        )


def pod_of(req: Request) -> PodRef:
    pod = req.pod
    if pod is None:
        raise CniError(
            INVALID_ENVIRONMENT,
            "CNI_ARGS names no pod (K8S_POD_NAMESPACE, K8S_POD_NAME): netcc networks "
            "Kubernetes pods only",
            "CNI_ARGS",
        )
    return pod


def classify(view: NodeView, pod: PodRef, labels: Mapping[str, str]) -> ClassInfo:
    """The pod's workload class; CNI error 100 naming the labels that decided otherwise."""
    if view.classes is None:
        found: ClassInfo | Refusal = Refusal(
            f"pod {pod}: the artifacts declare no workload class, so no pod is networked "
            "(closed world)"
        )
    else:
        found = view.classes.classify(pod.namespace, labels, str(pod))
    if isinstance(found, Refusal):
        raise CniError(POD_REFUSED, f"{found.reason} (artifacts {view.digest[:12]})")
    return found
