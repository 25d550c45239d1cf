"""`netcc load detach`: take a node's datapath off this network namespace, leaving nothing.

Every hook netcc holds is removed (tcx links detached and unpinned, tc filters deleted), the
clsact qdiscs netcc made are deleted when no other filter sits on them, and every pin under
the pin root (maps, programs, links) goes with the root itself, then the state directory.
Programs and maps are freed by the kernel once nothing holds them. Without a state file
(lost, or never written) the pin root is still cleared, tcx links under it detached, and
netcc's tc filters (its priority and handle, running a netcc program) deleted from every
interface of the namespace.
"""

from __future__ import annotations

import errno as errno_mod
from contextlib import suppress
from pathlib import Path
from typing import Any

from netcc.contract.programs import HOOKS, PROGRAMS
from netcc.loader import attach, state
from netcc.loader.link import tc, tcx
from netcc.loader.link.hook import Hook
from netcc.loader.state import PIN_BASE, Paths
from netcc.loader.status import select_paths


def _gone(e: Exception) -> bool:
    return getattr(e, "code", None) in (errno_mod.ENODEV, errno_mod.EINVAL, errno_mod.ENOENT)


def _detach_unknown_links(paths: Paths, done: list[str]) -> None:
    """tcx links pinned under the root that no state names."""
    if not paths.links.is_dir():
        return
    for pin in sorted(paths.links.iterdir()):
        tcx.detach_pinned(pin)
        done.append(f"unpinned link {pin.name}")


def _delete_unknown_filters(ipr: Any, done: list[str]) -> None:
    """netcc's tc filters (its prio/handle, a netcc program) on any interface here."""
    for link in ipr.get_links():
        ifindex = link["index"]
        for d in HOOKS:
            for f in tc.filters(ipr, ifindex, d):
                if f.get("ours") and f.get("name") in PROGRAMS:
                    tc.filter_delete(ipr, ifindex, d)
                    done.append(f"deleted tc filter {link.get_attr('IFLA_IFNAME')} {d}")


def detach_node(paths: Paths, ipr: Any) -> dict[str, Any]:
    """Remove one node's datapath; returns what was done and any problems."""
    done: list[str] = []
    problems: list[str] = []
    try:
        doc = state.load_state(paths)
    except ValueError as e:  # unreadable: clear what can be found without it
        problems.append(str(e))
        doc = None
    hooks = [Hook.from_json(h) for h in (doc or {}).get("hooks", [])]
    for hook in hooks:
        try:
            attach.detach(ipr, hook)
            done.append(f"detached {hook.ifname} {hook.direction} ({hook.mode})")
        except Exception as e:
            if not _gone(e):
                problems.append(f"{hook.ifname} {hook.direction}: {e}")
    for ifindex in (doc or {}).get("clsact_created", []):
        name = next((h.ifname for h in hooks if h.ifindex == ifindex), str(ifindex))
        try:
            if not tc.clsact_present(ipr, ifindex):
                continue
            if tc.foreign_filters(ipr, ifindex):
                problems.append(f"clsact on {name} kept: other filters use it")
                continue
            attach.delete_clsact(ipr, ifindex)
            done.append(f"deleted clsact qdisc on {name}")
        except Exception as e:
            if not _gone(e):
                problems.append(f"clsact on {name}: {e}")
    if doc is None:
        try:
            _detach_unknown_links(paths, done)
            _delete_unknown_filters(ipr, done)
        except Exception as e:
            problems.append(str(e))
    try:
        from netcc.loader.wireguard.apply import remove_tunnel

        if tunnel := remove_tunnel(paths.state_dir, paths.node):
            done.append(f"deleted WireGuard device {tunnel.ifname} ({tunnel.backend})")
    except Exception as e:
        problems.append(f"wireguard: {e}")
    try:
        from netcc.loader.ipsec.apply import remove_ipsec

        if removed := remove_ipsec(paths.state_dir, paths.node):
            done.append(f"removed netcc's XFRM states and policies ({len(removed.changes)})")
    except Exception as e:
        problems.append(f"ipsec: {e}")
    had_pins = paths.pin_root.exists()
    problems += state.remove_pin_tree(paths.pin_root)
    if had_pins:
        done.append(f"removed {paths.pin_root}")
    if paths.pin_root.parent == PIN_BASE:
        with suppress(OSError):
            PIN_BASE.rmdir()  # only when no other node is left
    if paths.state_file.exists():
        done.append(f"removed {paths.state_dir}")
    state.remove_state(paths)
    if not done:
        done.append("nothing was applied")
    return {"node": paths.node, "done": done, "problems": problems, "ok": not problems}


def detach(
    node: str | None = None,
    pin_root: str | Path | None = None,
    state_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Detach the named node (or every node applied in this network namespace)."""
    from pyroute2 import IPRoute

    if node is None and state_dir is not None and not (Path(state_dir) / "state.json").exists():
        return {"ok": True, "nodes": []}  # nothing applied there (any more)
    selected = select_paths(node, pin_root, state_dir)
    with IPRoute() as ipr:
        nodes = []
        for p in selected:
            with state.locked(p):
                nodes.append(detach_node(p, ipr))
            state.remove_state(p)  # the lock file, made again by `locked`
            if p.state_dir.parent == state.state_base():
                with suppress(OSError):
                    p.state_dir.parent.rmdir()  # only when no other node is left
    return {"ok": all(n["ok"] for n in nodes), "nodes": nodes}
