"""netcc.loader.libbpf against the kernel: objects, verifier errors, maps, test runs.

Its ctypes structs and error type, which need no kernel, are test_libbpf_types.py's."""

from __future__ import annotations

import errno
import ipaddress
import os
import struct
from pathlib import Path

import pytest

from netcc.loader import libbpf
from netcc.loader.libbpf import BpfError, BpfObject
from netcc.loader.testrun import (
    TC_ACT_OK,
    TC_ACT_SHOT,
    arp_packet,
    ipv4_packet,
    ipv6_packet,
    run_tc,
)


def lpm_key(cidr: str) -> bytes:
    net = ipaddress.IPv4Network(cidr)
    return struct.pack("<I", net.prefixlen) + net.network_address.packed


def deny_entry(verdict: int) -> bytes:
    return struct.pack("<I4sHBx", verdict, bytes(4), 0, 0)


def u32(i: int) -> bytes:
    return struct.pack("<I", i)


# --- objects -------------------------------------------------------------------------------


def test_open_load_names(obj: BpfObject) -> None:
    assert obj.program_names() == ["netcc_test"]
    assert sorted(obj.map_names()) == ["deny_cidr", "deny_port", "seen", "stats"]
    assert obj.prog_fd("netcc_test") > 0
    assert all(obj.map_fd(m) > 0 for m in obj.map_names())


def test_unknown_names_and_closed_object(objs: dict[str, Path]) -> None:
    o = BpfObject.open(objs["test_prog"])
    try:
        with pytest.raises(BpfError, match="not loaded"):
            o.prog_fd("netcc_test")
        o.load()
        with pytest.raises(BpfError, match="no map 'nope'") as e:
            o.map_fd("nope")
        assert e.value.errno == errno.ENOENT
        with pytest.raises(BpfError, match="no program 'nope'"):
            o.prog_fd("nope")
    finally:
        o.close()
    o.close()  # idempotent
    with pytest.raises(BpfError) as e:
        o.map_names()
    assert e.value.errno == errno.EBADF


def test_open_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BpfError) as e:
        BpfObject.open(tmp_path / "missing.o")
    assert e.value.errno == errno.ENOENT


def test_verifier_failure_keeps_log(objs: dict[str, Path]) -> None:
    with BpfObject.open(objs["bad_prog"]) as o, pytest.raises(BpfError) as e:
        o.load()
    assert e.value.errno == errno.EACCES
    assert "invalid mem access 'map_value_or_null'" in e.value.log
    assert "BEGIN PROG LOAD LOG" in e.value.log


def test_close_releases_fds(objs: dict[str, Path]) -> None:
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_fds()
    for _ in range(3):
        with BpfObject.open(objs["test_prog"]) as o:
            o.load()
        with BpfObject.open(objs["bad_prog"]) as o, pytest.raises(BpfError):
            o.load()
    assert open_fds() == before


def test_prog_info(obj: BpfObject) -> None:
    info = libbpf.prog_info(obj.prog_fd("netcc_test"))
    assert info["name"] == "netcc_test"
    assert info["type"] == libbpf.BPF_PROG_TYPE_SCHED_CLS
    assert info["id"] > 0 and info["verified_insns"] > 0
    assert info["xlated_len"] > 0 and info["jited_len"] > 0
    assert info["run_cnt"] >= 0 and info["run_time_ns"] >= 0


# --- maps ----------------------------------------------------------------------------------


def test_hash_update_lookup_delete_keys(obj: BpfObject) -> None:
    fd = obj.map_fd("deny_port")
    keys = [struct.pack("!HBx", port, 6) for port in (22, 80, 443)]
    for i, k in enumerate(keys):
        libbpf.map_update(fd, k, deny_entry(40 + i))
    assert sorted(libbpf.map_keys(fd, 4)) == sorted(keys)
    assert libbpf.map_lookup(fd, keys[1], 12) == deny_entry(41)
    libbpf.map_update(fd, keys[1], deny_entry(50), libbpf.BPF_EXIST)
    assert libbpf.map_lookup(fd, keys[1], 12) == deny_entry(50)
    with pytest.raises(BpfError) as e:
        libbpf.map_update(fd, keys[1], deny_entry(51), libbpf.BPF_NOEXIST)
    assert e.value.errno == errno.EEXIST
    assert libbpf.map_delete(fd, keys[1]) is True
    assert libbpf.map_delete(fd, keys[1]) is False
    assert libbpf.map_lookup(fd, keys[1], 12) is None
    assert sorted(libbpf.map_keys(fd, 4)) == sorted([keys[0], keys[2]])


