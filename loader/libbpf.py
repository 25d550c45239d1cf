"""Kernel access through the system libbpf (libbpf.so.1, v1.1) via ctypes.

Everything goes through libbpf: objects, maps, programs, pins and test runs. Messages libbpf
prints while an operation runs (including the verifier log of a failed load) are captured
and attached to the `BpfError` that operation raises. The library is loaded on first use,
so importing this module works on hosts without libbpf.

Longer than most modules (~570 lines) on purpose: it is the one ctypes binding of one C
library, and much of it mirrors libbpf's and the kernel's structs field by field. Maps are
used through `netcc.loader.maps.BpfMap`, hooks through `netcc.loader.link`.
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
import logging
import os
import platform
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_bool,
    c_char,
    c_char_p,
    c_int,
    c_size_t,
    c_uint8,
    c_uint32,
    c_uint64,
    c_void_p,
)
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# bpf_map_update_elem flags
BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2

# enum bpf_map_type values used by netcc
MAP_TYPES = {
    "hash": 1,
    "array": 2,
    "percpu_hash": 5,
    "percpu_array": 6,
    "lru_hash": 9,
    "lru_percpu_hash": 10,
    "lpm_trie": 11,
    "ringbuf": 27,
}
BPF_PROG_TYPE_SCHED_CLS = 3

LIBBPF_WARN, LIBBPF_INFO, LIBBPF_DEBUG = 0, 1, 2
BPF_OBJ_NAME_LEN = 16
BPF_TAG_SIZE = 8


class BpfError(Exception):
    """A failed libbpf or kernel operation: `errno` and the libbpf/verifier `log`."""

    def __init__(self, errno: int, message: str, log: str = "") -> None:
        self.errno = errno
        self.message = message
        self.log = log
        super().__init__(f"{message}: {os.strerror(errno)} (errno {errno})")


@dataclass(frozen=True)
class TestRun:
    """Result of BPF_PROG_TEST_RUN: return value, mean duration per run, output packet."""

    __test__ = False  # not a pytest class

    retval: int
    duration_ns: int
    data_out: bytes


# --- struct layouts (libbpf 1.1 bpf.h, linux/bpf.h) -------------------------------------


class bpf_test_run_opts(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("data_in", c_void_p),
        ("data_out", c_void_p),
        ("data_size_in", c_uint32),
        ("data_size_out", c_uint32),
        ("ctx_in", c_void_p),
        ("ctx_out", c_void_p),
        ("ctx_size_in", c_uint32),
        ("ctx_size_out", c_uint32),
        ("retval", c_uint32),
        ("repeat", c_int),
        ("duration", c_uint32),
        ("flags", c_uint32),
        ("cpu", c_uint32),
        ("batch_size", c_uint32),
    ]


class bpf_prog_info(Structure):
    _fields_ = [
        ("type", c_uint32),
        ("id", c_uint32),
        ("tag", c_uint8 * BPF_TAG_SIZE),
        ("jited_prog_len", c_uint32),
        ("xlated_prog_len", c_uint32),
        ("jited_prog_insns", c_uint64),
        ("xlated_prog_insns", c_uint64),
        ("load_time", c_uint64),
        ("created_by_uid", c_uint32),
        ("nr_map_ids", c_uint32),
        ("map_ids", c_uint64),
        ("name", c_char * BPF_OBJ_NAME_LEN),
        ("ifindex", c_uint32),
        ("gpl_compatible", c_uint32, 1),
        ("_pad0", c_uint32, 31),
        ("netns_dev", c_uint64),
        ("netns_ino", c_uint64),
        ("nr_jited_ksyms", c_uint32),
        ("nr_jited_func_lens", c_uint32),
        ("jited_ksyms", c_uint64),
        ("jited_func_lens", c_uint64),
        ("btf_id", c_uint32),
        ("func_info_rec_size", c_uint32),
        ("func_info", c_uint64),
        ("nr_func_info", c_uint32),
        ("nr_line_info", c_uint32),
        ("line_info", c_uint64),
        ("jited_line_info", c_uint64),
        ("nr_jited_line_info", c_uint32),
        ("line_info_rec_size", c_uint32),
        ("jited_line_info_rec_size", c_uint32),
        ("nr_prog_tags", c_uint32),
        ("prog_tags", c_uint64),
        ("run_time_ns", c_uint64),
        ("run_cnt", c_uint64),
        ("recursion_misses", c_uint64),
        ("verified_insns", c_uint32),
        ("attach_btf_obj_id", c_uint32),
        ("attach_btf_id", c_uint32),
        ("_pad1", c_uint32),
    ]


class bpf_map_info(Structure):
    _fields_ = [
        ("type", c_uint32),
        ("id", c_uint32),
        ("key_size", c_uint32),
        ("value_size", c_uint32),
        ("max_entries", c_uint32),
        ("map_flags", c_uint32),
        ("name", c_char * BPF_OBJ_NAME_LEN),
        ("ifindex", c_uint32),
        ("btf_vmlinux_value_type_id", c_uint32),
        ("netns_dev", c_uint64),
        ("netns_ino", c_uint64),
        ("btf_id", c_uint32),
        ("btf_key_type_id", c_uint32),
        ("btf_value_type_id", c_uint32),
        ("_pad0", c_uint32),
        ("map_extra", c_uint64),
    ]


# --- library loading and the print callback -----------------------------------------------

# libbpf_print_fn_t: int (*)(enum libbpf_print_level, const char *, va_list). On x86_64 and
# aarch64 a va_list parameter arrives as a pointer to the caller's va_list state.
_PRINT_FN = CFUNCTYPE(c_int, c_int, c_char_p, c_void_p)
# Size of that state, so it can be copied (va_copy) to format a message of any length.
_VA_LIST_SIZE = {"x86_64": 24, "amd64": 24, "aarch64": 32, "arm64": 32}.get(
    platform.machine().lower(), 0
)
_FALLBACK_BUF = 1 << 20

_P = c_void_p  # opaque libbpf pointers
_PROTOS = {
    "libbpf_set_print": (_PRINT_FN, [_PRINT_FN]),
    "libbpf_num_possible_cpus": (c_int, []),
    "libbpf_probe_bpf_prog_type": (c_int, [c_int, c_void_p]),
    "bpf_object__open_file": (_P, [c_char_p, c_void_p]),
    "bpf_object__load": (c_int, [_P]),
    "bpf_object__close": (None, [_P]),
    "bpf_object__unpin_maps": (c_int, [_P, c_char_p]),
    "bpf_object__next_map": (_P, [_P, _P]),
    "bpf_object__next_program": (_P, [_P, _P]),
    "bpf_object__find_map_by_name": (_P, [_P, c_char_p]),
    "bpf_object__find_program_by_name": (_P, [_P, c_char_p]),
    "bpf_map__name": (c_char_p, [_P]),
    "bpf_map__is_internal": (c_bool, [_P]),
    "bpf_map__set_pin_path": (c_int, [_P, c_char_p]),
    "bpf_map__fd": (c_int, [_P]),
    "bpf_program__name": (c_char_p, [_P]),
    "bpf_program__fd": (c_int, [_P]),
    "bpf_map_update_elem": (c_int, [c_int, c_void_p, c_void_p, c_uint64]),
    "bpf_map_lookup_elem": (c_int, [c_int, c_void_p, c_void_p]),
    "bpf_map_delete_elem": (c_int, [c_int, c_void_p]),
    "bpf_map_get_next_key": (c_int, [c_int, c_void_p, c_void_p]),
    "bpf_obj_get_info_by_fd": (c_int, [c_int, c_void_p, POINTER(c_uint32)]),
    "bpf_obj_pin": (c_int, [c_int, c_char_p]),
    "bpf_obj_get": (c_int, [c_char_p]),
    "bpf_prog_test_run_opts": (c_int, [c_int, POINTER(bpf_test_run_opts)]),
    "ring_buffer__new": (_P, [c_int, c_void_p, c_void_p, c_void_p]),
    "ring_buffer__poll": (c_int, [_P, c_int]),
    "ring_buffer__consume": (c_int, [_P]),
    "ring_buffer__free": (None, [_P]),
    "ring_buffer__epoll_fd": (c_int, [_P]),
}

_lock = threading.Lock()
_lib_handle: ctypes.CDLL | None = None
_libc: ctypes.CDLL | None = None
_print_cb = None  # keeps the ctypes callback alive
_tls = threading.local()


def _vformat(fmt: bytes, ap: int) -> str:
    """Format a printf message from a va_list with libc vsnprintf."""
    assert _libc is not None
    if _VA_LIST_SIZE:
        copy = (c_char * _VA_LIST_SIZE)()
        ctypes.memmove(copy, ap, _VA_LIST_SIZE)  # va_copy: the state is a plain struct
        n = _libc.vsnprintf(None, 0, fmt, ctypes.addressof(copy))
        buf = ctypes.create_string_buffer(max(n, 0) + 1)
        _libc.vsnprintf(buf, len(buf), fmt, ap)
    else:
        buf = ctypes.create_string_buffer(_FALLBACK_BUF)
        _libc.vsnprintf(buf, len(buf), fmt, ap)
    return buf.value.decode("utf-8", "replace")


def _on_print(level: int, fmt: bytes, ap: int) -> int:
    try:
        text = _vformat(fmt, ap)
        captures = getattr(_tls, "captures", None)
        if captures and level <= LIBBPF_INFO:
            captures[-1].append(text)
        log.debug("libbpf: %s", text.rstrip())
    except Exception:  # never let an exception cross into C
        pass
    return 0


def _lib() -> ctypes.CDLL:
    """The libbpf handle, with prototypes set and the print callback installed."""
    global _lib_handle, _libc, _print_cb
    if _lib_handle is not None:
        return _lib_handle
    with _lock:
        if _lib_handle is None:
            lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
            for name, (restype, argtypes) in _PROTOS.items():
                fn = getattr(lib, name)
                fn.restype, fn.argtypes = restype, argtypes
            libc = ctypes.CDLL(None, use_errno=True)
            libc.vsnprintf.restype = c_int
            libc.vsnprintf.argtypes = [c_char_p, c_size_t, c_char_p, c_void_p]
            _libc = libc
            _print_cb = _PRINT_FN(_on_print)
            lib.libbpf_set_print(_print_cb)
            _lib_handle = lib
    return _lib_handle


@contextmanager
def _capture() -> Iterator[list[str]]:
    """Collect the libbpf messages printed by this thread during one operation."""
    stack = getattr(_tls, "captures", None)
    if stack is None:
        stack = _tls.captures = []
    buf: list[str] = []
    stack.append(buf)
    try:
        yield buf
    finally:
        stack.pop()


def _check(ret: int, what: str, buf: list[str] | None = None) -> int:
    """Raise BpfError for a negative libbpf return (-errno); return it otherwise."""
    if ret < 0:
        raise BpfError(-ret, what, "".join(buf or ()))
    return ret


def _errno_or(default: int = errno_mod.EINVAL) -> int:
    return ctypes.get_errno() or default


def _buf(data: bytes) -> ctypes.Array:
    return ctypes.create_string_buffer(bytes(data), len(data))


def num_possible_cpus() -> int:
    """Number of possible CPUs: the slot count of per-CPU map values."""
    return _check(_lib().libbpf_num_possible_cpus(), "libbpf_num_possible_cpus")


def bpf_unavailable_reason() -> str | None:
    """None if this process can load tc programs; otherwise why not."""
    if os.geteuid() != 0:
        return "needs root (CAP_BPF/CAP_NET_ADMIN) to load BPF programs"
    try:
        lib = _lib()
    except OSError as e:
        return f"system libbpf.so.1 not found: {e}"
    with _capture():
        ret = lib.libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SCHED_CLS, None)
    if ret < 0:
        return f"BPF probe failed: {os.strerror(-ret)}"
    if ret == 0:
        return "kernel does not support tc (SCHED_CLS) BPF programs"
    return None


# --- objects -------------------------------------------------------------------------------


class BpfObject:
    """A BPF ELF object opened with libbpf; use as a context manager to close it."""

    def __init__(self, ptr: int, path: Path, pin_root: str | None) -> None:
        self._ptr: int | None = ptr
        self.path = path
        self.pin_root = pin_root
        self.loaded = False

    @classmethod
    def open(cls, path: str | Path, pin_root: str | None = None) -> BpfObject:
        """Open an object file. With `pin_root`, its maps are reused from or pinned at
        `pin_root/<map>` when loaded (libbpf internal maps such as .rodata are not pinned)."""
        lib = _lib()
        path = Path(path)
        with _capture() as buf:
            ptr = lib.bpf_object__open_file(os.fsencode(path), None)
            if not ptr:
                raise BpfError(_errno_or(), f"opening BPF object {path}", "".join(buf))
        obj = cls(ptr, path, pin_root)
        if pin_root is not None:
            try:
                os.makedirs(pin_root, exist_ok=True)
                for m in obj._maps(internal=False):
                    pin = os.path.join(pin_root, lib.bpf_map__name(m).decode())
                    with _capture() as buf:
                        _check(lib.bpf_map__set_pin_path(m, pin.encode()), f"pin path {pin}", buf)
            except BaseException:
                obj.close()
                raise
        return obj

    def _obj(self) -> int:
        if self._ptr is None:
            raise BpfError(errno_mod.EBADF, f"BPF object {self.path} is closed")
        return self._ptr

    def _maps(self, internal: bool = True) -> list[int]:
        lib, obj, out, m = _lib(), self._obj(), [], None
        while m := lib.bpf_object__next_map(obj, m):
            if internal or not lib.bpf_map__is_internal(m):
                out.append(m)
        return out

    def _progs(self) -> list[int]:
        lib, obj, out, p = _lib(), self._obj(), [], None
        while p := lib.bpf_object__next_program(obj, p):
            out.append(p)
        return out

    def load(self) -> None:
        """Create maps (or reuse pinned ones) and load programs; BpfError carries the
        verifier log on failure."""
        with _capture() as buf:
            ret = _lib().bpf_object__load(self._obj())
            _check(ret, f"loading BPF object {self.path}", buf)
        self.loaded = True

    def program_names(self) -> list[str]:
        """Names (C function names) of the object's programs."""
        return [_lib().bpf_program__name(p).decode() for p in self._progs()]

    def map_names(self, internal: bool = False) -> list[str]:
        """Names of the object's maps; libbpf internal maps (.rodata, .bss...) if `internal`."""
        return [_lib().bpf_map__name(m).decode() for m in self._maps(internal)]

    def prog_fd(self, name: str) -> int:
        """The fd of a loaded program (owned by the object)."""
        lib = _lib()
        prog = lib.bpf_object__find_program_by_name(self._obj(), name.encode())
        if not prog:
            known = ", ".join(self.program_names())
            raise BpfError(errno_mod.ENOENT, f"no program {name!r} in {self.path} ({known})")
        return _check(lib.bpf_program__fd(prog), f"program {name!r} is not loaded")

    def map_fd(self, name: str) -> int:
        """The fd of a created map (owned by the object)."""
        lib = _lib()
        m = lib.bpf_object__find_map_by_name(self._obj(), name.encode())
        if not m:
            known = ", ".join(self.map_names(internal=True))
            raise BpfError(errno_mod.ENOENT, f"no map {name!r} in {self.path} ({known})")
        return _check(lib.bpf_map__fd(m), f"map {name!r} is not created")

    def unpin_maps(self) -> None:
        """Remove the pins of maps that have a pin path (see `open(pin_root=...)`)."""
        with _capture() as buf:
            _check(_lib().bpf_object__unpin_maps(self._obj(), None), "unpinning maps", buf)

    def close(self) -> None:
        """Free the object and close its fds; pins stay. Idempotent."""
        if self._ptr is not None:
            ptr, self._ptr = self._ptr, None
            _lib().bpf_object__close(ptr)

    def __enter__(self) -> BpfObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with suppress(Exception):
            self.close()


