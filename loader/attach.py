"""Putting programs on hooks, whichever the kind: the calls dispatch to the hook's mode.

The kinds live in `netcc.loader.link`, one module each (`tcx`, `tc`), with the same four
calls: `attach`, `replace`, `detach`, `state`. The executor of an apply reaches them only
through this module, so that a test can observe or fail any of them.

tcx is used where the kernel has it (probed once); `NETCC_ATTACH=tc|tcx` forces a mode.
"""

from __future__ import annotations

import errno as errno_mod
import os
from types import ModuleType
from typing import Any

from netcc.contract.programs import PROGRAM_FOR, UPLINK_PROGRAM_FOR
from netcc.loader.libbpf import BpfError
from netcc.loader.link import tc, tcx
from netcc.loader.link.hook import Hook, HookKey, HookRuntime, Mode
from netcc.loader.link.tcx import link_detach, link_info

__all__ = [
    "MODE_ENV",
    "PROGRAM_FOR",
    "TC",
    "TCX",
    "UPLINK_PROGRAM_FOR",
    "Hook",
    "HookKey",
    "HookRuntime",
    "Mode",
    "attach",
    "choose_mode",
    "delete_clsact",
    "detach",
    "ensure_clsact",
    "hook_prog_id",
    "hook_state",
    "link_detach",
    "link_info",
    "replace",
]

MODE_ENV = "NETCC_ATTACH"
TCX, TC = Mode.TCX, Mode.TC
KINDS: dict[Mode, ModuleType] = {Mode.TCX: tcx, Mode.TC: tc}


def kind(hook: Hook) -> ModuleType:
    """The module that attaches hooks of this hook's mode."""
    return KINDS[hook.mode]


def choose_mode() -> Mode:
    """tcx or tc: `NETCC_ATTACH` if set, else tcx where the kernel has it."""
    forced = os.environ.get(MODE_ENV, "").strip().lower()
    if forced in (TC, TCX):
        if forced == TCX and not tcx.supported():
            raise BpfError(errno_mod.EOPNOTSUPP, f"{MODE_ENV}=tcx but the kernel has no tcx")
        return Mode(forced)
    if forced:
        raise ValueError(f"{MODE_ENV} must be 'tc' or 'tcx', not {forced!r}")
    return TCX if tcx.supported() else TC


def attach(ipr: Any, hook: Hook, prog_fd: int) -> None:
    """Put the program on a hook that netcc has nothing on yet (tc: the clsact qdisc must
    exist; tcx: the link is pinned at `hook.link_pin`, replacing a stale pin there)."""
    kind(hook).attach(ipr, hook, prog_fd)


def replace(ipr: Any, hook: Hook, prog_fd: int, old_prog_fd: int | None = None) -> None:
    """Atomically swap the program of a hook netcc is on (tcx: only if `old_prog_fd` is the
    attached one, when given)."""
    kind(hook).replace(ipr, hook, prog_fd, old_prog_fd)


def detach(ipr: Any, hook: Hook) -> None:
    """Take netcc off a hook: detach and unpin the tcx link, or delete the tc filter. A
    hook whose interface is gone is only unpinned."""
    kind(hook).detach(ipr, hook)


def hook_state(ipr: Any, hook: Hook) -> HookRuntime:
    """What runs on the hook through netcc's link or filter."""
    return kind(hook).state(ipr, hook)


def hook_prog_id(ipr: Any, hook: Hook) -> int | None:
    """Id of the program now running on the hook through netcc; None if nothing is."""
    return hook_state(ipr, hook).prog_id


# An interface's preparation for hooks that need a clsact qdisc (`Mode.needs_clsact`).


def ensure_clsact(ipr: Any, ifindex: int) -> bool:
    """Add a clsact qdisc unless there is one; True if this call added it."""
    return tc.ensure_clsact(ipr, ifindex)


def delete_clsact(ipr: Any, ifindex: int) -> None:
    tc.delete_clsact(ipr, ifindex)
