"""The kernel backend: the WireGuard module through generic netlink (pyroute2).

The device is a `wireguard` link (`ip link add IFNAME type wireguard`, through rtnetlink); its
configuration goes through the `wireguard` generic netlink family (include/uapi/linux/
wireguard.h): `WG_CMD_GET_DEVICE` dumps the device and its peers, possibly over several
messages (a peer's allowed IPs may continue in the next one), `WG_CMD_SET_DEVICE` changes it.
A `DeviceChange` becomes one SET message: private key, listen port and every peer, removed
(`WGPEER_F_REMOVE_ME`) or added/updated in place with its allowed IPs replaced
(`WGPEER_F_REPLACE_ALLOWEDIPS`); only a change too large for one message is split, whole peers
at a time. Every value is checked (`values.check_change`) before anything is sent.

The translation between the contract's values and netlink attributes (`set_messages`,
`device_state`) is pure and tested without a kernel; the rest opens a socket per call in the
calling thread's network namespace.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from ipaddress import ip_network
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink import NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.generic.wireguard import WireGuard, wgmsg

from netcc.loader.wireguard.backend import BackendError, DeviceChange, DeviceState, PeerState
from netcc.loader.wireguard.values import check_change, check_endpoint, check_ifname

GENL_VERSION = 1
CMD_GET_DEVICE, CMD_SET_DEVICE = 0, 1
PEER_F_REMOVE_ME, PEER_F_REPLACE_ALLOWEDIPS = 0x1, 0x2
LINK_KIND = "wireguard"
# Peers go in one SET message until it would exceed this; wg(8) splits at a similar size.
MAX_MESSAGE = 32 * 1024
_HEADERS = 16 + 4 + 4 + 20  # nlmsghdr, genlmsghdr, IFNAME, PRIVATE_KEY/LISTEN_PORT slack
_PEER_FIXED = 4 + 36 + 8 + 32 + 8 + 4  # nest, public key, flags, endpoint, keepalive, ips nest
_ALLOWED_IP = {4: 4 + 8 + 8 + 8, 6: 4 + 8 + 20 + 8}  # nest, family, address, mask


# --- pure translation ------------------------------------------------------------------------


def _allowed_ip_attrs(cidr: str) -> dict[str, Any]:
    net = ip_network(cidr, strict=True)
    family = socket.AF_INET if net.version == 4 else socket.AF_INET6
    return {
        "attrs": [
            ["WGALLOWEDIP_A_FAMILY", family],
            ["WGALLOWEDIP_A_IPADDR", net.network_address.packed],
            ["WGALLOWEDIP_A_CIDR_MASK", net.prefixlen],
        ]
    }


def peer_attrs(change: DeviceChange) -> list[dict[str, Any]]:
    """The WGDEVICE_A_PEERS entries of a change: removals first, then upserts."""
    peers: list[dict[str, Any]] = [
        {"attrs": [["WGPEER_A_PUBLIC_KEY", key], ["WGPEER_A_FLAGS", PEER_F_REMOVE_ME]]}
        for key in change.remove
    ]
    for peer in change.upsert:
        address, port = check_endpoint(peer.endpoint)
        peers.append(
            {
                "attrs": [
                    ["WGPEER_A_PUBLIC_KEY", peer.public_key],
                    ["WGPEER_A_FLAGS", PEER_F_REPLACE_ALLOWEDIPS],
                    ["WGPEER_A_ENDPOINT", {"addr": address, "port": port}],
                    ["WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL", peer.persistent_keepalive],
                    ["WGPEER_A_ALLOWEDIPS", [_allowed_ip_attrs(c) for c in peer.allowed_ips]],
                ]
            }
        )
    return peers


def _peer_size(peer: dict[str, Any]) -> int:
    """An upper bound of a peer entry's encoded size."""
    size = _PEER_FIXED
    for name, value in peer["attrs"]:
        if name == "WGPEER_A_ALLOWEDIPS":
            size += sum(_ALLOWED_IP[4 if len(ip["attrs"][1][1]) == 4 else 6] for ip in value)
    return size


def _chunks(peers: Sequence[dict[str, Any]], budget: int) -> Iterator[list[dict[str, Any]]]:
    """Whole peers, as many per message as fit in `budget` bytes (at least one each)."""
    chunk: list[dict[str, Any]] = []
    used = 0
    for peer in peers:
        size = _peer_size(peer)
        if chunk and used + size > budget:
            yield chunk
            chunk, used = [], 0
        chunk.append(peer)
        used += size
    if chunk:
        yield chunk


