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
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from netcc.loader.netns import enter_netns

SCOPE_LINK = 253
HOST_PREFIX = "nc"


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


def create(
    netns: str | Path,
    ifname: str,
    container_id: str,
    ip: IPv4Address,
    router: IPv4Address,
    mtu: int,
) -> PodInterface:
    """Make the pod's interface; on failure nothing made is left behind."""
    name = host_name(container_id)
    with IPRoute() as host:
        if host.link_lookup(ifname=name):
            raise PodNetError(f"interface {name} exists already (a previous ADD of this container)")
        try:
            host.link(
                "add",
                ifname=name,
                kind="veth",
                mtu=mtu,
                peer={"ifname": ifname, "net_ns_fd": str(netns), "mtu": mtu},
            )
        except NetlinkError as e:
            why = e.args[1] if len(e.args) > 1 else e
            raise PodNetError(f"cannot create the veth pair {name}/{ifname}: {why}") from None
        try:
            index = host.link_lookup(ifname=name)[0]
            host.link("set", index=index, state="up")
            host.addr("add", index=index, address=str(router), prefixlen=32)
            host.route("add", dst=f"{ip}/32", oif=index, scope=SCOPE_LINK)
            host_mac = host.get_links(index)[0].get_attr("IFLA_ADDRESS")
            pod_mac = _configure_pod_side(netns, ifname, ip, router)
        except BaseException:
            with contextlib.suppress(NetlinkError, IndexError):
                host.link("del", ifname=name)
            raise
    return PodInterface(name, index, host_mac, ifname, pod_mac, mtu)


def _configure_pod_side(
    netns: str | Path, ifname: str, ip: IPv4Address, router: IPv4Address
) -> str:
    with enter_netns(netns), IPRoute() as pod:
        found = pod.link_lookup(ifname=ifname)
        if not found:
            raise PodNetError(f"{ifname} did not appear in {netns}")
        index = found[0]
        pod.link("set", index=index, state="up")
        pod.addr("add", index=index, address=str(ip), prefixlen=32)
        pod.route("add", dst=f"{router}/32", oif=index, scope=SCOPE_LINK)
        pod.route("add", dst="0.0.0.0/0", gateway=str(router), oif=index, prefsrc=str(ip))
        return pod.get_links(index)[0].get_attr("IFLA_ADDRESS")


def delete(container_id: str) -> bool:
    """Remove the container's veth pair (both ends go with the host side); False if absent."""
    return delete_host(host_name(container_id))


def delete_host(name: str) -> bool:
    """Remove the veth pair whose host side is `name`; False if absent."""
    with IPRoute() as host:
        found = host.link_lookup(ifname=name)
        if not found:
            return False
        try:
            host.link("del", index=found[0])
        except NetlinkError as e:
            if e.code != errno.ENODEV:
                raise
            return False
    return True


def host_index(container_id: str) -> int | None:
    """The ifindex of the container's host-side interface, if it exists."""
    with IPRoute() as host:
        found = host.link_lookup(ifname=host_name(container_id))
    return found[0] if found else None


def host_interfaces() -> dict[str, int]:
    """Every netcc pod interface on this node: name -> ifindex."""
    with IPRoute() as host:
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
