"""Native routing between nodes: a route to every other node's podCIDR through its address.

The daemon keeps them in the main table of its namespace unless WireGuard routes the pod
CIDRs (the loader's tunnel then does). A route that is already there through the same
gateway is left alone; one through another gateway is replaced. Netlink only (pyroute2).
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

AF_INET = 2
MAIN_TABLE = 254


def _current(ipr: IPRoute, dst: IPv4Network) -> str | None:
    """The gateway of the main table's route to exactly `dst`, or "" (no gateway), or None."""
    for r in ipr.get_routes(family=AF_INET, table=MAIN_TABLE):
        if r["dst_len"] == dst.prefixlen and r.get_attr("RTA_DST") == str(dst.network_address):
            return r.get_attr("RTA_GATEWAY") or ""
    return None


def ensure_routes(routes: Iterable[tuple[IPv4Network, IPv4Address]]) -> list[str]:
    """Make each `podCIDR via address` route hold; what was changed, and what failed."""
    done = []
    with IPRoute() as ipr:
        for dst, via in routes:
            if _current(ipr, dst) == str(via):
                continue
            try:
                ipr.route("replace", dst=str(dst), gateway=str(via), table=MAIN_TABLE)
                done.append(f"route {dst} via {via}")
            except NetlinkError as e:
                done.append(f"route {dst} via {via} failed: {e}")
    return done