def set_messages(ifname: str, change: DeviceChange, max_message: int = MAX_MESSAGE) -> list[Any]:
    """The SET_DEVICE messages (pyroute2 `wgmsg`, not yet encoded) that apply `change`: one,
    unless its peers do not fit in `max_message` bytes. Raises BackendError on a bad value."""
    check_ifname(ifname)
    check_change(change)
    if change.empty:
        return []
    device: list[list[Any]] = [["WGDEVICE_A_IFNAME", ifname]]
    if change.private_key is not None:
        device.append(["WGDEVICE_A_PRIVATE_KEY", change.private_key])
    if change.listen_port is not None:
        device.append(["WGDEVICE_A_LISTEN_PORT", change.listen_port])
    chunks = list(_chunks(peer_attrs(change), max_message - _HEADERS)) or [[]]
    messages = []
    for i, chunk in enumerate(chunks):
        msg = wgmsg()
        msg["cmd"] = CMD_SET_DEVICE
        msg["version"] = GENL_VERSION
        msg["attrs"] = [*(device if i == 0 else device[:1])]
        if chunk:
            msg["attrs"].append(["WGDEVICE_A_PEERS", chunk])
        messages.append(msg)
    return messages


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def format_endpoint(endpoint: Any) -> str:
    """`ADDRESS:PORT` (`[ADDRESS]:PORT` for IPv6) of a decoded WGPEER_A_ENDPOINT, "" if none."""
    if not endpoint or not endpoint.get("addr"):
        return ""
    address, port = endpoint["addr"], endpoint["port"]
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def device_state(messages: Iterable[Any]) -> DeviceState:
    """The DeviceState of a GET_DEVICE dump: device attributes from its first message, peers
    merged by public key across all (the kernel continues a long peer in the next message)."""
    public_key: str | None = None
    listen_port = fwmark = 0
    peers: dict[str, dict[str, Any]] = {}
    for i, msg in enumerate(messages):
        if i == 0:
            key = msg.get_attr("WGDEVICE_A_PUBLIC_KEY")
            public_key = _text(key) if key else None
            listen_port = msg.get_attr("WGDEVICE_A_LISTEN_PORT") or 0
            fwmark = msg.get_attr("WGDEVICE_A_FWMARK") or 0
        for peer in msg.get_attr("WGDEVICE_A_PEERS") or ():
            key = _text(peer.get_attr("WGPEER_A_PUBLIC_KEY"))
            entry = peers.setdefault(key, {"allowed_ips": []})
            entry["allowed_ips"] += [
                ip["addr"] for ip in peer.get_attr("WGPEER_A_ALLOWEDIPS") or () if ip.get("addr")
            ]
            for name, field in (
                ("WGPEER_A_ENDPOINT", "endpoint"),
                ("WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL", "keepalive"),
                ("WGPEER_A_LAST_HANDSHAKE_TIME", "handshake"),
                ("WGPEER_A_RX_BYTES", "rx"),
                ("WGPEER_A_TX_BYTES", "tx"),
            ):
                value = peer.get_attr(name)
                if value is not None:
                    entry[field] = value
    return DeviceState(
        public_key=public_key,
        listen_port=listen_port,
        fwmark=fwmark,
        peers=tuple(_peer_state(key, entry) for key, entry in peers.items()),
    )


def _peer_state(key: str, entry: dict[str, Any]) -> PeerState:
    handshake = entry.get("handshake") or {}
    return PeerState(
        public_key=key,
        endpoint=format_endpoint(entry.get("endpoint")),
        allowed_ips=tuple(sorted(entry["allowed_ips"])),
        persistent_keepalive=entry.get("keepalive", 0),
        last_handshake_ns=handshake.get("tv_sec", 0) * 1_000_000_000 + handshake.get("tv_nsec", 0),
        rx_bytes=entry.get("rx", 0),
        tx_bytes=entry.get("tx", 0),
    )


# --- the kernel ------------------------------------------------------------------------------


def _netlink_error(ifname: str, what: str, e: Exception) -> BackendError:
    code = getattr(e, "code", None) or getattr(e, "errno", None)
    if code == errno.ENODEV:
        return BackendError(f"{ifname}: no such device")
    if code == errno.ENOENT:
        return BackendError(f"{ifname}: {what}: the kernel has no WireGuard module loaded")
    if code == errno.EOPNOTSUPP and what != "create":
        return BackendError(f"{ifname}: not a WireGuard device")
    reason = os.strerror(code) if isinstance(code, int) and code > 0 else str(e)
    return BackendError(f"{ifname}: {what}: {reason}")