# --- maps ----------------------------------------------------------------------------------


def map_update(fd: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
    """Insert or replace one element (for per-CPU maps, `value` holds every CPU's slot)."""
    ret = _lib().bpf_map_update_elem(fd, _buf(key), _buf(value), flags)
    _check(ret, f"updating map fd {fd}")


def map_lookup(fd: int, key: bytes, value_size: int) -> bytes | None:
    """The value under `key`, or None if absent."""
    out = ctypes.create_string_buffer(value_size)
    ret = _lib().bpf_map_lookup_elem(fd, _buf(key), out)
    if ret == -errno_mod.ENOENT:
        return None
    _check(ret, f"looking up map fd {fd}")
    return out.raw


def _percpu_stride(value_size: int) -> int:
    return (value_size + 7) & ~7


def map_lookup_percpu(fd: int, key: bytes, value_size: int) -> list[bytes]:
    """One value per possible CPU (empty list if the key is absent)."""
    stride, ncpus = _percpu_stride(value_size), num_possible_cpus()
    raw = map_lookup(fd, key, stride * ncpus)
    if raw is None:
        return []
    return [raw[i * stride : i * stride + value_size] for i in range(ncpus)]


def map_update_percpu(fd: int, key: bytes, values: list[bytes], flags: int = BPF_ANY) -> None:
    """Set one value per possible CPU (`values` must have num_possible_cpus() items)."""
    ncpus = num_possible_cpus()
    if len(values) != ncpus:
        raise ValueError(f"per-CPU update needs {ncpus} values, got {len(values)}")
    size = len(values[0]) if values else 0
    stride = _percpu_stride(size)
    blob = b"".join(v.ljust(stride, b"\0") for v in values)
    map_update(fd, key, blob, flags)


def map_delete(fd: int, key: bytes) -> bool:
    """Delete `key`; False if it was absent."""
    ret = _lib().bpf_map_delete_elem(fd, _buf(key))
    if ret == -errno_mod.ENOENT:
        return False
    _check(ret, f"deleting from map fd {fd}")
    return True


def map_keys(fd: int, key_size: int) -> list[bytes]:
    """All keys, in the kernel's iteration order."""
    lib, keys = _lib(), []
    cur = None
    nxt = ctypes.create_string_buffer(key_size)
    while True:
        ret = lib.bpf_map_get_next_key(fd, cur, nxt)
        if ret == -errno_mod.ENOENT:
            return keys
        _check(ret, f"iterating map fd {fd}")
        keys.append(nxt.raw)
        cur = _buf(nxt.raw)


def map_count(fd: int, key_size: int, limit: int) -> int:
    """How many distinct keys a hash map holds, walked with bpf_map_get_next_key (one syscall
    each). A walk whose key was evicted meanwhile restarts at the first key, so keys are
    counted once and the walk stops after `limit` steps (a lower bound then, under churn)."""
    lib, seen = _lib(), set()
    cur = None
    nxt = ctypes.create_string_buffer(key_size)
    for _ in range(limit):
        ret = lib.bpf_map_get_next_key(fd, cur, nxt)
        if ret == -errno_mod.ENOENT:
            break
        _check(ret, f"iterating map fd {fd}")
        seen.add(nxt.raw)
        cur = _buf(nxt.raw)
    return len(seen)


def map_info(fd: int) -> dict:
    """Kernel view of a map: name, type, id, key_size, value_size, max_entries, flags."""
    info = bpf_map_info()
    size = c_uint32(ctypes.sizeof(info))
    _check(_lib().bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)), "map info")
    return {
        "name": info.name.decode(),
        "type": info.type,
        "id": info.id,
        "key_size": info.key_size,
        "value_size": info.value_size,
        "max_entries": info.max_entries,
        "flags": info.map_flags,
    }


