"""Maglev consistent hashing (Eisenbud et al., NSDI 2016): a lookup table per service port.

Every backend gets a permutation of the table's M slots from two stable hashes of its identity
(offset, skip); backends take turns claiming their next free preferred slot until the table is
full. Each backend ends up with M/N slots (±1), and removing or adding one backend moves little
more than its own share of slots. M is prime, so every skip walks every slot.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache

# Candidate table sizes: primes, each about twice the one before.
PRIMES = (251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521)
SLOTS_PER_BACKEND = 10  # aim: M >= 10 N keeps every backend's share within a few percent
MEMORY_BUDGET = 64 << 20  # bytes of Maglev rows per node the table size may grow to


class TableSizeError(ValueError):
    """No prime table size fits the memory budget for the largest service."""


def permutation(identity: str, size: int) -> tuple[int, int]:
    """(offset, skip) of a backend in a table of `size` slots, from blake2b of its identity."""
    digest = hashlib.blake2b(identity.encode(), digest_size=16).digest()
    offset = int.from_bytes(digest[:8], "big") % size
    skip = int.from_bytes(digest[8:], "big") % (size - 1) + 1
    return offset, skip


@lru_cache(maxsize=4096)
def _table(identities: tuple[str, ...], size: int) -> tuple[int, ...]:
    perms = [permutation(i, size) for i in identities]
    nxt = [0] * len(identities)
    entry = [-1] * size
    filled = 0
    while True:
        for i, (offset, skip) in enumerate(perms):
            slot = (offset + skip * nxt[i]) % size
            while entry[slot] >= 0:
                nxt[i] += 1
                slot = (offset + skip * nxt[i]) % size
            entry[slot] = i
            nxt[i] += 1
            filled += 1
            if filled == size:
                return tuple(entry)


def table(identities: Sequence[str], size: int) -> tuple[int, ...]:
    """The slot -> backend index table (indices into `identities`); empty with no backend."""
    if not identities:
        return ()
    if len(identities) > size:
        raise TableSizeError(f"{len(identities)} backends do not fit a {size}-slot table")
    return _table(tuple(identities), size)


def table_size(max_backends: int, rows: int) -> int:
    """The table size M for a node: the smallest prime with M >= SLOTS_PER_BACKEND * the
    largest backend count, else the largest prime that the memory budget allows (rows * M
    * 4 bytes) while still above the largest backend count."""
    need = max(max_backends * SLOTS_PER_BACKEND, 1)
    fits = [p for p in PRIMES if max(rows, 1) * p * 4 <= MEMORY_BUDGET and p > max_backends]
    if not fits:
        raise TableSizeError(
            f"a service with {max_backends} backends and {rows} Maglev rows do not fit "
            f"{MEMORY_BUDGET >> 20} MiB of Maglev tables per node"
        )
    for p in fits:
        if p >= need:
            return p
    return fits[-1]
