"""Putting programs on a pod interface's tc hooks: tcx links, or cls_bpf on a clsact qdisc.

Each pod's host-side interface gets two hooks: `ingress` (packets the pod sends) runs
`netcc_from_container`, `egress` (packets delivered to it) runs `netcc_to_container`; the node's
uplink the two NodePort programs (`netcc.contract.programs` names them all).

- tcx (Linux 6.6+): a BPF link made with BPF_LINK_CREATE (attach type BPF_TCX_INGRESS/EGRESS)
  and pinned, so it outlives the loader; `bpf_link_update` swaps its program atomically.
- tc: a direct-action cls_bpf filter on the interface's clsact qdisc at a fixed priority and
  handle; netlink "replace" swaps its program atomically. The qdisc is made if missing.

tcx is used where the kernel has it (probed once); `NETCC_ATTACH=tc|tcx` forces a mode.
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
import os
import struct
from ctypes import Structure, c_int, c_size_t, c_uint32, c_uint64, c_void_p
from dataclasses import asdict, dataclass
from typing import Any

from netcc.contract.programs import (
    EGRESS,
    HOOKS,
    INGRESS,
    POD,
    PROGRAM_FOR,
    UPLINK,
    UPLINK_PROGRAM_FOR,
)
from netcc.loader import libbpf
from netcc.loader.libbpf import BpfError

# Hooks, interfaces and the program each hook runs are the contract's (netcc.contract.programs):
# tc ingress of a pod's veth sees what the pod sends (its egress policy).
TCX, TC = "tcx", "tc"
MODE_ENV = "NETCC_ATTACH"

# enum bpf_attach_type / bpf_link_type of Linux 6.6+ (checked against the running kernel's
# BTF: `bpftool btf dump file /sys/kernel/btf/vmlinux | grep BPF_TCX`); the system's
# linux-libc-dev 6.1 headers predate them.
BPF_TCX_INGRESS = 46
BPF_TCX_EGRESS = 47
BPF_LINK_TYPE_TCX = 11
TCX_ATTACH_TYPE = {INGRESS: BPF_TCX_INGRESS, EGRESS: BPF_TCX_EGRESS}
BPF_F_REPLACE = 1 << 2

# clsact: TC_H_CLSACT with TC_H_MIN_INGRESS / TC_H_MIN_EGRESS.
CLSACT_HANDLE = 0xFFFF0000
TC_PARENT = {INGRESS: 0xFFFFFFF2, EGRESS: 0xFFFFFFF3}
TC_PRIO = 1  # run first
TC_HANDLE = 0x4E43  # "NC": tells netcc's filter apart from others at the same priority
ETH_P_ALL = 0x0003
TCA_BPF_NAME = 7
TCA_BPF_ID = 11


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
        _protos_set = True
    return lib


def _fail(ret: int, what: str) -> int:
    if ret < 0:
        raise BpfError(-ret, what)
    return ret


# --- tcx links -----------------------------------------------------------------------------


def tcx_link_create(prog_fd: int, ifindex: int, direction: str) -> int:
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


_tcx_probe: bool | None = None


def tcx_supported(prog_fd: int) -> bool:
    """Whether the kernel has tcx links: asks for one on ifindex 0, which a tcx kernel
    refuses with ENODEV and an older one with EINVAL (unknown attach type). Changes
    nothing; probed once per process."""
    global _tcx_probe
    if _tcx_probe is None:
        try:
            fd = tcx_link_create(prog_fd, 0, INGRESS)
        except BpfError as e:
            _tcx_probe = e.errno == errno_mod.ENODEV
        else:  # cannot happen; be tidy anyway
            os.close(fd)
            _tcx_probe = True
    return _tcx_probe


def choose_mode(prog_fd: int) -> str:
    """tcx or tc: `NETCC_ATTACH` if set, else tcx where the kernel has it."""
    forced = os.environ.get(MODE_ENV, "").strip().lower()
    if forced in (TC, TCX):
        if forced == TCX and not tcx_supported(prog_fd):
            raise BpfError(errno_mod.EOPNOTSUPP, f"{MODE_ENV}=tcx but the kernel has no tcx")
        return forced
    if forced:
        raise ValueError(f"{MODE_ENV} must be 'tc' or 'tcx', not {forced!r}")
    return TCX if tcx_supported(prog_fd) else TC


# --- cls_bpf on clsact ---------------------------------------------------------------------


def clsact_present(ipr: Any, ifindex: int) -> bool:
    """Whether the interface has a clsact qdisc."""
    return any(q.get_attr("TCA_KIND") == "clsact" for q in ipr.get_qdiscs(index=ifindex))


def ensure_clsact(ipr: Any, ifindex: int) -> bool:
    """Add a clsact qdisc unless there is one; True if this call added it."""
    if clsact_present(ipr, ifindex):
        return False
    ipr.tc("add", "clsact", ifindex)
    return True


def delete_clsact(ipr: Any, ifindex: int) -> None:
    ipr.tc("del", "clsact", ifindex)


def _filter(ifindex: int, direction: str) -> dict[str, Any]:
    """What names netcc's filter on a hook: its handle, parent, priority and protocol."""
    return {
        "kind": "bpf",
        "index": ifindex,
        "handle": TC_HANDLE,
        "parent": TC_PARENT[direction],
        "prio": TC_PRIO,
        "protocol": ETH_P_ALL,
    }


