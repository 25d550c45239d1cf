"""Checks of every value before it reaches a WireGuard device.

A UAPI `set` is applied line by line and is not atomic: a bad value half-way (an endpoint that
does not parse, say) leaves the peers before it added. So every key, endpoint, CIDR, port and
interface name is checked first, and a change with one bad value is never sent at all. The
checks are the contract's (`netcc.contract.tunnel`, which checks a tunnel document with them);
here they raise the backends' BackendError.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from netcc.contract import tunnel
from netcc.contract.tunnel import TunnelFormatError
from netcc.loader.wireguard.backend import BackendError, DeviceChange

T = TypeVar("T")


def _as_backend_error(check: Callable[..., T]) -> Callable[..., T]:
    """`check`, raising BackendError where the contract's check raises TunnelFormatError."""

    @functools.wraps(check)
    def checked(*args: object) -> T:
        try:
            return check(*args)
        except TunnelFormatError as e:
            raise BackendError(str(e)) from None

    return checked


check_ifname = _as_backend_error(tunnel.check_ifname)
check_endpoint = _as_backend_error(tunnel.check_endpoint)
check_plan = _as_backend_error(tunnel.check_plan)


@_as_backend_error
def check_change(change: DeviceChange) -> None:
    """Every value of a change; raises BackendError naming the first bad one."""
    if change.private_key is not None:
        tunnel.check_key(change.private_key, "private key")
    if change.listen_port is not None:
        tunnel.check_port(change.listen_port, "listen port")
    seen: set[str] = set()
    for peer in change.upsert:
        tunnel.check_peer(peer)
        if peer.public_key in seen:
            raise BackendError(f"peer {peer.public_key} appears twice")
        seen.add(peer.public_key)
    for key in change.remove:
        tunnel.check_key(key, "removed peer")
        if key in seen:
            raise BackendError(f"peer {key} both updated and removed")
