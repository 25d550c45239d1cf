"""The indexes that replaced all-pairs loops give exactly the all-pairs answers.

- `BlockIndex` (cidr.py): the blocks holding a region or an address, against
  `region_inside` and `ip_in_block` tried on every block and except.
- `SelectorIndex` (semantics.py): the policies selecting a pod, against `selector_matches`
  tried on every policy of its namespace, in spec order.
- `split_regions` (review/connectivity.py): each region's holes, against every pair of
  prefixes.
"""

from __future__ import annotations

import random
from ipaddress import IPv4Address, IPv4Network, IPv6Network

import pytest

from netcc.model.types import IPBlock, LabelSelector, NetworkPolicy, Requirement, Workload
from netcc.resolve.cidr import BlockIndex, region_inside, regions
from netcc.review.connectivity import Region, split_regions
from netcc.semantics.policy import SelectorIndex, ip_in_block, selector_matches

BASES = ("10.0.0.0", "10.1.0.0", "10.1.2.0", "192.0.2.0", "0.0.0.0")


def _prefix(rng: random.Random) -> IPv4Network:
    base = int(IPv4Address(rng.choice(BASES)))
    length = rng.choice((0, 8, 16, 20, 24, 26, 28, 32))
    return IPv4Network((base + rng.randrange(1 << 12), length), strict=False)


def _blocks(rng: random.Random) -> list[IPBlock]:
    out = []
    for _ in range(rng.randint(1, 12)):
        cidr = _prefix(rng)
        excepts: list[IPv4Network | IPv6Network] = [
            e for e in (_prefix(rng) for _ in range(rng.randint(0, 4))) if e.subnet_of(cidr)
        ]
        if rng.random() < 0.2:
            excepts.append(IPv6Network("2001:db8::/64"))  # skipped, as the planner does
        out.append(IPBlock(cidr, tuple(excepts)))
    return out


def _brute_region(region: IPv4Network, blocks: list[IPBlock]) -> frozenset[int]:
    return frozenset(
        i
        for i, b in enumerate(blocks)
        if region_inside(region, b.cidr)  # type: ignore[arg-type]
        and not any(isinstance(e, IPv4Network) and region_inside(region, e) for e in b.excepts)
    )


@pytest.mark.parametrize("seed", range(40))
def test_block_index_matches_all_pairs(seed: int) -> None:
    rng = random.Random(seed)
    blocks = _blocks(rng)
    index = BlockIndex((b.cidr, b.excepts) for b in blocks)  # type: ignore[misc]
    prefixes = {b.cidr for b in blocks} | {e for b in blocks for e in b.excepts}
    for region in regions({p for p in prefixes if isinstance(p, IPv4Network)}):
        assert index.of_region(region) == _brute_region(region, blocks), region
    for _ in range(200):
        ip = _prefix(rng).network_address + rng.randrange(256)
        brute = frozenset(i for i, b in enumerate(blocks) if ip_in_block(ip, b))
        assert index.of_address(ip) == brute, ip


KEYS = ("app", "tier", "env")
VALUES = ("a", "b", "c")


def _selector(rng: random.Random) -> LabelSelector:
    labels = tuple(
        sorted({rng.choice(KEYS): rng.choice(VALUES) for _ in range(rng.randint(0, 2))}.items())
    )
    expressions = []
    for _ in range(rng.randint(0, 2) if rng.random() < 0.4 else 0):
        op = rng.choice(("In", "NotIn", "Exists", "DoesNotExist"))
        values = tuple(sorted(rng.sample(VALUES, 2))) if op in ("In", "NotIn") else ()
        expressions.append(Requirement(rng.choice(KEYS), op, values))
    return LabelSelector(labels, tuple(expressions))


@pytest.mark.parametrize("seed", range(20))
def test_selector_index_matches_all_pairs(seed: int) -> None:
    rng = random.Random(seed)
    policies = tuple(
        NetworkPolicy(
            f"p{i}",
            rng.choice(("x", "y")),
            _selector(rng),
            rng.choice((("Ingress",), ("Egress",), ("Ingress", "Egress"))),
        )
        for i in range(60)
    )
    index = SelectorIndex(policies)
    for i in range(40):
        labels = {k: rng.choice(VALUES) for k in KEYS if rng.random() < 0.6}
        pod = Workload(f"w{i}", rng.choice(("x", "y", "z")), "n", tuple(sorted(labels.items())))
        for direction in ("ingress", "egress"):
            brute = [
                p
                for p in policies
                if p.namespace == pod.namespace
                and p.isolates(direction)
                and selector_matches(p.pod_selector, labels)
            ]
            assert index.selecting(pod, direction) == brute


def _brute_split(prefixes: set[IPv4Network]) -> list[Region]:
    nets = regions(prefixes)
    out = []
    for n in nets:
        inner = [m for m in nets if m != n and m.subnet_of(n)]
        holes = [m for m in inner if not any(o != m and m.subnet_of(o) for o in inner)]
        out.append(Region(n, tuple(sorted(holes))))
    return out


@pytest.mark.parametrize("seed", range(40))
def test_split_regions_matches_all_pairs(seed: int) -> None:
    rng = random.Random(seed)
    prefixes = {_prefix(rng) for _ in range(rng.randint(0, 30))}
    assert split_regions(prefixes) == _brute_split(prefixes)
