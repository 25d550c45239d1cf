"""Prefix arithmetic: port ranges as prefixes, and the address space cut along ipBlocks."""

from __future__ import annotations

from ipaddress import IPv4Network

ALL_IPV4 = IPv4Network("0.0.0.0/0")


def port_range_prefixes(first: int, last: int) -> list[tuple[int, int]]:
    """The fewest (port, prefix bits of 16) blocks covering first..last exactly."""
    out = []
    port = first
    while port <= last:
        size = port & -port if port else 1 << 16
        while port + size - 1 > last:
            size >>= 1
        out.append((port, 16 - size.bit_length() + 1))
        port += size
    return out


def regions(prefixes: set[IPv4Network]) -> list[IPv4Network]:
    """The LPM regions: every prefix given, plus 0.0.0.0/0, sorted.

    An address's longest matching prefix among these decides which of them contain it (they
    are nested or disjoint), so one LPM entry per prefix describes the whole space.
    """
    return sorted(prefixes | {ALL_IPV4}, key=lambda n: (int(n.network_address), n.prefixlen))


def region_inside(region: IPv4Network, outer: IPv4Network) -> bool:
    """Whether every address of `region` (minus its more specific regions) lies in `outer`."""
    return region.prefixlen >= outer.prefixlen and region.subnet_of(outer)
