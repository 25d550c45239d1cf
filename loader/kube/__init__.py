"""A minimal Kubernetes API client on the standard library (no `kubernetes` package).

`KubeClient.in_cluster()` (the DaemonSet's service account) or `KubeClient(base_url, ...)`
(`https://` with a CA file, `http://` on loopback for tests, `unix:///path` for the lab);
`get_pod(namespace, name)`. Errors are `KubeError`s whose messages fit in a CNI error.
`SliceWatcher` lists and watches EndpointSlices into a `SliceCache` (endpointslices.py).
"""

from netcc.loader.kube.client import KubeClient, Pod
from netcc.loader.kube.endpointslices import (
    EndpointSlice,
    SliceCache,
    SliceEndpoint,
    SlicePort,
    SliceWatcher,
    WatchStats,
)
from netcc.loader.kube.errors import (
    Action,
    BadResponse,
    ConfigError,
    Forbidden,
    Gone,
    KubeError,
    NotFound,
    Unauthorized,
    Unavailable,
)

__all__ = [
    "Action",
    "BadResponse",
    "ConfigError",
    "EndpointSlice",
    "Forbidden",
    "Gone",
    "KubeClient",
    "KubeError",
    "NotFound",
    "Pod",
    "SliceCache",
    "SliceEndpoint",
    "SlicePort",
    "SliceWatcher",
    "Unauthorized",
    "Unavailable",
    "WatchStats",
]
