"""Prefix arithmetic: port ranges as prefixes, and the address space cut along ipBlocks."""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network

ALL_IPV4 = IPv4Network("0.0.0.0/0")
MASKS = tuple((0xFFFFFFFF << (32 - n)) & 0xFFFFFFFF for n in range(33))  # by prefix length

Prefix = tuple[int, int]  # (network address as an integer, prefix length)


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


def prefix_of(network: IPv4Network) -> Prefix:
    """A network as (address, length) integers, the key `BlockIndex` looks prefixes up by."""
    return int(network.network_address), network.prefixlen


class BlockIndex:
    """Which ipBlocks hold an address or a region, without testing every block.

    Every prefix that contains a region is one of its at most 33 enclosing prefixes (the
    region itself, then one bit shorter each time). The index keeps, for each prefix that is
    some block's cidr or except, the blocks that name it; a look-up walks the enclosing
    prefixes of the lengths that occur, so it costs O(distinct prefix lengths + hits) and
    not O(blocks + excepts). `containing` gives exactly the blocks `i` for which
    `region_inside(region, cidr_i)` holds and `region_inside(region, e)` holds for no IPv4
    except `e` of block `i` (for an address: `ip_in_block`).
    """

    def __init__(self, blocks: Iterable[tuple[IPv4Network, Iterable[object]]]) -> None:
        """`blocks`: (cidr, excepts) of each block, numbered in order; non-IPv4 excepts skip."""
        self._cidrs: dict[Prefix, list[int]] = {}
        self._excepts: dict[Prefix, list[int]] = {}
        lengths: set[int] = set()
        for i, (cidr, excepts) in enumerate(blocks):
            self._cidrs.setdefault(prefix_of(cidr), []).append(i)
            lengths.add(cidr.prefixlen)
            for e in excepts:
                if isinstance(e, IPv4Network):
                    self._excepts.setdefault(prefix_of(e), []).append(i)
                    lengths.add(e.prefixlen)
        self._lengths = sorted(lengths)
        self.lookups = 0  # enclosing prefixes looked at so far: the work, for tests

    def containing(self, address: int, prefixlen: int = 32) -> frozenset[int]:
        """Blocks that hold all of the prefix `address/prefixlen` (an address: /32)."""
        inside: set[int] = set()
        outside: set[int] = set()
        for length in self._lengths:
            if length > prefixlen:
                break
            self.lookups += 1
            key = (address & MASKS[length], length)
            inside.update(self._cidrs.get(key, ()))
            outside.update(self._excepts.get(key, ()))
        return frozenset(inside - outside)

    def of_region(self, region: IPv4Network) -> frozenset[int]:
        """Blocks that hold the LPM region `region` (see `region_inside`)."""
        return self.containing(*prefix_of(region))

    def of_address(self, ip: IPv4Address) -> frozenset[int]:
        """Blocks whose cidr holds `ip` and none of whose excepts do (`ip_in_block`)."""
        return self.containing(int(ip))
