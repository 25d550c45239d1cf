"""What every WireGuard backend offers, and the values they exchange.

Two backends implement `Backend`: the kernel module through generic netlink (`netlink.py`,
pyroute2) and userspace implementations such as wireguard-go and boringtun through the
cross-platform UAPI socket (`uapi.py`). The reconciler (`apply.py`) reads a device's state,
computes the smallest change and hands it to `configure`; it never tears a device down to
change it. Keys travel as base64 text, as `wg(8)` prints them; private keys only ever live in
memory and in the file the spec names. What a device should hold comes from the tunnel plan,
`netcc.contract.tunnel` (`TunnelPlan`, `PeerConfig`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from netcc.contract.tunnel import PeerConfig


class BackendError(Exception):
    """The backend cannot do what was asked (no such device, kernel refused, socket gone...)."""


@dataclass(frozen=True)
class PeerState(PeerConfig):
    """One peer as the device reports it (a `PeerConfig` of the contract, with statistics)."""

    last_handshake_ns: int = 0  # wall-clock nanoseconds since the epoch, 0 = never
    rx_bytes: int = 0
    tx_bytes: int = 0


@dataclass(frozen=True)
class DeviceState:
    """A device as the backend reports it. `private_key` is never returned, only its public key."""

    public_key: str | None
    listen_port: int
    fwmark: int = 0
    peers: tuple[PeerState, ...] = ()


@dataclass(frozen=True)
class DeviceChange:
    """The smallest set of changes that turns a device's state into the plan's.

    `private_key` None leaves the key as is. `upsert` peers are added or updated in place with
    their allowed IPs replaced; `remove` names peers (public keys) to delete. An empty change is
    never sent."""

    private_key: str | None = None
    listen_port: int | None = None
    upsert: tuple[PeerConfig, ...] = ()
    remove: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return (
            self.private_key is None
            and self.listen_port is None
            and not self.upsert
            and not self.remove
        )


class Backend(Protocol):
    """A WireGuard implementation on one node (the calling thread's network namespace)."""

    name: str  # "kernel" | "userspace"

    def available(self) -> str | None:
        """None when this backend can work here, else why not (one line)."""
        ...

    def exists(self, ifname: str) -> bool:
        """Whether a WireGuard device called `ifname` exists and answers."""
        ...

    def create(self, ifname: str) -> None:
        """Create the device (kernel: a `wireguard` link; userspace: start the daemon)."""
        ...

    def read(self, ifname: str) -> DeviceState:
        """The device's configuration and peer statistics."""
        ...

    def configure(self, ifname: str, change: DeviceChange) -> None:
        """Apply `change` in one request. Callers validate every value first: a UAPI `set` that
        fails half-way leaves what it already did."""
        ...

    def delete(self, ifname: str) -> None:
        """Remove the device and everything it holds."""
        ...
