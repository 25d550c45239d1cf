"""netcc.loader.mapdata against the kernel: map files fill a loaded object's maps (checked
before anything is written), read back, and the program sees them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netcc.loader import libbpf
from netcc.loader.libbpf import BpfObject
from netcc.loader.mapdata import Layout, LayoutError, fill_map, fill_maps, read_map
from netcc.loader.testrun import TC_ACT_OK, TC_ACT_SHOT, ipv4_packet, run_tc

DENY = {"mark": 0, "weight": 0, "class": 0}  # deny_entry's other fields: every one is given


def write_maps(directory: Path, files: dict[str, list[dict]]) -> Path:
    directory.mkdir()
    for name, entries in files.items():
        (directory / f"{name}.json").write_text(json.dumps({"map": name, "entries": entries}))
    return directory


def test_fill_maps_and_run(obj: BpfObject, layout: Layout, tmp_path: Path) -> None:
    maps_dir = write_maps(
        tmp_path / "maps",
        {
            "deny_cidr": [
                {"key": {"prefixlen": 16, "ip": "10.1.0.0"}, "value": {"verdict": 33, **DENY}}
            ],
            "deny_port": [{"key": {"port": 22, "proto": 6}, "value": {"verdict": 34, **DENY}}],
            "stats": [{"key": 7, "value": {"packets": 5, "bytes": 500}}],
        },
    )
    assert fill_maps(obj, layout, maps_dir) == {"deny_cidr": 1, "deny_port": 1, "stats": 1}
    prog = obj.prog_fd("netcc_test")
    assert run_tc(prog, ipv4_packet("10.1.0.5", "10.0.0.2", "udp", 1, 53)).retval == TC_ACT_SHOT
    assert run_tc(prog, ipv4_packet("10.2.0.5", "10.0.0.2", "tcp", 1, 22)).retval == TC_ACT_SHOT
    assert run_tc(prog, ipv4_packet("10.2.0.5", "10.0.0.2", "tcp", 1, 23)).retval == TC_ACT_OK

    cidrs = read_map(obj.map_fd("deny_cidr"), layout, "deny_cidr")
    assert cidrs == [
        {
            "key": {"prefixlen": 16, "ip": "10.1.0.0"},
            "value": {"verdict": 33, "mark": 0, "weight": 0, "class": 0},
        }
    ]
    stats = {e["key"]: e["value"] for e in read_map(obj.map_fd("stats"), layout, "stats")}
    ncpus = libbpf.num_possible_cpus()
    assert stats[7] == [{"packets": 5, "bytes": 500}] * ncpus  # per-CPU: every CPU's slot
    assert sum(v["packets"] for v in stats[33]) == 1
    seen = read_map(obj.map_fd("seen"), layout, "seen")
    assert sorted(e["key"]["src"] for e in seen) == ["10.1.0.5", "10.2.0.5"]


def test_fill_maps_validates_before_writing(obj: BpfObject, layout: Layout, tmp_path: Path) -> None:
    maps_dir = write_maps(
        tmp_path / "maps",
        {
            "deny_cidr": [
                {"key": {"prefixlen": 16, "ip": "10.1.0.0"}, "value": {"verdict": 33, **DENY}}
            ],
            "deny_port": [{"key": {"port": 22, "proto": 600}, "value": {"verdict": 1, **DENY}}],
        },
    )
    with pytest.raises(LayoutError, match=r"map deny_port entry 0: port_key.proto"):
        fill_maps(obj, layout, maps_dir)
    assert libbpf.map_keys(obj.map_fd("deny_cidr"), 8) == []  # nothing written

    (maps_dir / "deny_port.json").write_text(json.dumps({"map": "seen", "entries": []}))
    with pytest.raises(LayoutError, match="names map 'seen', expected 'deny_port'"):
        fill_maps(obj, layout, maps_dir)


def test_fill_map_checks_kernel_map(obj: BpfObject, layout: Layout) -> None:
    with pytest.raises(LayoutError, match="map deny_port: layout says"):
        fill_map(
            obj.map_fd("seen"),
            layout,
            "deny_port",
            [{"key": {"port": 1, "proto": 6}, "value": {"verdict": 1, **DENY}}],
        )
