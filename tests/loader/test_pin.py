"""Pinning: maps reused across reloads through pin_root, programs through obj_pin/obj_get."""

from __future__ import annotations

import errno
import os
import struct
from pathlib import Path

import pytest

from netcc.loader import bpffs, libbpf
from netcc.loader.libbpf import BpfError, BpfObject

PORT_KEY = struct.pack("!HBx", 22, 6)
DENY = struct.pack("<I4sHBx", 40, bytes(4), 0, 0)


def test_ensure_bpffs_is_idempotent() -> None:
    bpffs.ensure_bpffs()
    assert bpffs.ensure_bpffs() is False
    assert bpffs.is_bpffs("/sys/fs/bpf")


def test_pinned_maps_survive_reload(objs: dict[str, Path], pin_dir: Path) -> None:
    root = pin_dir / "maps"
    with BpfObject.open(objs["test_prog"], pin_root=str(root)) as first:
        first.load()
        libbpf.map_update(first.map_fd("deny_port"), PORT_KEY, DENY)
        first_id = libbpf.map_info(first.map_fd("deny_port"))["id"]
    # Only the object's own maps are pinned, not libbpf internal ones.
    assert sorted(os.listdir(root)) == ["deny_cidr", "deny_port", "seen", "stats"]

    with BpfObject.open(objs["test_prog"], pin_root=str(root)) as second:
        second.load()
        fd = second.map_fd("deny_port")
        assert libbpf.map_info(fd)["id"] == first_id
        assert libbpf.map_lookup(fd, PORT_KEY, 12) == DENY
        second.unpin_maps()
    assert os.listdir(root) == []


def test_pinned_map_from_another_object(objs: dict[str, Path], pin_dir: Path) -> None:
    with BpfObject.open(objs["test_prog"], pin_root=str(pin_dir)) as o:
        o.load()
        libbpf.map_update(o.map_fd("deny_port"), PORT_KEY, DENY)
    fd = libbpf.obj_get(pin_dir / "deny_port")
    try:
        assert libbpf.map_lookup(fd, PORT_KEY, 12) == DENY
    finally:
        os.close(fd)


def test_incompatible_pin_fails_load(objs: dict[str, Path], pin_dir: Path) -> None:
    with BpfObject.open(objs["test_prog"]) as o:
        o.load()
        libbpf.obj_pin(o.map_fd("seen"), pin_dir / "deny_port")  # wrong key/value sizes
    with BpfObject.open(objs["test_prog"], pin_root=str(pin_dir)) as o, pytest.raises(BpfError):
        o.load()


def test_prog_pin_and_get(obj: BpfObject, pin_dir: Path) -> None:
    prog = obj.prog_fd("netcc_test")
    path = pin_dir / "prog"
    libbpf.obj_pin(prog, path)
    with pytest.raises(BpfError) as e:
        libbpf.obj_pin(prog, path)
    assert e.value.errno == errno.EEXIST
    fd = libbpf.obj_get(path)
    try:
        assert libbpf.prog_info(fd)["id"] == libbpf.prog_info(prog)["id"]
    finally:
        os.close(fd)
    with pytest.raises(BpfError) as e:
        libbpf.obj_get(pin_dir / "missing")
    assert e.value.errno == errno.ENOENT
