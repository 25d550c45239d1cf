"""A minimal Kubernetes API client on the standard library (no `kubernetes` package).

`KubeClient.in_cluster()` (the DaemonSet's service account) or `KubeClient(base_url, ...)`
(`https://` with a CA file, `http://` on loopback for tests, `unix:///path` for the lab);
`get_pod(namespace, name)`. Errors are `KubeError`s whose messages fit in a CNI error.
"""

from netcc.loader.kube.client import KubeClient, Pod
from netcc.loader.kube.errors import (
    Action,
    BadResponse,
    ConfigError,
    Forbidden,
    KubeError,
    NotFound,
    Unauthorized,
    Unavailable,
)

__all__ = [
    "Action",
    "BadResponse",
    "ConfigError",
    "Forbidden",
    "KubeClient",
    "KubeError",
    "NotFound",
    "Pod",
    "Unauthorized",
    "Unavailable",
]
