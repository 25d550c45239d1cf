"""One pod on or off the applied datapath, without a full apply: its endpoint entry and its
two hooks, and the state file's record of them.

A CNI ADD or DEL changes one key of `netcc_endpoints` and the hooks of one host veth; the
full apply (`netcc.loader.apply`) re-reads and re-checks all of OUT and snapshots every map
and hook to find that out. Here the change is made directly on what the applied version
pinned (`maps/netcc_endpoints`, `progs/DIGEST/*`), packed with the applied copy of its layout,
and recorded in `state.json` exactly as the full apply records it (hooks, endpoint
bindings, clsact qdiscs it made), so the next periodic apply finds the pod in place and
changes nothing ("unchanged").

Both calls run under the node's state lock (`state.locked`, the full apply's) and are
journaled: a failure undoes every step made (entry, hooks, qdisc) and raises; nothing is
half-applied. When the applied version is not the one the daemon serves (a new OUT accepted
but not applied yet), or its pins are missing, `NotApplied` tells the caller to take the full
apply instead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from netcc.contract.layoutfile import Layout
from netcc.contract.programs import HOOKS, POD, PROGRAM_FOR
from netcc.loader import attach, libbpf, state
from netcc.loader.artifacts import ENDPOINTS
from netcc.loader.cni.timing import step
from netcc.loader.daemon import podnet
from netcc.loader.desired import Endpoint, RuntimeEndpoint
from netcc.loader.execute import Journal
from netcc.loader.link.hook import Hook, HookKey, Mode
from netcc.loader.maps import BpfMap


class NotApplied(Exception):
    """The fast path cannot serve this change; the full apply must (the reason says why)."""


class FastPath:
    """Incremental pod changes on one node's applied datapath (`paths`)."""

    def __init__(self, paths: state.Paths) -> None:
        self.paths = paths
        self._layouts: dict[str, Layout] = {}

    # -- reading what is applied -------------------------------------------------------------

    def applied(self, digest: str | None) -> tuple[dict[str, Any], Layout]:
        """The state document and layout of the applied version (see `_applied`)."""
        return self._applied(digest)

    def _applied(self, digest: str | None) -> tuple[dict[str, Any], Layout]:
        """The state document and the applied layout; NotApplied unless `digest` (when
        given) is the applied version and the state is this pin root's."""
        try:
            doc = state.load_state(self.paths)
        except (OSError, ValueError) as e:
            raise NotApplied(f"unreadable state: {e}") from None
        if doc is None:
            raise NotApplied("nothing is applied")
        if doc.get("pin_root") != str(self.paths.pin_root):
            raise NotApplied(f"applied under {doc.get('pin_root')}")
        applied = str(doc.get("digest", ""))
        if digest is not None and applied != digest:
            raise NotApplied(f"applied version {applied[:12]} is not {digest[:12]}")
        layout = self._layouts.get(applied)
        if layout is None:
            try:
                layout = Layout(json.loads(state.read_copy(self.paths, state.LAYOUT_COPY)))
            except (OSError, ValueError) as e:
                raise NotApplied(f"no applied layout: {e}") from None
            self._layouts = {applied: layout}
        return doc, layout

    def _endpoints_map(self, layout: Layout) -> BpfMap:
        pin = self.paths.maps / ENDPOINTS
        try:
            return BpfMap.pinned(pin, layout)
        except OSError as e:
            raise NotApplied(f"{pin}: {e}") from None

    # -- ADD ---------------------------------------------------------------------------------

    def add(self, digest: str, ep: RuntimeEndpoint) -> None:
        """Put `ep` on the datapath applied as version `digest`: its endpoint entry, then
        its two hooks, then the record. NotApplied (nothing done) when the full apply must
        do it; any other failure is undone and raised."""
        with state.locked(self.paths):
            with step("dp.state"):
                doc, layout = self._applied(digest)
            mode = Mode(doc["mode"])
            with step("dp.progs"):
                progs = self._programs(digest)
            try:
                with step("dp.open"):
                    emap = self._endpoints_map(layout)
                with emap, podnet.host_socket() as ipr:
                    self._add_locked(doc, layout, mode, progs, emap, ipr, ep)
            finally:
                for fd in progs.values():
                    os.close(fd)

    def _programs(self, digest: str) -> dict[str, int]:
        """Open fds of the applied version's pod programs, by name."""
        out: dict[str, int] = {}
        try:
            for name in PROGRAM_FOR.values():
                out[name] = libbpf.obj_get(self.paths.prog_dir(digest) / name)
        except OSError as e:
            for fd in out.values():
                os.close(fd)
            raise NotApplied(f"the applied programs are not pinned: {e}") from None
        return out

    def _add_locked(
        self,
        doc: dict[str, Any],
        layout: Layout,
        mode: Mode,
        progs: dict[str, int],
        emap: BpfMap,
        ipr: Any,
        ep: RuntimeEndpoint,
    ) -> None:
        entry = {"key": {"ip": ep.ip}, "value": {**ep.value, "ifindex": ep.ifindex}}
        ((key, value),) = layout.pack_entries(ENDPOINTS, [entry])
        journal = Journal()
        try:
            with step("dp.entry"):
                old = emap.get(key)
                emap.put(key, value)
            if old is None:
                journal.push("delete the endpoint entry", lambda: emap.delete(key))
            else:
                journal.push("restore the endpoint entry", lambda: emap.put(key, old))
            created = False
            if mode.needs_clsact and attach.ensure_clsact(ipr, ep.ifindex):
                created = True
                journal.push("delete clsact", lambda: attach.delete_clsact(ipr, ep.ifindex))
            hooks = [self._hook(ep, d, mode) for d in HOOKS]
            for hook in hooks:
                with step("dp.attach"):
                    attach.attach(ipr, hook, progs[hook.program])
                journal.push(f"detach {hook.direction}", lambda h=hook: attach.detach(ipr, h))
            with step("dp.record"):
                self._record(doc, add=(ep, hooks, created))
        except BaseException:
            problems = journal.rollback()
            if problems:
                raise RuntimeError(
                    f"adding {ep.ip} failed and could not be undone: {'; '.join(problems)}"
                ) from None
            raise

    def _hook(self, ep: RuntimeEndpoint, direction: str, mode: Mode) -> Hook:
        pin = str(self.paths.link_pin(ep.ifindex, direction)) if mode.pins_links else None
        return Hook(ep.ifindex, ep.ifname, direction, mode, pin, POD)

    # -- DEL ---------------------------------------------------------------------------------

    def remove(self, ip: str) -> bool:
        """Take the pod address `ip` off the applied datapath: its hooks, its endpoint entry,
        its record. False when no applied state records it (nothing to do). NotApplied when
        the state cannot be read (the full apply must repair)."""
        with state.locked(self.paths):
            with step("dp.state"):
                doc, layout = self._applied(None)
            bound = {e["ip"]: e.get("ifindex") for e in doc.get("endpoints", [])}
            if ip not in bound:
                return False
            ifindex = bound[ip]
            hooks = [
                Hook.from_json(h)
                for h in doc.get("hooks", [])
                if h["ifindex"] == ifindex and h.get("role", POD) == POD
            ]
            with step("dp.detach"), podnet.host_socket() as ipr:
                for hook in hooks:
                    attach.detach(ipr, hook)
            with step("dp.entry"), self._endpoints_map(layout) as emap:
                emap.delete(emap.pack_key({"ip": ip}))  # False: absent already
            with step("dp.record"):
                self._record(doc, remove=(ip, ifindex))
            return True

    # -- the record --------------------------------------------------------------------------

    def _record(
        self,
        doc: dict[str, Any],
        add: tuple[RuntimeEndpoint, list[Hook], bool] | None = None,
        remove: tuple[str, int | None] | None = None,
    ) -> None:
        """Write `state.json` with a pod added or removed, as the full apply records it."""
        hooks = [Hook.from_json(h) for h in doc.get("hooks", [])]
        endpoints = list(doc.get("endpoints", []))
        clsact = set(doc.get("clsact_created", []))
        if add is not None:
            ep, new, created = add
            keys: set[HookKey] = {h.key() for h in new}
            hooks = [h for h in hooks if h.key() not in keys] + new
            endpoints = [e for e in endpoints if e["ip"] != ep.ip]
            endpoints.append(
                Endpoint(ep.ip, ep.note, ep.ifindex, ep.ifname, runtime=True).to_json()
            )
            if created:
                clsact.add(ep.ifindex)
        if remove is not None:
            ip, ifindex = remove
            endpoints = [e for e in endpoints if e["ip"] != ip]
            hooks = [h for h in hooks if h.ifindex != ifindex or h.role != POD]
            clsact.discard(ifindex)
        hooks.sort(key=lambda h: h.key())
        doc = {
            **doc,
            "hooks": [h.to_json() for h in hooks],
            "endpoints": endpoints,
            "clsact_created": sorted(clsact),
        }
        doc = {"version": state.STATE_VERSION, **doc}
        data = (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()
        _replace(self.paths.state_file, data)


def _replace(path: Path, data: bytes) -> None:
    """Write `path` whole or not at all (a temporary file renamed over it), without fsync.

    `state.json` describes kernel objects (hooks, pins, map entries) that a crash of the
    machine takes away with it, and a crash of the daemon leaves the page cache in place, so
    syncing it buys nothing here; the full apply, which also writes the copies, syncs."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
