"""CNI errors with the spec's well-known codes (CNI spec 1.1.0, "Error codes")."""

from __future__ import annotations

INCOMPATIBLE_VERSION = 1
"""The configuration's CNI version is not one the plugin supports."""
UNSUPPORTED_FIELD = 2
"""A field of the network configuration is not supported; `details` names it."""
UNKNOWN_CONTAINER = 3
"""The container is unknown or gone: the runtime need not clean up after it."""
INVALID_ENVIRONMENT = 4
"""A CNI_* variable is missing or malformed; `details` names it."""
IO_FAILURE = 5
"""Reading or writing state (files, netlink, maps) failed."""
DECODE_FAILURE = 6
"""The network configuration or the request could not be decoded."""
INVALID_CONFIG = 7
"""The network configuration is not valid."""
TRY_AGAIN_LATER = 11
"""A transient condition: the runtime should retry (the datapath is not applied yet, ...)."""
PLUGIN_NOT_AVAILABLE = 50
"""STATUS: the plugin cannot serve ADD now."""
LIMITED_CONNECTIVITY = 51
"""STATUS: the plugin cannot serve ADD, and existing containers may have limited connectivity."""


class CniError(Exception):
    """A failure reported to the container runtime as the CNI error object."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_json(self, cni_version: str) -> dict:
        """The CNI error object, as the runtime reads it on stdout."""
        out: dict = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out

    def __repr__(self) -> str:
        return f"CniError({self.code}, {self.msg!r}, {self.details!r})"
