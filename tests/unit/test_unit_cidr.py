"""netcc.resolve.cidr: port ranges as prefixes, and LPM regions."""

from ipaddress import IPv4Network

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from netcc.resolve.cidr import ALL_IPV4, port_range_prefixes, region_inside, regions

PORT = st.integers(min_value=0, max_value=65535)


def _block(port: int, bits: int) -> range:
    return range(port, port + (1 << (16 - bits)))


def _minimal_count(first: int, last: int, lo: int = 0, size: int = 1 << 16) -> int:
    """Blocks of the binary trie cover of first..last inside [lo, lo+size): the fewest prefixes."""
    hi = lo + size - 1
    if last < lo or first > hi:
        return 0
    if first <= lo and hi <= last:
        return 1
    half = size // 2
    return _minimal_count(first, last, lo, half) + _minimal_count(first, last, lo + half, half)


@st.composite
def port_ranges(draw):
    a, b = draw(PORT), draw(PORT)
    return min(a, b), max(a, b)


@settings(max_examples=400, deadline=None)
@given(port_ranges())
@example((0, 65535))
@example((0, 0))
@example((65535, 65535))
@example((1, 65535))
@example((0, 65534))
@example((32767, 32768))
def test_port_range_prefixes_cover_exactly_with_aligned_disjoint_minimal_blocks(bounds):
    first, last = bounds
    blocks = port_range_prefixes(first, last)
    covered: list[int] = []
    for port, bits in blocks:
        assert 0 <= bits <= 16
        size = 1 << (16 - bits)
        assert port % size == 0, f"block {port}/{bits} is not aligned"
        covered.extend(_block(port, bits))
    assert len(covered) == len(set(covered)), "blocks overlap"
    assert sorted(covered) == list(range(first, last + 1))
    assert len(blocks) == _minimal_count(first, last)
    assert blocks == sorted(blocks), "blocks come in port order"


@pytest.mark.parametrize(
    ("first", "last", "want"),
    [
        (80, 80, [(80, 16)]),
        (0, 65535, [(0, 0)]),
        (1024, 2047, [(1024, 6)]),
        (8080, 8083, [(8080, 14)]),
        (9100, 9199, [(9100, 14), (9104, 12), (9120, 11), (9152, 11), (9184, 12)]),
        (65534, 65535, [(65534, 15)]),
        (1, 3, [(1, 16), (2, 15)]),
    ],
)
def test_port_range_prefixes_examples(first, last, want):
    assert port_range_prefixes(first, last) == want


def test_port_range_prefixes_worst_case_size():
    assert len(port_range_prefixes(1, 65534)) == 30
    assert len(port_range_prefixes(1, 65535)) == 16


def test_regions_add_the_whole_space_and_sort_by_address_then_length():
    nets = {IPv4Network("10.0.0.0/8"), IPv4Network("10.0.0.0/16"), IPv4Network("192.0.2.0/24")}
    assert regions(nets) == [
        ALL_IPV4,
        IPv4Network("10.0.0.0/8"),
        IPv4Network("10.0.0.0/16"),
        IPv4Network("192.0.2.0/24"),
    ]
    assert regions(set()) == [ALL_IPV4]
    assert regions({ALL_IPV4}) == [ALL_IPV4]


@given(
    st.sets(
        st.builds(
            lambda a, n: IPv4Network((a, n), strict=False),
            st.integers(0, 2**32 - 1),
            st.integers(0, 32),
        ),
        max_size=8,
    )
)
def test_regions_is_a_sorted_set_with_the_whole_space(nets):
    out = regions(nets)
    assert set(out) == nets | {ALL_IPV4}
    assert len(out) == len(set(out))
    assert out == sorted(out, key=lambda n: (int(n.network_address), n.prefixlen))


def test_region_inside():
    assert region_inside(IPv4Network("10.1.0.0/16"), IPv4Network("10.0.0.0/8"))
    assert region_inside(IPv4Network("10.0.0.0/8"), IPv4Network("10.0.0.0/8"))
    # A wider region is never inside: its own addresses stick out of `outer`.
    assert not region_inside(IPv4Network("10.0.0.0/8"), IPv4Network("10.1.0.0/16"))
    assert not region_inside(IPv4Network("11.0.0.0/8"), IPv4Network("10.0.0.0/8"))
    assert region_inside(IPv4Network("192.0.2.0/24"), ALL_IPV4)
    assert not region_inside(ALL_IPV4, IPv4Network("192.0.2.0/24"))
