"""Sets of (protocol, port): what a rule, a side or a whole flow allows, exactly.

TCP, UDP and SCTP carry ports 1-65535, kept as sorted disjoint intervals. Every other IP
protocol (ICMP, GRE, ...) has no ports; NetworkPolicy can only allow them all at once, with a
rule that lists no ports, so they are one flag, `other`. The model and the datapath judge such
packets as port 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from netcc.model.types import PROTOCOL_NUMBERS

PORTED = ("TCP", "UDP", "SCTP")
OTHER = "OTHER"  # every IP protocol without ports
MIN_PORT, MAX_PORT = 1, 65535
Intervals = tuple[tuple[int, int], ...]
FULL: Intervals = ((MIN_PORT, MAX_PORT),)


def _normalize(intervals: Iterable[tuple[int, int]]) -> Intervals:
    """Sorted, merged (adjacent ranges joined), clipped to 1-65535."""
    out: list[list[int]] = []
    for lo, hi in sorted((max(lo, MIN_PORT), min(hi, MAX_PORT)) for lo, hi in intervals):
        if lo > hi:
            continue
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((lo, hi) for lo, hi in out)


def _intersect(a: Intervals, b: Intervals) -> Intervals:
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def _subtract(a: Intervals, b: Intervals) -> Intervals:
    out = []
    for lo, hi in a:
        for blo, bhi in b:
            if bhi < lo or blo > hi:
                continue
            if blo > lo:
                out.append((lo, blo - 1))
            lo = bhi + 1
            if lo > hi:
                break
        if lo <= hi:
            out.append((lo, hi))
    return tuple(out)


def range_text(lo: int, hi: int) -> str:
    """`80` or `8000-8080`."""
    return str(lo) if lo == hi else f"{lo}-{hi}"


@dataclass(frozen=True)
class PortSet:
    """An exact set of (protocol, port); immutable, hashable, with set operators."""

    tcp: Intervals = ()
    udp: Intervals = ()
    sctp: Intervals = ()
    other: bool = False

    @staticmethod
    def none() -> PortSet:
        return EMPTY

    @staticmethod
    def all() -> PortSet:
        return ALL

    @staticmethod
    def of(protocol: str, first: int | None = None, last: int | None = None) -> PortSet:
        """Ports first..last of a protocol (every port when `first` is None)."""
        if protocol == OTHER:
            return PortSet(other=True)
        if first is None:
            return PortSet(**{protocol.lower(): FULL})
        ranges = _normalize([(first, first if last is None else last)])
        return PortSet(**{protocol.lower(): ranges})

    def ranges(self, protocol: str) -> Intervals:
        """The intervals of TCP, UDP or SCTP."""
        return getattr(self, protocol.lower())

    def __or__(self, other: PortSet) -> PortSet:
        if not other or self is other or self is ALL:
            return self
        if not self or other is ALL:
            return other
        return PortSet(
            _normalize(self.tcp + other.tcp),
            _normalize(self.udp + other.udp),
            _normalize(self.sctp + other.sctp),
            self.other or other.other,
        )

    def __and__(self, other: PortSet) -> PortSet:
        if other is ALL or self is other:
            return self
        if self is ALL:
            return other
        if not self or not other:
            return EMPTY
        return PortSet(
            _intersect(self.tcp, other.tcp),
            _intersect(self.udp, other.udp),
            _intersect(self.sctp, other.sctp),
            self.other and other.other,
        )

    def __sub__(self, other: PortSet) -> PortSet:
        if not other or not self:
            return self
        if other is ALL:
            return EMPTY
        return PortSet(
            _subtract(self.tcp, other.tcp),
            _subtract(self.udp, other.udp),
            _subtract(self.sctp, other.sctp),
            self.other and not other.other,
        )

    def __le__(self, other: PortSet) -> bool:
        return not (self - other)

    def __bool__(self) -> bool:
        return bool(self.tcp or self.udp or self.sctp or self.other)

    @property
    def is_all(self) -> bool:
        return self == ALL

    def contains(self, proto: int, port: int) -> bool:
        """Whether a packet of IP protocol `proto` to `port` is in the set."""
        name = {v: k for k, v in PROTOCOL_NUMBERS.items()}.get(proto)
        if name is None:
            return self.other
        return any(lo <= port <= hi for lo, hi in self.ranges(name))

    def items(self) -> Iterator[tuple[str, int, int]]:
        """(protocol, first, last) for every interval; `(OTHER, 0, 0)` for the flag."""
        for p in PORTED:
            for lo, hi in self.ranges(p):
                yield p, lo, hi
        if self.other:
            yield OTHER, 0, 0

    def size(self) -> int:
        """Number of (protocol, port) pairs with a port; the `other` flag does not count."""
        return sum(hi - lo + 1 for p in PORTED for lo, hi in self.ranges(p))

    def __str__(self) -> str:
        """`all`, or e.g. `TCP 80, 8000-8080; UDP 53; other protocols`; `none` when empty."""
        if self.is_all:
            return "all"
        if not self:
            return "none"
        parts = []
        for p in PORTED:
            r = self.ranges(p)
            if r:
                parts.append(f"{p} " + ", ".join(range_text(lo, hi) for lo, hi in r))
        if self.other:
            parts.append("other protocols")
        return "; ".join(parts)

    def short(self, limit: int = 12) -> str:
        """A label that fits a matrix cell: `all`, `TCP 8080`, `8080, 9100`, `8080 +3`."""
        if self.is_all:
            return "all"
        text = str(self)
        if len(text) <= limit:
            return text
        if text.startswith("TCP ") and ";" not in text and len(text) - 4 <= limit:
            return text[4:]
        ports = [range_text(lo, hi) for _, lo, hi in self.items() if lo]
        if ports and len(ports[0]) + 3 <= limit:
            return f"{ports[0]} +{len(ports) - 1}" if len(ports) > 1 else ports[0]
        return "some"


EMPTY = PortSet()
ALL = PortSet(FULL, FULL, FULL, True)