def tc_replace(
    ipr: Any, ifindex: int, direction: str, prog_fd: int, name: str | None = None
) -> None:
    """Create netcc's filter on the hook, or atomically swap its program."""
    ipr.tc(
        "replace-filter",
        **_filter(ifindex, direction),
        fd=prog_fd,
        name=name or PROGRAM_FOR[direction],
        direct_action=True,
    )


def _bpf_options(msg: Any) -> dict[int, bytes]:
    """Raw TCA_OPTIONS attributes of a cls_bpf filter message (pyroute2 0.9 does not decode
    TCA_BPF_ID, so the nested attributes are read from the message bytes)."""
    for slot in msg["attrs"]:
        if slot.name != "TCA_OPTIONS":
            continue
        nla = slot.nla
        raw = bytes(nla.data[nla.offset : nla.offset + nla.length])
        out, off = {}, 4
        while off + 4 <= len(raw):
            length, kind = struct.unpack_from("HH", raw, off)
            if length < 4:
                break
            out[kind & 0x3FFF] = raw[off + 4 : off + length]
            off += (length + 3) & ~3
        return out
    return {}


def tc_filters(ipr: Any, ifindex: int, direction: str) -> list[dict[str, Any]]:
    """The hook's cls_bpf filters: prio, handle, name, prog_id (netcc's is `ours`)."""
    out = []
    try:
        msgs = ipr.get_filters(index=ifindex, parent=TC_PARENT[direction])
    except Exception as e:  # no clsact qdisc: nothing attached
        if getattr(e, "code", None) in (errno_mod.EINVAL, errno_mod.ENOENT, errno_mod.ENODEV):
            return []
        raise
    for m in msgs:
        opts = _bpf_options(m)
        if m.get_attr("TCA_KIND") != "bpf" or not opts:
            if m["handle"]:
                out.append({"prio": m["info"] >> 16, "handle": m["handle"], "kind": "other"})
            continue
        prog_id = int.from_bytes(opts.get(TCA_BPF_ID, b"\0\0\0\0"), "little")
        name = opts.get(TCA_BPF_NAME, b"").rstrip(b"\0").decode(errors="replace")
        prio, handle = m["info"] >> 16, m["handle"]
        ours = prio == TC_PRIO and handle == TC_HANDLE
        out.append(
            {"prio": prio, "handle": handle, "kind": "bpf", "name": name, "prog_id": prog_id}
            | {"ours": ours}
        )
    return out


def tc_prog_id(ipr: Any, ifindex: int, direction: str) -> int | None:
    """Id of the program in netcc's filter on the hook, or None."""
    for f in tc_filters(ipr, ifindex, direction):
        if f.get("ours"):
            return f["prog_id"]
    return None


