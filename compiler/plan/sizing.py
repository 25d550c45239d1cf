"""Sizing: every capacity of the datapath from the one registry, `netcc.contract.capacity`.

For each capacity of `CAPACITIES`, by its kind:
- `sized`: the need is the most entries any node holds in the maps naming it (their
  `MapDef.capacity`); the size is that with a quarter more room, rounded up to a power of two
  (at least `SIZED_FLOOR`), at most the limit; a need over the limit refuses the spec;
- `fixed`: the registry's value;
- `chosen`: the plan's own value (the verdict count, the Maglev size), refused over the limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from netcc.contract import capacity
from netcc.contract.maps import MapDef


class CapacityError(Exception):
    """A table does not fit the datapath; carries (message, spec path) pairs."""

    def __init__(self, problems: list[tuple[str, str]]):
        super().__init__("; ".join(m for m, _ in problems))
        self.problems = problems


def room(need: int) -> int:
    """A sized capacity for `need` entries: a quarter more, a power of two, the floor at least."""
    n = max(need + need // 4, capacity.SIZED_FLOOR)
    return 1 << (n - 1).bit_length()


def capacities(
    maps: Iterable[MapDef],
    node_maps: Iterable[Mapping[str, tuple]],
    chosen: Mapping[str, int],
    features: frozenset[str] = frozenset(),
    reserve: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Every capacity's value (of a datapath with `features`) for nodes holding `node_maps`
    (map name -> entries, per node); `chosen` gives the plan's values of the `chosen`
    capacities; `reserve` adds room per map for entries added at runtime (service backends
    of runtime pods), at most up to the limit. Raises CapacityError when a need exceeds its
    limit."""
    maps = list(maps)
    counts: dict[str, int] = {}
    for node in node_maps:
        for name, entries in node.items():
            counts[name] = max(counts.get(name, 0), len(entries))
    limits = {c.name: c.limit for c in capacity.capacities_for(features)}
    by_name = {m.name: m.capacity for m in maps}
    for name, extra in (reserve or {}).items():
        limit = limits.get(by_name.get(name, ""), 0)
        counts[name] = max(counts.get(name, 0), min(counts.get(name, 0) + extra, limit))
    named: dict[str, list[str]] = {}
    for m in maps:
        named.setdefault(m.capacity, []).append(m.name)
    out: dict[str, int] = {}
    problems = []
    for c in capacity.capacities_for(features):
        if c.kind == "fixed":
            out[c.name] = c.limit
            continue
        if c.kind == "chosen":
            need = chosen[c.name]
        else:
            need = max((counts.get(m, 0) for m in named.get(c.name, ())), default=0)
        if need > c.limit:
            problems.append(
                (
                    f"needs {need:,} entries in {c.name}; the datapath holds at most {c.limit:,}",
                    "spec",
                )
            )
        out[c.name] = need if c.kind == "chosen" else min(room(need), c.limit)
    if problems:
        raise CapacityError(problems)
    return out
