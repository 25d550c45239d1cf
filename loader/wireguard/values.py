"""Checks of every value before it reaches a WireGuard device.

A UAPI `set` is applied line by line and is not atomic: a bad value half-way (an endpoint that
does not parse, say) leaves the peers before it added. So every key, endpoint, CIDR, port and
interface name is checked here first, and a change with one bad value is never sent at all.
"""

from __future__ import annotations

import base64
import binascii
import re
from ipaddress import IPv4Address, ip_network

from netcc.loader.wireguard.backend import BackendError, DeviceChange, PeerConfig, TunnelPlan

_IFNAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")
MAX_PORT = 65535
MAX_KEEPALIVE = 65535


def check_ifname(ifname: str) -> str:
    if not isinstance(ifname, str) or not _IFNAME.fullmatch(ifname) or ifname in (".", ".."):
        raise BackendError(f"{ifname!r}: not an interface name (1-15 of A-Z a-z 0-9 _ . -)")
    return ifname


def check_key(key: str, what: str = "key") -> bytes:
    """The 32 bytes of a base64 key."""
    try:
        raw = base64.b64decode(key, validate=True) if isinstance(key, str) else b""
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32 or not isinstance(key, str) or len(key) != 44:
        raise BackendError(f"{what}: not a WireGuard key (base64 of 32 bytes)")
    return raw


def check_port(port: int, what: str = "port") -> int:
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port <= MAX_PORT:
        raise BackendError(f"{what} {port!r}: not a port (1-{MAX_PORT})")
    return port


def check_endpoint(endpoint: str) -> tuple[str, int]:
    """`A.B.C.D:PORT` (IPv4 underlay) as (address, port)."""
    host, sep, port = endpoint.rpartition(":") if isinstance(endpoint, str) else ("", "", "")
    try:
        address = str(IPv4Address(host))
        number = int(port) if port.isdigit() else -1
    except ValueError:
        address, number = "", -1
    if not sep or not address or not 0 < number <= MAX_PORT:
        raise BackendError(f"endpoint {endpoint!r}: expected IPv4ADDRESS:PORT")
    return address, number


def check_cidr(cidr: str) -> str:
    try:
        return str(ip_network(cidr, strict=True))
    except (TypeError, ValueError):
        raise BackendError(f"allowed IP {cidr!r}: not a CIDR (host bits must be zero)") from None


def check_peer(peer: PeerConfig) -> None:
    check_key(peer.public_key, "peer public key")
    check_endpoint(peer.endpoint)
    for cidr in peer.allowed_ips:
        check_cidr(cidr)
    keepalive = peer.persistent_keepalive
    if not isinstance(keepalive, int) or not 0 <= keepalive <= MAX_KEEPALIVE:
        raise BackendError(f"persistent keepalive {keepalive!r}: expected 0-{MAX_KEEPALIVE} s")


def check_change(change: DeviceChange) -> None:
    """Every value of a change; raises BackendError naming the first bad one."""
    if change.private_key is not None:
        check_key(change.private_key, "private key")
    if change.listen_port is not None:
        check_port(change.listen_port, "listen port")
    seen: set[str] = set()
    for peer in change.upsert:
        check_peer(peer)
        if peer.public_key in seen:
            raise BackendError(f"peer {peer.public_key} appears twice")
        seen.add(peer.public_key)
    for key in change.remove:
        check_key(key, "removed peer")
        if key in seen:
            raise BackendError(f"peer {key} both updated and removed")


def check_plan(plan: TunnelPlan) -> None:
    """A tunnel plan as read from OUT, before anything is done with it."""
    check_ifname(plan.ifname)
    check_port(plan.listen_port, "listenPort")
    if not isinstance(plan.mtu, int) or not 576 <= plan.mtu <= 65535:
        raise BackendError(f"mtu {plan.mtu!r}: expected 576-65535")
    if not isinstance(plan.private_key_file, str) or not plan.private_key_file.startswith("/"):
        raise BackendError(f"privateKeyFile {plan.private_key_file!r}: not an absolute path")
    if plan.public_key:
        check_key(plan.public_key, "publicKey")
    try:
        IPv4Address(plan.address)
    except ValueError:
        raise BackendError(f"address {plan.address!r}: not an IPv4 address") from None
    keys = [p.public_key for p in plan.peers]
    if len(set(keys)) != len(keys) or plan.public_key in keys:
        raise BackendError("two peers (or a peer and this node) share a public key")
    for peer in plan.peers:
        check_peer(peer)
    for route in plan.routes:
        check_cidr(route.dst)
