"""What can go wrong talking to the Kubernetes API, each with a message fit for a CNI error.

Every error names the request (`get pods shop/cart-1`) and the API server. Forbidden says
which RBAC rule the node's service account lacks; Gone (410) asks a watcher to list again;
Unavailable (connection errors, timeouts, 429, 5xx) is the transient kind and carries the
server's Retry-After when it sent one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Action:
    """One API request in RBAC terms: `get pods` in namespace `shop`, object `cart-1`."""

    verb: str
    resource: str
    namespace: str = ""
    name: str = ""

    @property
    def rbac(self) -> str:
        return f"{self.verb} {self.resource}"

    def __str__(self) -> str:
        obj = "/".join(p for p in (self.namespace, self.name) if p)
        return f"{self.rbac} {obj}" if obj else f"{self.rbac} (all namespaces)"


class KubeError(Exception):
    """A failed Kubernetes API request."""


class ConfigError(KubeError):
    """No usable API configuration (not in a cluster, a missing token or CA file)."""


class NotFound(KubeError):
    """404: the object does not exist."""


class Unauthorized(KubeError):
    """401: the API server did not accept the token (expired, revoked, wrong cluster)."""


class Forbidden(KubeError):
    """403: the service account lacks an RBAC rule; the message names it."""


class Gone(KubeError):
    """410: the resource version (a watch's start, a list's continue token) has expired;
    list again from scratch."""


class Unavailable(KubeError):
    """The API server could not answer now: unreachable, timed out, 429 or 5xx."""

    def __init__(self, msg: str, retry_after: float | None = None) -> None:
        super().__init__(msg)
        self.retry_after = retry_after


class BadResponse(KubeError):
    """The API server answered something this client cannot use (too large, not JSON, an
    unexpected status, an object of the wrong shape)."""
