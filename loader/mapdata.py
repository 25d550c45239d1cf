"""Kernel maps filled from the compiler's map files, and read back, using `bpf/layout.json` alone.

The formats are the contract's: `layout.json` and packing entries with it in
`netcc.contract.layoutfile` (`Layout`), map files (`nodes/NODE/maps/MAP.json`) in
`netcc.contract.mapfile`. This module is what the loader does with them in the kernel, through
`netcc.loader.maps.BpfMap`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from netcc.contract.layoutfile import Layout, LayoutError, MapLayout
from netcc.contract.mapfile import load_map_file

from . import libbpf
from .maps import BpfMap

if TYPE_CHECKING:
    from .libbpf import BpfObject

__all__ = [
    "Layout",
    "LayoutError",
    "MapLayout",
    "fill_map",
    "fill_maps",
    "load_map_file",
    "read_map",
    "verdict_counters",
]


def _check_kernel_map(fd: int, layout: Layout, m: MapLayout) -> None:
    info = libbpf.map_info(fd)
    want = (libbpf.MAP_TYPES.get(m.type), layout.size(m.key), layout.size(m.value))
    got = (info["type"], info["key_size"], info["value_size"])
    if want != got:
        raise LayoutError(f"map {m.name}: layout says type/key/value {want}, kernel map has {got}")


def fill_map(fd: int, layout: Layout, map_name: str, entries: list[dict]) -> int:
    """Write the entries of one map (after checking the kernel map matches the layout);
    a per-CPU map gets the value in every CPU's slot. Returns the number written."""
    return _write(fd, layout, map_name, layout.pack_entries(map_name, entries))


def _write(fd: int, layout: Layout, map_name: str, packed: list[tuple[bytes, bytes]]) -> int:
    m = BpfMap.borrow(fd, map_name, layout)
    _check_kernel_map(fd, layout, m.spec)
    ncpus = libbpf.num_possible_cpus() if m.percpu else 1
    for i, (key, value) in enumerate(packed):
        try:
            if m.percpu:
                m.put_percpu(key, [value] * ncpus)
            else:
                m.put(key, value)
        except libbpf.BpfError as e:
            raise libbpf.BpfError(e.errno, f"map {map_name} entry {i}: {e.message}", e.log) from e
    return len(packed)


def read_map(fd: int, layout: Layout, map_name: str) -> list[dict]:
    """Current entries as {"key", "value"}; per-CPU maps give a list of values per CPU."""
    return BpfMap.borrow(fd, map_name, layout).decoded()


def fill_maps(obj: BpfObject, layout: Layout, maps_dir: Path) -> dict[str, int]:
    """Fill every `<map>.json` of `maps_dir` into the loaded object's maps. Every file is
    packed, and every map found, before anything is written. Returns entries per map."""
    todo: list[tuple[str, int, list[tuple[bytes, bytes]]]] = []
    for path in sorted(Path(maps_dir).glob("*.json")):
        name, entries = load_map_file(path)
        if name != path.stem:
            raise LayoutError(f"{path}: names map {name!r}, expected {path.stem!r}")
        todo.append((name, obj.map_fd(name), layout.pack_entries(name, entries)))
    return {name: _write(fd, layout, name, packed) for name, fd, packed in todo}


def verdict_counters(fd: int, layout: Layout, map_name: str) -> dict[int, tuple[int, int]]:
    """verdict number -> (packets, bytes) of a per-CPU counter map, summed over CPUs."""
    m = BpfMap.borrow(fd, map_name, layout)
    out = {}
    for n in range(m.spec.max_entries):
        values = [m.unpack_value(v) for v in m.get_percpu(n.to_bytes(4, "little"))]
        out[n] = (sum(v["packets"] for v in values), sum(v["bytes"] for v in values))
    return out


EVENT_COUNTERS = ("sent", "lost_budget", "lost_ring")  # of netcc_event_budget's value


def event_counters(budget: BpfMap) -> dict[str, int]:
    """The flow event counters of `netcc_event_budget` (its one slot), summed over CPUs."""
    slots = [budget.unpack_value(v) for v in budget.get_percpu(bytes(4))]
    return {k: sum(s[k] for s in slots) for k in EVENT_COUNTERS}
