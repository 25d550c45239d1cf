"""Parsing IP addresses and CIDRs into ipaddress objects, with the message when they are invalid."""

from __future__ import annotations

from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_interface,
    ip_network,
)

from netcc.validate.access import quote
from netcc.validate.context import Context

Network = IPv4Network | IPv6Network


# IPv4 ranges no node, pod or service can be addressed from (RFC 6890 and its forerunners).
SPECIAL_RANGES = (
    (IPv4Network("0.0.0.0/8"), 'an unspecified or "this network" address (0.0.0.0/8)'),
    (IPv4Network("127.0.0.0/8"), "a loopback address (127.0.0.0/8)"),
    (IPv4Network("169.254.0.0/16"), "a link-local address (169.254.0.0/16)"),
    (IPv4Network("224.0.0.0/4"), "a multicast address (224.0.0.0/4)"),
    (IPv4Network("240.0.0.0/4"), "a reserved or broadcast address (240.0.0.0/4)"),
)


def special_address(address: IPv4Address) -> str | None:
    """What `address` is when no host may use it (loopback, multicast...), else None."""
    return next((what for net, what in SPECIAL_RANGES if address in net), None)


def special_network(network: IPv4Network) -> str | None:
    """The special range `network` overlaps (as `special_address` words it), else None."""
    return next((what for net, what in SPECIAL_RANGES if network.overlaps(net)), None)


def parse_cidr(value: str) -> tuple[Network | None, str | None]:
    """(network, None), or (None, why it is not a valid CIDR)."""
    if "/" not in value:
        return (
            None,
            f"invalid CIDR {quote(value)}: expected an address and a prefix length, "
            "like 10.0.0.0/16",
        )
    if "%" in value or not value.rpartition("/")[2].isdigit() or value.strip() != value:
        return None, f"invalid CIDR {quote(value)}"
    try:
        return ip_network(value, strict=True), None
    except ValueError:
        pass
    try:
        meant = ip_interface(value).network
    except ValueError:
        return None, f"invalid CIDR {quote(value)}"
    return None, f"CIDR {quote(value)} has host bits set; did you mean {quote(str(meant))}?"


def parse_address(value: str) -> tuple[IPv4Address | IPv6Address | None, str | None]:
    """(address, None), or (None, why it is not a valid IP address)."""
    if "%" in value or value.strip() != value:
        return None, f"invalid IP address {quote(value)}"
    try:
        return ip_address(value), None
    except ValueError:
        hint = "; expected an address without a prefix length" if "/" in value else ""
        return None, f"invalid IP address {quote(value)}{hint}"


def ipv4_cidr(ctx: Context, value: object, path: str, what: str) -> IPv4Network | None:
    """The IPv4 network at `path`, or None after reporting why not (nothing if not a string)."""
    if not isinstance(value, str):
        return None
    net, problem = parse_cidr(value)
    if isinstance(net, IPv6Network) or (problem and ":" in value and _is_ipv6_interface(value)):
        problem = f"IPv6 {what} {quote(value)} is not supported yet (IPv4 only)"
    if problem:
        ctx.error(path, problem)
        return None
    return net  # type: ignore[return-value]


def ipv4_address(ctx: Context, value: object, path: str, what: str) -> IPv4Address | None:
    """The IPv4 address at `path`, or None after reporting why not (nothing if not a string)."""
    if not isinstance(value, str):
        return None
    addr, problem = parse_address(value)
    if isinstance(addr, IPv6Address):
        problem = f"IPv6 {what} {quote(value)} is not supported yet (IPv4 only)"
    if problem:
        ctx.error(path, problem)
        return None
    return addr  # type: ignore[return-value]


def _is_ipv6_interface(value: str) -> bool:
    try:
        return ip_interface(value).version == 6
    except ValueError:
        return False
