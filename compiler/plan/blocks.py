"""The address layout: one block per class, at the same offset in every node's podCIDR.

A block holds `perNode` addresses rounded up to a power of two and is aligned to its size, so
it is a CIDR on every node. Offsets count from the start of a node's podCIDR and must fit the
smallest one. Reserved offsets: 0 (the network address), 1 (the node's router address), the
last one (broadcast), and the offsets of static workloads' addresses on any node (the layout is
the same on every node, so such an offset is taken everywhere).

Placement is stable under change. Classes are placed largest block first, then by key; each
takes the first free aligned slot at or after `hash(key) mod slots`, wrapping around. Adding or
removing a class moves another only where their searches meet; `netcc diff` shows such a move.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from netcc.contract.classes import block_cidr
from netcc.model.types import Cluster, WorkloadClass

RESERVED_LOW = 2  # the network address and the router address


@dataclass(frozen=True)
class Block:
    """A class's block: `size` addresses from `offset` of every node's podCIDR."""

    offset: int
    size: int

    def on(self, pod_cidr: IPv4Network) -> IPv4Network:
        """The block as a CIDR inside one node's podCIDR (`classes.block_cidr`)."""
        return block_cidr(pod_cidr, self.offset, self.size)

    @property
    def prefixlen(self) -> int:
        """Bits of an offset the block fixes (32 - log2(size))."""
        return 32 - (self.size.bit_length() - 1)


class LayoutError(Exception):
    """The classes' blocks do not fit; carries (message, spec path) pairs saying what to change."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(m for m, _ in problems))
        self.problems = problems


def block_size(per_node: int) -> int:
    """`per_node` rounded up to a power of two."""
    return 1 << max(per_node - 1, 0).bit_length()


def _slot_hash(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def reserved_offsets(cluster: Cluster, span: int) -> set[int]:
    """Offsets no block may hold (see the module's text), within the first `span` addresses."""
    taken = {0, 1, span - 1}
    for w in cluster.workloads:
        base = int(cluster.node(w.node).pod_cidr.network_address)
        for ip in w.ips:
            offset = int(IPv4Address(ip)) - base
            if 0 <= offset < span:
                taken.add(offset)
    return taken


def layout(cluster: Cluster) -> dict[str, Block]:
    """The block of every class, by `namespace/name`. Raises LayoutError when they do not fit."""
    if not cluster.classes:
        return {}
    if not cluster.nodes:
        return _none_fit(cluster, "the spec declares no node")
    span = min(n.pod_cidr.num_addresses for n in cluster.nodes)
    used = bytearray(span)
    for offset in reserved_offsets(cluster, span):
        used[offset] = 1
    blocks: dict[str, Block] = {}
    problems: list[tuple[str, str]] = []
    order = sorted(cluster.classes, key=lambda c: (-block_size(c.per_node), c.key))
    for cls in order:
        size = block_size(cls.per_node)
        offset = _place(used, size, _slot_hash(cls.key))
        if offset is None:
            problems.append((_no_room(cluster, cls, size, span, used), f"{cls.path}.perNode"))
            continue
        used[offset : offset + size] = b"\x01" * size
        blocks[cls.key] = Block(offset, size)
    if problems:
        raise LayoutError(problems)
    return {c.key: blocks[c.key] for c in cluster.classes}


def _place(used: bytearray, size: int, h: int) -> int | None:
    """The first free aligned slot of `size` at or after slot `h mod slots` (wrapping)."""
    slots = len(used) // size
    if slots == 0:
        return None
    start = h % slots
    free = b"\x00" * size
    for i in range(slots):
        offset = ((start + i) % slots) * size
        if used[offset : offset + size] == free:
            return offset
    return None


def _no_room(cluster: Cluster, cls: WorkloadClass, size: int, span: int, used: bytearray) -> str:
    smallest = min(cluster.nodes, key=lambda n: n.pod_cidr.num_addresses)
    free = span - sum(used)
    return (
        f"class {cls.key} needs a block of {size} addresses (perNode {cls.per_node}) in every "
        f"node's podCIDR, but only {free} of the {span} addresses of the smallest node podCIDR "
        f"({smallest.pod_cidr} of node {smallest.name}) are left, and none of them form a "
        f"free aligned block of {size}; lower perNode of this or other classes, or give the "
        "nodes larger podCIDRs"
    )


def _none_fit(cluster: Cluster, why: str) -> dict[str, Block]:
    raise LayoutError([(f"workload classes need nodes to place them: {why}", "spec.nodes")])