def tc_delete(ipr: Any, ifindex: int, direction: str) -> bool:
    """Delete netcc's filter from the hook; False if it was not there."""
    if tc_prog_id(ipr, ifindex, direction) is None:
        return False
    ipr.tc("del-filter", **_filter(ifindex, direction))
    return True


def foreign_filters(ipr: Any, ifindex: int) -> int:
    """How many filters other than netcc's sit on the interface's clsact hooks."""
    return sum(1 for d in HOOKS for f in tc_filters(ipr, ifindex, d) if not f.get("ours"))


# --- hooks, whichever the mode -------------------------------------------------------------


@dataclass
class Hook:
    """One attach point: an interface's tc ingress or egress, in tcx or tc mode."""

    ifindex: int
    ifname: str
    direction: str
    mode: str
    link_pin: str | None = None  # tcx: where the link is pinned
    role: str = POD  # POD: a pod's veth; UPLINK: the node's uplink (NodePort)

    @property
    def program(self) -> str:
        return (UPLINK_PROGRAM_FOR if self.role == UPLINK else PROGRAM_FOR)[self.direction]

    def key(self) -> tuple[int, str]:
        return (self.ifindex, self.direction)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Hook:
        return cls(
            **{k: doc[k] for k in ("ifindex", "ifname", "direction", "mode")},
            link_pin=doc.get("link_pin"),
            role=doc.get("role", POD),
        )


def hook_state(ipr: Any, hook: Hook) -> dict[str, int | None]:
    """What runs on the hook through netcc's link or filter: {"prog_id", "link_id"}
    (prog_id None: nothing does, as with no pin, a defunct link or no filter)."""
    if hook.mode == TC:
        return {"prog_id": tc_prog_id(ipr, hook.ifindex, hook.direction), "link_id": None}
    if not hook.link_pin or not os.path.exists(hook.link_pin):
        return {"prog_id": None, "link_id": None}
    fd = libbpf.obj_get(hook.link_pin)
    try:
        info = link_info(fd)
    finally:
        os.close(fd)
    live = info.get("ifindex") == hook.ifindex and info.get("attach_type") == (
        TCX_ATTACH_TYPE.get(hook.direction)
    )
    return {"prog_id": info["prog_id"] if live else None, "link_id": info["id"]}


def hook_prog_id(ipr: Any, hook: Hook) -> int | None:
    """Id of the program now running on the hook through netcc; None if nothing is."""
    return hook_state(ipr, hook)["prog_id"]


def attach(ipr: Any, hook: Hook, prog_fd: int) -> None:
    """Put the program on a hook that netcc has nothing on yet (tc: the clsact qdisc must
    exist). A tcx link is pinned at `hook.link_pin`, replacing a stale pin there."""
    if hook.mode == TC:
        tc_replace(ipr, hook.ifindex, hook.direction, prog_fd, hook.program)
        return
    assert hook.link_pin
    fd = tcx_link_create(prog_fd, hook.ifindex, hook.direction)
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
    """Atomically swap the program of a hook netcc is on (tcx: only if `old_prog_fd` is the
    attached one, when given)."""
    if hook.mode == TC:
        tc_replace(ipr, hook.ifindex, hook.direction, prog_fd, hook.program)
        return
    assert hook.link_pin
    fd = libbpf.obj_get(hook.link_pin)
    try:
        link_update(fd, prog_fd, old_prog_fd)
    finally:
        os.close(fd)


def detach(ipr: Any, hook: Hook) -> None:
    """Take netcc off a hook: detach and unpin the tcx link, or delete the tc filter. A
    hook whose interface is gone is only unpinned."""
    if hook.mode == TC:
        try:
            tc_delete(ipr, hook.ifindex, hook.direction)
        except Exception as e:  # the device is gone, and its filters with it
            if getattr(e, "code", None) not in (errno_mod.ENODEV, errno_mod.EINVAL):
                raise
        return
    if hook.link_pin and os.path.lexists(hook.link_pin):
        fd = libbpf.obj_get(hook.link_pin)
        try:
            if link_info(fd).get("ifindex"):
                link_detach(fd)
        finally:
            os.close(fd)
        os.unlink(hook.link_pin)