def test_lpm_and_lru(obj: BpfObject) -> None:
    fd = obj.map_fd("deny_cidr")
    libbpf.map_update(fd, lpm_key("10.1.0.0/16"), deny_entry(33))
    libbpf.map_update(fd, lpm_key("10.1.2.0/24"), deny_entry(34))
    # An LPM lookup with a /32 key finds the longest prefix.
    assert libbpf.map_lookup(fd, lpm_key("10.1.2.3/32"), 12) == deny_entry(34)
    assert libbpf.map_lookup(fd, lpm_key("10.1.9.9/32"), 12) == deny_entry(33)
    assert libbpf.map_lookup(fd, lpm_key("10.2.0.1/32"), 12) is None
    assert len(libbpf.map_keys(fd, 8)) == 2
    lru = obj.map_fd("seen")
    libbpf.map_update(lru, bytes([10, 0, 0, 9]), struct.pack("<Q", 7))
    assert libbpf.map_lookup(lru, bytes([10, 0, 0, 9]), 8) == struct.pack("<Q", 7)
    info = libbpf.map_info(lru)
    assert info["name"] == "seen" and info["type"] == libbpf.MAP_TYPES["lru_hash"]
    assert (info["key_size"], info["value_size"], info["max_entries"]) == (4, 8, 128)


def test_percpu(obj: BpfObject) -> None:
    fd = obj.map_fd("stats")
    ncpus = libbpf.num_possible_cpus()
    values = [struct.pack("<QQ", cpu, 100 + cpu) for cpu in range(ncpus)]
    libbpf.map_update_percpu(fd, u32(5), values)
    assert libbpf.map_lookup_percpu(fd, u32(5), 16) == values
    assert len(libbpf.map_keys(fd, 4)) == 64  # arrays have every index
    with pytest.raises(ValueError, match="per-CPU update needs"):
        libbpf.map_update_percpu(fd, u32(5), values[:1] * (ncpus + 1))


# --- test runs -----------------------------------------------------------------------------


def test_prog_test_run_verdicts(obj: BpfObject) -> None:
    prog = obj.prog_fd("netcc_test")
    pkt = ipv4_packet("10.1.2.3", "10.0.0.2", "tcp", 40000, 80)
    r = run_tc(prog, pkt)
    assert r.retval == TC_ACT_OK
    assert r.data_out == pkt

    libbpf.map_update(obj.map_fd("deny_cidr"), lpm_key("10.1.0.0/16"), deny_entry(33))
    assert run_tc(prog, pkt, repeat=3).retval == TC_ACT_SHOT
    other = ipv4_packet("10.9.0.1", "10.0.0.2", "tcp", 40000, 80)
    assert run_tc(prog, other).retval == TC_ACT_OK

    libbpf.map_update(obj.map_fd("deny_port"), struct.pack("!HBx", 80, 6), deny_entry(35))
    assert run_tc(prog, other).retval == TC_ACT_SHOT
    udp = ipv4_packet("10.9.0.1", "10.0.0.2", "udp", 40000, 80)
    assert run_tc(prog, udp).retval == TC_ACT_OK

    # Counters: 3 runs under verdict 33, 1 under 35; the source was recorded.
    per_cpu = libbpf.map_lookup_percpu(obj.map_fd("stats"), u32(33), 16)
    assert sum(struct.unpack("<QQ", v)[0] for v in per_cpu) == 3
    assert sum(struct.unpack("<QQ", v)[1] for v in per_cpu) == 3 * len(pkt)
    seen = libbpf.map_lookup(obj.map_fd("seen"), bytes([10, 1, 2, 3]), 8)
    assert seen is not None and struct.unpack("<Q", seen)[0] == 4  # 1 + repeat 3


def test_prog_test_run_with_ctx_and_duration(obj: BpfObject) -> None:
    prog = obj.prog_fd("netcc_test")
    pkt = ipv4_packet("10.1.2.3", "10.0.0.2", "udp", 1, 53)
    ctx = bytes(192)  # a zeroed struct __sk_buff
    r = libbpf.prog_test_run(prog, pkt, repeat=10, ctx=ctx)
    assert r.retval == TC_ACT_OK and r.duration_ns >= 0
    with pytest.raises(BpfError):
        libbpf.prog_test_run(prog, b"\x00" * 4)  # shorter than an Ethernet header


def test_run_tc_non_ip_and_ipv6_pass(obj: BpfObject) -> None:
    prog = obj.prog_fd("netcc_test")
    assert run_tc(prog, arp_packet()).retval == TC_ACT_OK
    assert run_tc(prog, ipv6_packet("fd00::1", "fd00::2", "udp", 1, 2)).retval == TC_ACT_OK
    assert TC_ACT_SHOT == 2
