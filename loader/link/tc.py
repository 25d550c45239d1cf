"""cls_bpf on clsact: a direct-action filter per hook, at a fixed priority and handle.

netlink "replace" creates the filter or swaps its program atomically. The interface's clsact
qdisc must exist first (`ensure_clsact`); netcc records the qdiscs it made and deletes them
once no filter is left on them.
"""

from __future__ import annotations

import errno as errno_mod
import struct
from typing import Any

from netcc.contract.programs import EGRESS, HOOKS, INGRESS
from netcc.loader.link.hook import Hook, HookRuntime

# clsact: TC_H_CLSACT with TC_H_MIN_INGRESS / TC_H_MIN_EGRESS.
CLSACT_HANDLE = 0xFFFF0000
TC_PARENT = {INGRESS: 0xFFFFFFF2, EGRESS: 0xFFFFFFF3}
TC_PRIO = 1  # run first
TC_HANDLE = 0x4E43  # "NC": tells netcc's filter apart from others at the same priority
ETH_P_ALL = 0x0003
TCA_BPF_NAME = 7
TCA_BPF_ID = 11


# --- the clsact qdisc ----------------------------------------------------------------------


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


# --- filters -------------------------------------------------------------------------------


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


def filter_replace(ipr: Any, ifindex: int, direction: str, prog_fd: int, name: str) -> None:
    """Create netcc's filter on the hook, or atomically swap its program."""
    ipr.tc(
        "replace-filter",
        **_filter(ifindex, direction),
        fd=prog_fd,
        name=name,
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


def filters(ipr: Any, ifindex: int, direction: str) -> list[dict[str, Any]]:
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


def prog_id(ipr: Any, ifindex: int, direction: str) -> int | None:
    """Id of the program in netcc's filter on the hook, or None."""
    for f in filters(ipr, ifindex, direction):
        if f.get("ours"):
            return f["prog_id"]
    return None


def filter_delete(ipr: Any, ifindex: int, direction: str) -> bool:
    """Delete netcc's filter from the hook; False if it was not there."""
    if prog_id(ipr, ifindex, direction) is None:
        return False
    ipr.tc("del-filter", **_filter(ifindex, direction))
    return True


def foreign_filters(ipr: Any, ifindex: int) -> int:
    """How many filters other than netcc's sit on the interface's clsact hooks."""
    return sum(1 for d in HOOKS for f in filters(ipr, ifindex, d) if not f.get("ours"))


def in_use(ipr: Any, ifindex: int) -> bool:
    """Whether any filter (netcc's or another's) sits on the interface's clsact hooks."""
    return bool(
        foreign_filters(ipr, ifindex)
        or prog_id(ipr, ifindex, INGRESS)
        or prog_id(ipr, ifindex, EGRESS)
    )


# --- the hook calls (see netcc.loader.attach) -----------------------------------------------


def attach(ipr: Any, hook: Hook, prog_fd: int) -> None:
    """netcc's filter on the hook (the clsact qdisc must exist)."""
    filter_replace(ipr, hook.ifindex, hook.direction, prog_fd, hook.program)


def replace(ipr: Any, hook: Hook, prog_fd: int, old_prog_fd: int | None = None) -> None:
    """Swap the filter's program atomically (netlink replace; `old_prog_fd` is not checked)."""
    filter_replace(ipr, hook.ifindex, hook.direction, prog_fd, hook.program)


def detach(ipr: Any, hook: Hook) -> None:
    """Delete netcc's filter; a hook whose device is gone has lost its filters already."""
    try:
        filter_delete(ipr, hook.ifindex, hook.direction)
    except Exception as e:
        if getattr(e, "code", None) not in (errno_mod.ENODEV, errno_mod.EINVAL):
            raise


def state(ipr: Any, hook: Hook) -> HookRuntime:
    """The program in netcc's filter on the hook."""
    return HookRuntime(prog_id(ipr, hook.ifindex, hook.direction))
