"""The Python reference of the datapath's backend choice (lib/lb.h), bit for bit.

A new flow to a service port takes the backend in Maglev slot `flow_hash % M`; with
sessionAffinity ClientIP the hash covers the client address alone. Tests compare the kernel's
choice with `pick`.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from netcc.contract.constants import NAT_PORT_MAX, NAT_PORT_MIN, NAT_PORT_PROBES

MASK = 0xFFFFFFFF


def _raw32(ip: IPv4Address | str) -> int:
    """An address as the datapath's __be32 reads as an integer on a little-endian host."""
    return int.from_bytes(IPv4Address(ip).packed, "little")


def _raw16(port: int) -> int:
    return int.from_bytes(port.to_bytes(2, "big"), "little")


def mix(a: int, b: int, c: int) -> int:
    """lb_hash() of lib/lb.h: three words mixed with murmur3's finalizer."""
    h = (a * 0x9E3779B1) & MASK
    h ^= b
    h = (h * 0x85EBCA6B) & MASK
    h ^= c
    h ^= h >> 16
    h = (h * 0x7FEB352D) & MASK
    h ^= h >> 15
    h = (h * 0x846CA68B) & MASK
    h ^= h >> 16
    return h


def flow_hash(client: str, sport: int, dport: int, proto: int, affinity: bool = False) -> int:
    """The hash a new flow's backend is chosen by (client address only with affinity)."""
    if affinity:
        return mix(_raw32(client), 0, 0)
    return mix(_raw32(client), (_raw16(sport) << 16) | _raw16(dport), proto)


def pick(row: list[int] | tuple[int, ...], h: int) -> int:
    """The backend id in the Maglev row's slot for hash `h`."""
    return row[h % len(row)]


def nat_ports(client: str, sport: int, node_port: int, backend: str) -> list[int]:
    """The node source ports nat_port() of lib/nodeport.h tries, in order, for a new NodePort
    flow from client:sport to node_port masqueraded towards `backend`."""
    h = mix(_raw32(client), (_raw16(sport) << 16) | _raw16(node_port), _raw32(backend))
    size = NAT_PORT_MAX - NAT_PORT_MIN + 1
    return [NAT_PORT_MIN + ((h + i) & MASK) % size for i in range(NAT_PORT_PROBES)]
