"""tcx links (Linux 6.6+): a BPF link per hook, pinned so that it outlives the loader.

A link is made with BPF_LINK_CREATE (attach type BPF_TCX_INGRESS/EGRESS) and pinned at the
hook's `link_pin`; `bpf_link_update` swaps its program atomically. Whether the kernel has tcx
is probed once per process (`supported`).
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
import os
from ctypes import Structure, c_char_p, c_int, c_size_t, c_uint32, c_uint64, c_void_p
from typing import Any

from netcc.contract.programs import EGRESS, INGRESS
from netcc.loader import libbpf
from netcc.loader.libbpf import BPF_PROG_TYPE_SCHED_CLS, BpfError
from netcc.loader.link.hook import Hook, HookRuntime

# enum bpf_attach_type / bpf_link_type of Linux 6.6+ (checked against the running kernel's
# BTF: `bpftool btf dump file /sys/kernel/btf/vmlinux | grep BPF_TCX`); the system's
# linux-libc-dev 6.1 headers predate them.
BPF_TCX_INGRESS = 46
BPF_TCX_EGRESS = 47
BPF_LINK_TYPE_TCX = 11
TCX_ATTACH_TYPE = {INGRESS: BPF_TCX_INGRESS, EGRESS: BPF_TCX_EGRESS}
BPF_F_REPLACE = 1 << 2

# The probe program: `r0 = 0; exit` (struct bpf_insn: code, regs, off, imm; little-endian).
PROBE_INSNS = bytes([0xB7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])


class bpf_link_create_opts(Structure):
    """libbpf 1.1 `struct bpf_link_create_opts` (bpf.h); passed zeroed but for `sz`."""

    _fields_ = [
        ("sz", c_size_t),
        ("flags", c_uint32),
        ("iter_info", c_void_p),
        ("iter_info_len", c_uint32),
        ("target_btf_id", c_uint32),
        # union of perf_event / kprobe_multi / tracing; kprobe_multi (32 bytes) is the largest
        ("_union", c_uint64 * 4),
    ]


assert ctypes.sizeof(bpf_link_create_opts) == 64  # sizeof in libbpf 1.1's bpf.h


class bpf_link_update_opts(Structure):
    """libbpf 1.1 `struct bpf_link_update_opts`."""

    _fields_ = [("sz", c_size_t), ("flags", c_uint32), ("old_prog_fd", c_uint32)]


class bpf_link_info(Structure):
    """`struct bpf_link_info`: the header, then the union (8-aligned) read as tcx."""

    _fields_ = [
        ("type", c_uint32),
        ("id", c_uint32),
        ("prog_id", c_uint32),
        ("_pad", c_uint32),
        ("ifindex", c_uint32),
        ("attach_type", c_uint32),
        ("_rest", c_uint64 * 8),
    ]


_protos_set = False


def _lib() -> ctypes.CDLL:
    """The libbpf handle of `netcc.loader.libbpf`, with the link calls' prototypes."""
    global _protos_set
    lib = libbpf._lib()
    if not _protos_set:
        lib.bpf_link_create.restype = c_int
        lib.bpf_link_create.argtypes = [c_int, c_int, c_int, ctypes.POINTER(bpf_link_create_opts)]
        lib.bpf_link_update.restype = c_int
        lib.bpf_link_update.argtypes = [c_int, c_int, ctypes.POINTER(bpf_link_update_opts)]
        lib.bpf_link_detach.restype = c_int
        lib.bpf_link_detach.argtypes = [c_int]
        lib.bpf_prog_load.restype = c_int
        lib.bpf_prog_load.argtypes = [c_int, c_char_p, c_char_p, c_void_p, c_size_t, c_void_p]
        _protos_set = True
    return lib


def _fail(ret: int, what: str) -> int:
    if ret < 0:
        raise BpfError(-ret, what)
    return ret


# --- links ---------------------------------------------------------------------------------


def link_create(prog_fd: int, ifindex: int, direction: str) -> int:
    """A new tcx link running `prog_fd` on an interface's hook; returns the link fd."""
    opts = bpf_link_create_opts(sz=ctypes.sizeof(bpf_link_create_opts))
    ret = _lib().bpf_link_create(prog_fd, ifindex, TCX_ATTACH_TYPE[direction], ctypes.byref(opts))
    return _fail(ret, f"tcx attach ({direction}) to ifindex {ifindex}")


