"""PortSet algebra against plain Python sets of (protocol, port) on a small port range."""

from hypothesis import given
from hypothesis import strategies as st

from netcc.review.portset import ALL, EMPTY, OTHER, PortSet

TOP = 40
PROTOS = ("TCP", "UDP", "SCTP")


intervals = st.tuples(st.sampled_from(PROTOS), st.integers(1, TOP), st.integers(0, 6))
port_sets = st.tuples(st.lists(intervals, max_size=4), st.booleans())


def build(spec) -> PortSet:
    items, other = spec
    out = PortSet.of(OTHER) if other else EMPTY
    for proto, lo, width in items:
        out = out | PortSet.of(proto, lo, lo + width)
    return out


def points(s: PortSet) -> set:
    got = {(p, port) for p in PROTOS for port in range(1, TOP + 8) if s.contains(_num(p), port)}
    if s.contains(1, 0):
        got.add(("OTHER", 0))
    return got


def _num(p: str) -> int:
    return {"TCP": 6, "UDP": 17, "SCTP": 132}[p]


@given(port_sets, port_sets)
def test_set_operations_match_python_sets(a, b):
    x, y = build(a), build(b)
    assert points(x | y) == points(x) | points(y)
    assert points(x & y) == points(x) & points(y)
    assert points(x - y) == points(x) - points(y)
    assert (x <= y) == (points(x) <= points(y))
    assert bool(x) == bool(points(x))


@given(port_sets)
def test_normal_form_is_canonical(a):
    x = build(a)
    # the same set built another way compares equal (sorted, merged intervals)
    again = EMPTY
    for p, lo, hi in reversed(list(x.items())):
        again = again | PortSet.of(p, lo if p != OTHER else None, hi if p != OTHER else None)
    assert again == x
    for p in PROTOS:
        r = x.ranges(p)
        assert all(r[i][1] + 1 < r[i + 1][0] for i in range(len(r) - 1))


def test_text_forms():
    assert str(ALL) == "all" and ALL.is_all
    assert str(EMPTY) == "none" and not EMPTY
    s = PortSet.of("TCP", 80) | PortSet.of("TCP", 8000, 8080) | PortSet.of("UDP", 53)
    assert str(s) == "TCP 80, 8000-8080; UDP 53"
    assert str(PortSet.of("SCTP") | PortSet.of(OTHER)) == "SCTP 1-65535; other protocols"
    assert PortSet.of("TCP", 8080).short() == "TCP 8080"
    assert (PortSet.of("TCP", 8080) | PortSet.of("TCP", 9100)).short() == "8080, 9100"
    assert ALL - PortSet.of("TCP") == PortSet.of("UDP") | PortSet.of("SCTP") | PortSet.of(OTHER)
    assert list((ALL - PortSet.of("TCP", 80)).items())[:2] == [("TCP", 1, 79), ("TCP", 81, 65535)]