try:  # pyroute2 >= 0.8 resolves the family in an async core
    from pyroute2.netlink.generic.wireguard import AsyncWireGuard

    class _QuietAsyncWireGuard(AsyncWireGuard):
        module_err_level = "debug"  # a missing family is reported by available(), not logged

    class _QuietWireGuard(WireGuard):
        async_class = _QuietAsyncWireGuard

except ImportError:  # older: the same socket, which logs a missing family
    _QuietWireGuard = WireGuard  # type: ignore[misc,assignment]


@contextmanager
def _genl() -> Iterator[Any]:
    """A `wireguard` generic netlink socket (NetlinkError ENOENT without the module)."""
    sock = _QuietWireGuard()
    try:
        yield sock
    finally:
        sock.close()


def _family_reason() -> str | None:
    try:
        with _genl():
            return None
    except (NetlinkError, OSError) as e:
        return str(e)


class KernelBackend:
    """WireGuard in the kernel module, configured over generic netlink."""

    name = "kernel"

    def available(self) -> str | None:
        if _family_reason() is None:
            return None
        modprobe = shutil.which("modprobe") or shutil.which("modprobe", path="/usr/sbin:/sbin")
        if modprobe is None:
            return "the wireguard module is not loaded and there is no modprobe to load it"
        try:
            run = subprocess.run(
                [modprobe, "wireguard"], capture_output=True, text=True, check=False, timeout=30
            )
            detail = (run.stderr.strip().splitlines() or [f"exit status {run.returncode}"])[-1]
        except (OSError, subprocess.TimeoutExpired) as e:
            detail = str(e)
        if _family_reason() is None:
            return None
        return f"the kernel has no WireGuard module (modprobe wireguard: {detail})"

    def _link(self, ipr: Any, ifname: str) -> tuple[int, str] | None:
        """(index, kind) of the link called `ifname`, None if there is none."""
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            return None
        link = ipr.get_links(found[0])[0]
        info = link.get_attr("IFLA_LINKINFO")
        kind = info.get_attr("IFLA_INFO_KIND") if info is not None else ""
        return found[0], kind or ""

    def exists(self, ifname: str) -> bool:

        check_ifname(ifname)
        with IPRoute() as ipr:
            link = self._link(ipr, ifname)
        return link is not None and link[1] == LINK_KIND

    def create(self, ifname: str) -> None:

        check_ifname(ifname)
        with IPRoute() as ipr:
            try:
                ipr.link("add", ifname=ifname, kind=LINK_KIND)
            except NetlinkError as e:
                if e.code == errno.EEXIST:
                    raise BackendError(f"{ifname}: a link of that name exists") from None
                if e.code == errno.EOPNOTSUPP:
                    raise BackendError(
                        f"{ifname}: the kernel has no WireGuard module (link type wireguard)"
                    ) from None
                raise _netlink_error(ifname, "create", e) from None

    def read(self, ifname: str) -> DeviceState:

        check_ifname(ifname)
        msg = wgmsg()
        msg["cmd"] = CMD_GET_DEVICE
        msg["version"] = GENL_VERSION
        msg["attrs"] = [["WGDEVICE_A_IFNAME", ifname]]
        try:
            with _genl() as wg:
                replies = list(
                    wg.nlm_request(msg, msg_type=wg.prid, msg_flags=NLM_F_REQUEST | NLM_F_DUMP)
                )
        except (NetlinkError, OSError) as e:
            raise _netlink_error(ifname, "read", e) from None
        return device_state(replies)

    def configure(self, ifname: str, change: DeviceChange) -> None:

        messages = set_messages(ifname, change)  # checks every value first
        if not messages:
            return
        try:
            with _genl() as wg:
                for msg in messages:
                    tuple(
                        wg.nlm_request(msg, msg_type=wg.prid, msg_flags=NLM_F_REQUEST | NLM_F_ACK)
                    )
        except (NetlinkError, OSError) as e:
            raise _netlink_error(ifname, "configure", e) from None

    def delete(self, ifname: str) -> None:
        """Delete the device; nothing to do if it is gone, an error if the name is not one."""

        check_ifname(ifname)
        with IPRoute() as ipr:
            link = self._link(ipr, ifname)
            if link is None:
                return
            if link[1] != LINK_KIND:
                raise BackendError(f"{ifname}: not a WireGuard device (kind {link[1]!r})")
            try:
                ipr.link("del", index=link[0])
            except NetlinkError as e:
                if e.code != errno.ENODEV:
                    raise _netlink_error(ifname, "delete", e) from None