# --- programs ------------------------------------------------------------------------------


def prog_info(fd: int) -> dict:
    """Kernel view of a program (run_time_ns/run_cnt need kernel.bpf_stats_enabled)."""
    info = bpf_prog_info()
    size = c_uint32(ctypes.sizeof(info))
    _check(_lib().bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)), "prog info")
    return {
        "name": info.name.decode(),
        "type": info.type,
        "id": info.id,
        "tag": bytes(info.tag).hex(),
        "verified_insns": info.verified_insns,
        "xlated_len": info.xlated_prog_len,
        "jited_len": info.jited_prog_len,
        "run_time_ns": info.run_time_ns,
        "run_cnt": info.run_cnt,
        "load_time": info.load_time,
        "btf_id": info.btf_id,
        "nr_map_ids": info.nr_map_ids,
    }


def prog_test_run(
    fd: int,
    data: bytes,
    repeat: int = 1,
    ctx: bytes | None = None,
    data_out_size: int = 2048,
) -> TestRun:
    """Run a program on `data` with BPF_PROG_TEST_RUN (the output buffer is at least as big
    as the input). The return value is read as a signed 32-bit int (TC_ACT_UNSPEC is -1)."""
    data_in = _buf(data)
    out = ctypes.create_string_buffer(max(data_out_size, len(data)))
    opts = bpf_test_run_opts(sz=ctypes.sizeof(bpf_test_run_opts))
    opts.data_in = ctypes.cast(data_in, c_void_p)
    opts.data_size_in = len(data)
    opts.data_out = ctypes.cast(out, c_void_p)
    opts.data_size_out = len(out)
    opts.repeat = repeat
    ctx_in = None
    if ctx is not None:
        ctx_in = _buf(ctx)
        opts.ctx_in = ctypes.cast(ctx_in, c_void_p)
        opts.ctx_size_in = len(ctx)
    with _capture() as buf:
        _check(_lib().bpf_prog_test_run_opts(fd, ctypes.byref(opts)), "test run", buf)
    retval = ctypes.c_int32(opts.retval).value
    return TestRun(retval, opts.duration, out.raw[: opts.data_size_out])