def link_update(link_fd: int, prog_fd: int, old_prog_fd: int | None = None) -> None:
    """Swap a link's program atomically; with `old_prog_fd`, only if that one is attached."""
    opts = bpf_link_update_opts(sz=ctypes.sizeof(bpf_link_update_opts))
    if old_prog_fd is not None:
        opts.flags, opts.old_prog_fd = BPF_F_REPLACE, old_prog_fd
    _fail(_lib().bpf_link_update(link_fd, prog_fd, ctypes.byref(opts)), "updating a tcx link")


def link_detach(link_fd: int) -> None:
    """Detach a link from its hook now (its pins and fds then hold a defunct link)."""
    _fail(_lib().bpf_link_detach(link_fd), "detaching a link")


def link_info(link_fd: int) -> dict[str, int]:
    """type, id, prog_id and, for a tcx link, ifindex (0 once the device is gone) and
    attach_type."""
    info = bpf_link_info()
    size = c_uint32(ctypes.sizeof(info))
    ret = _lib().bpf_obj_get_info_by_fd(link_fd, ctypes.byref(info), ctypes.byref(size))
    _fail(ret, "link info")
    out = {"type": info.type, "id": info.id, "prog_id": info.prog_id}
    if info.type == BPF_LINK_TYPE_TCX:
        out |= {"ifindex": info.ifindex, "attach_type": info.attach_type}
    return out


def detach_pinned(pin: str | os.PathLike[str]) -> None:
    """Detach the link pinned at `pin` if it is still on a device, and unpin it."""
    fd = libbpf.obj_get(pin)
    try:
        if link_info(fd).get("ifindex"):
            link_detach(fd)
    finally:
        os.close(fd)
    os.unlink(pin)


# --- whether the kernel has tcx ------------------------------------------------------------

_probe: bool | None = None


def _probe_program() -> int:
    """A trivial sched_cls program (returns 0), for probing; the caller closes it."""
    insns = ctypes.create_string_buffer(PROBE_INSNS, len(PROBE_INSNS))
    ret = _lib().bpf_prog_load(
        BPF_PROG_TYPE_SCHED_CLS, b"netcc_probe", b"GPL", insns, len(PROBE_INSNS) // 8, None
    )
    return _fail(ret, "loading the tcx probe program")


def supported() -> bool:
    """Whether the kernel has tcx links: asks for one on ifindex 0, which a tcx kernel
    refuses with ENODEV and an older one with EINVAL (unknown attach type). Changes
    nothing; probed once per process."""
    global _probe
    if _probe is None:
        prog = _probe_program()
        try:
            fd = link_create(prog, 0, INGRESS)
        except BpfError as e:
            _probe = e.errno == errno_mod.ENODEV
        else:  # cannot happen; be tidy anyway
            os.close(fd)
            _probe = True
        finally:
            os.close(prog)
    return _probe


# --- the hook calls (see netcc.loader.attach) -----------------------------------------------


def attach(ipr: Any, hook: Hook, prog_fd: int) -> None:
    """A new link running the program on the hook, pinned at `hook.link_pin` (replacing a
    stale pin there)."""
    assert hook.link_pin
    os.makedirs(os.path.dirname(hook.link_pin), exist_ok=True)
    fd = link_create(prog_fd, hook.ifindex, hook.direction)
    try:
        if os.path.lexists(hook.link_pin):
            os.unlink(hook.link_pin)
        libbpf.obj_pin(fd, hook.link_pin)
    except BaseException:
        link_detach(fd)
        raise
    finally:
        os.close(fd)


def replace(ipr: Any, hook: Hook, prog_fd: int, old_prog_fd: int | None = None) -> None:
    """Swap the pinned link's program atomically (only if `old_prog_fd` runs, when given)."""
    assert hook.link_pin
    fd = libbpf.obj_get(hook.link_pin)
    try:
        link_update(fd, prog_fd, old_prog_fd)
    finally:
        os.close(fd)


def detach(ipr: Any, hook: Hook) -> None:
    """Detach and unpin the hook's link; a link whose device is gone is only unpinned."""
    if hook.link_pin and os.path.lexists(hook.link_pin):
        detach_pinned(hook.link_pin)


def state(ipr: Any, hook: Hook) -> HookRuntime:
    """The program the hook's pinned link runs, if the link is live on the hook."""
    if not hook.link_pin or not os.path.exists(hook.link_pin):
        return HookRuntime(None)
    fd = libbpf.obj_get(hook.link_pin)
    try:
        info = link_info(fd)
    finally:
        os.close(fd)
    live = info.get("ifindex") == hook.ifindex and info.get("attach_type") == (
        TCX_ATTACH_TYPE.get(hook.direction)
    )
    return HookRuntime(info["prog_id"] if live else None, info["id"])
