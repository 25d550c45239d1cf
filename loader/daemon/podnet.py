"""A pod's network interface: the veth pair, addresses, routes and MTU (pyroute2, no commands).

The host side lives in the node's network namespace (the daemon's), named `nc` + 11 hex
digits of the container id's sha256, so that it is found again from the id alone (DEL after a
restart, GC). It holds the node's router address (/32) and a /32 route to the pod. The pod
side is created directly in the pod's namespace under `CNI_IFNAME`, with the pod's address as
a /32, an on-link route to the router address and the default route through it, as Cilium
wires pods. Both ends get the MTU (the tunnel's with WireGuard).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from netcc.loader.cni.timing import step
from netcc.loader.netns import enter_netns

SCOPE_LINK = 253
HOST_PREFIX = "nc"

_host_lock = threading.RLock()
_host: IPRoute | None = None  # see host_socket


class PodNetError(Exception):
    """The pod's interface could not be made or is not as it should be."""


@dataclass(frozen=True)
class PodInterface:
    """What ADD made: the host side (name, index, MAC) and the pod side (name, MAC)."""

    host_name: str
    host_index: int
    host_mac: str
    pod_name: str
    pod_mac: str
    mtu: int


def host_name(container_id: str) -> str:
    """The host-side interface name of a container's veth (at most 15 characters)."""
    return HOST_PREFIX + hashlib.sha256(container_id.encode()).hexdigest()[:11]


@contextmanager
def host_socket() -> Iterator[IPRoute]:
    """The daemon's netlink socket in the node's namespace: opened once, on first use (never
    from inside `enter_netns`), and used by one thread at a time. A socket that failed below
    netlink (not a NetlinkError answer) is closed and the next call opens a new one."""
    global _host
    with _host_lock:
        if _host is None:
            _host = IPRoute()
        try:
            yield _host
        except NetlinkError:
            raise
        except OSError:
            with contextlib.suppress(Exception):
                _host.close()
            _host = None
            raise


def _link(ipr: IPRoute, name: str) -> Any | None:
    """The link named `name` (one RTM_GETLINK), or None when there is none."""
    try:
        return ipr.link("get", ifname=name)[0]
    except NetlinkError as e:
        if e.code == errno.ENODEV:
            return None
        raise


def create(
    netns: str | Path,
    ifname: str,
    container_id: str,
    ip: IPv4Address,
    router: IPv4Address,
    mtu: int,
) -> PodInterface:
    """Make the pod's interface; on failure nothing made is left behind. A veth of the
    container that exists already (what an earlier, unfinished ADD of it left) is replaced."""
    name = host_name(container_id)
    with host_socket() as host:
        if _link(host, name) is not None:
            with step("veth.leftover"):
                delete_host(name)
        try:
            with step("veth.add"):
                host.link(
                    "add",
                    ifname=name,
                    kind="veth",
                    mtu=mtu,
                    state="up",
                    peer={"ifname": ifname, "net_ns_fd": str(netns), "mtu": mtu},
                )
        except NetlinkError as e:
            why = e.args[1] if len(e.args) > 1 else e
            raise PodNetError(f"cannot create the veth pair {name}/{ifname}: {why}") from None
        try:
            with step("veth.host"):
                link = _link(host, name)
                if link is None:
                    raise PodNetError(f"{name} vanished right after it was made")
                index, host_mac = link["index"], link.get_attr("IFLA_ADDRESS")
                host.addr("add", index=index, address=str(router), prefixlen=32)
                host.route("add", dst=f"{ip}/32", oif=index, scope=SCOPE_LINK)
            with step("veth.pod"):
                pod_mac = _configure_pod_side(netns, ifname, ip, router)
        except BaseException:
            with contextlib.suppress(NetlinkError, OSError):
                host.link("del", ifname=name)
            raise
    return PodInterface(name, index, host_mac, ifname, pod_mac, mtu)


def _configure_pod_side(
    netns: str | Path, ifname: str, ip: IPv4Address, router: IPv4Address
) -> str:
    with enter_netns(netns), IPRoute() as pod:
        link = _link(pod, ifname)
        if link is None:
            raise PodNetError(f"{ifname} did not appear in {netns}")
        index = link["index"]
        pod.link("set", index=index, state="up")
        pod.addr("add", index=index, address=str(ip), prefixlen=32)
        pod.route("add", dst=f"{router}/32", oif=index, scope=SCOPE_LINK)
        pod.route("add", dst="0.0.0.0/0", gateway=str(router), oif=index, prefsrc=str(ip))
        return link.get_attr("IFLA_ADDRESS")


def delete(container_id: str) -> bool:
    """Remove the container's veth pair (both ends go with the host side); False if absent."""
    return delete_host(host_name(container_id))


def delete_host(name: str) -> bool:
    """Remove the veth pair whose host side is `name` (one RTM_DELLINK); False if absent."""
    with host_socket() as host:
        try:
            host.link("del", ifname=name)
        except NetlinkError as e:
            if e.code != errno.ENODEV:
                raise
            return False
    return True


def host_index(container_id: str) -> int | None:
    """The ifindex of the container's host-side interface, if it exists."""
    with host_socket() as host:
        link = _link(host, host_name(container_id))
    return None if link is None else link["index"]


def host_interfaces() -> dict[str, int]:
    """Every netcc pod interface on this node: name -> ifindex."""
    with host_socket() as host:
        return {
            link.get_attr("IFLA_IFNAME"): link["index"]
            for link in host.get_links()
            if (link.get_attr("IFLA_IFNAME") or "").startswith(HOST_PREFIX) and _is_veth(link)
        }


def _is_veth(link) -> bool:
    info = link.get_attr("IFLA_LINKINFO")
    return info is not None and info.get_attr("IFLA_INFO_KIND") == "veth"


def problems(netns: str | Path, ifname: str, container_id: str, ip: IPv4Address) -> list[str]:
    """What CHECK finds wrong with the pod's interface (empty: as ADD made it)."""
    found: list[str] = []
    index = host_index(container_id)
    if index is None:
        return [f"the host side {host_name(container_id)} of the pod's veth is gone"]
    try:
        with enter_netns(netns), IPRoute() as pod:
            links = pod.link_lookup(ifname=ifname)
            if not links:
                return [f"{ifname} is gone from {netns}"]
            addrs = {a.get_attr("IFA_ADDRESS") for a in pod.get_addr(index=links[0], family=2)}
            if str(ip) not in addrs:
                found.append(f"{ifname} lost its address {ip}")
    except OSError as e:
        found.append(f"cannot enter {netns}: {e.strerror}")
    return found
