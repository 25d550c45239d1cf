"""What the node's routing says about pod and node addresses (netlink, read only).

A local pod address is bound to the interface the node routes it through (`ip route get`): a
direct (gatewayless) unicast route to an interface other than loopback. The node's uplinks
are the interfaces holding the addresses its NodePort services listen on.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from netcc.loader.desired import Binding, Endpoint, Interface

RTN_UNICAST, RTN_LOCAL = 1, 2
AF_INET = 2


def binding(ipr: Any, ip: str) -> Binding:
    """The interface the node routes `ip` through, or why it routes it elsewhere."""
    try:
        route = ipr.route("get", dst=ip)[0]
    except Exception as err:
        return Binding(reason=f"no route ({os.strerror(getattr(err, 'code', 0) or 0)})")
    oif, gateway = route.get_attr("RTA_OIF"), route.get_attr("RTA_GATEWAY")
    if route["type"] == RTN_LOCAL:
        return Binding(reason="the address is the node's own")
    if route["type"] != RTN_UNICAST or not oif:
        return Binding(reason="no unicast route to an interface")
    if gateway:
        return Binding(reason=f"routed via gateway {gateway}, not to a pod interface")
    links = ipr.get_links(oif)
    name = links[0].get_attr("IFLA_IFNAME") if links else None
    if name == "lo":
        return Binding(reason="routed to the loopback interface")
    return Binding(int(oif), name)


def resolve_endpoints(ipr: Any, entries: Iterable[dict]) -> list[Endpoint]:
    """Each endpoint entry ({"key": {"ip"}, "note"}) with the interface it is routed to."""
    out = []
    for e in entries:
        ip = str(e["key"]["ip"])
        b = binding(ipr, ip)
        out.append(Endpoint(ip, str(e.get("note", "")), b.ifindex, b.ifname, b.reason))
    return out


def uplinks(ipr: Any, addresses: Iterable[str]) -> list[Interface]:
    """The interfaces (but loopback) holding any of `addresses`, by ifindex."""
    found = {}
    for vip in sorted(set(addresses)):
        for msg in ipr.get_addr(family=AF_INET, address=vip):
            links = ipr.get_links(msg["index"])
            name = links[0].get_attr("IFLA_IFNAME") if links else str(msg["index"])
            if name != "lo":
                found[int(msg["index"])] = name
    return [Interface(i, n) for i, n in sorted(found.items())]