# --- pins ----------------------------------------------------------------------------------


def obj_pin(fd: int, path: str | Path) -> None:
    """Pin a map or program fd at a bpffs path."""
    with _capture() as buf:
        _check(_lib().bpf_obj_pin(fd, os.fsencode(path)), f"pinning at {path}", buf)


def obj_get(path: str | Path) -> int:
    """A new fd for a pinned object; the caller closes it with os.close."""
    with _capture() as buf:
        return _check(_lib().bpf_obj_get(os.fsencode(path)), f"opening pin {path}", buf)


# --- ring buffers --------------------------------------------------------------------------

# ring_buffer_sample_fn: int (*)(void *ctx, void *data, size_t size)
_SAMPLE_FN = CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t)


class RingBuffer:
    """A consumer of a BPF ring buffer map (libbpf's `ring_buffer`): `poll` calls `on_record`
    with each record's bytes, in the order they were committed. One thread at a time."""

    def __init__(self, map_fd: int, on_record: Callable[[bytes], None]) -> None:
        self._on_record = on_record
        self._error: BaseException | None = None
        self._cb = _SAMPLE_FN(self._sample)  # kept alive as long as the ring buffer
        with _capture() as buf:
            ptr = _lib().ring_buffer__new(map_fd, ctypes.cast(self._cb, c_void_p), None, None)
            if not ptr:
                raise BpfError(_errno_or(), "opening the ring buffer", "".join(buf))
        self._ptr: int | None = ptr

    def _sample(self, _ctx: int, data: int, size: int) -> int:
        try:
            self._on_record(ctypes.string_at(data, size))
        except BaseException as e:  # raised again from poll: never across the C frames
            self._error = e
            return -1
        return 0

    def poll(self, timeout_ms: int) -> int:
        """Wait up to `timeout_ms` for records, hand every available one to `on_record`;
        the number handed."""
        return self._run(lambda p: _lib().ring_buffer__poll(p, timeout_ms), "polling")

    def consume(self) -> int:
        """Hand every available record to `on_record` without waiting."""
        return self._run(_lib().ring_buffer__consume, "consuming")

    def _run(self, call: Callable[[int], int], what: str) -> int:
        if self._ptr is None:
            raise BpfError(errno_mod.EBADF, "the ring buffer is closed")
        ret = call(self._ptr)
        if self._error is not None:
            err, self._error = self._error, None
            raise err
        if ret < 0 and -ret != errno_mod.EINTR:
            raise BpfError(-ret, f"{what} the ring buffer")
        return max(ret, 0)

    def close(self) -> None:
        if self._ptr is not None:
            ptr, self._ptr = self._ptr, None
            _lib().ring_buffer__free(ptr)

    def __enter__(self) -> RingBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
