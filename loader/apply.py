"""`netcc load apply`: put an artifact directory's datapath on this node, or update it.

Reads only OUT, never the spec. In order:

1. The lock is checked (every artifact's sha256) and the files used are read once and checked
   again against it, so what is loaded is what was verified.
2. Each local pod address of `nodes/NODE/maps/netcc_endpoints.json` is bound to the interface
   the node routes it through (`ip route get`); that ifindex goes into the endpoint entry
   (anti-spoofing). A pod with no such interface yet is reported and skipped.
3. What should be (programs, hooks, map contents) is compared with what is. Nothing differs:
   "unchanged", and nothing is written.
4. A new version is loaded next to the running one: its maps are the pinned maps where they
   fit (pinned again under `next/` for libbpf to reuse), new ones where the layout or the
   verdict numbering changed (`migrate`). A verifier failure stops here with the log.
5. Data maps are synced (upsert, then delete stale keys; the previous contents are saved),
   state maps are migrated, and every hook is swapped atomically to the new program
   (`bpf_link_update` / tc filter replace): no moment without enforcement. Conntrack and
   counters carry over.
6. Maps are re-pinned, the state is written, the previous programs are unpinned.

A failure in 5 or 6 rolls back: every hook back on the previous programs (kept pinned under
`progs/<digest>/` until then), previous map contents and pins restored, the new pins removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netcc.contract.layoutfile import LAYOUT_PATH, Layout, LayoutError
from netcc.contract.lock import LOCK_NAME, LockError, verify_lock
from netcc.contract.mapfile import MAPS_DIR, parse_map_file
from netcc.contract.programs import (
    HOOKS,
    OBJECT_PATH,
    POD_PROGRAMS,
    PROGRAMS,
    UPLINK,
    UPLINK_PROGRAMS,
)
from netcc.contract.verdicts import VERDICTS_PATH
from netcc.loader import attach, libbpf, migrate, state
from netcc.loader.attach import TC, TCX, Hook
from netcc.loader.bpffs import ensure_bpffs
from netcc.loader.libbpf import BpfError, BpfObject
from netcc.loader.netns import current_netns
from netcc.loader.state import Paths

ENDPOINTS = "netcc_endpoints"
LB_SERVICES = "netcc_lb_services"
RTN_UNICAST, RTN_LOCAL = 1, 2

Data = dict[str, dict[bytes, bytes]]  # map -> packed key -> packed value
HookKey = tuple[int, str]  # (ifindex, direction)
Current = dict[HookKey, tuple[Hook, int | None]]  # recorded hook, program id running now


class ApplyError(Exception):
    """Apply refused or failed. `log` holds a verifier log; `rolled_back` says whether the
    previous datapath was restored."""

    def __init__(self, message: str, log: str = "", rolled_back: bool = False) -> None:
        super().__init__(message)
        self.log = log
        self.rolled_back = rolled_back


# --- the artifact directory ----------------------------------------------------------------


@dataclass
class Artifacts:
    """What apply uses from OUT, read once and checked against the lock."""

    out: Path
    node: str
    digest: str  # sha256 of netcc.lock.json: names the applied version
    lock: dict[str, Any]
    files: dict[str, bytes]  # lock, layout, verdicts, object: bytes as verified
    layout: Layout
    verdicts: dict[str, Any]
    maps: dict[str, list[dict]]  # data map -> entries of nodes/NODE/maps/<map>.json


def read_artifacts(out: str | Path, node: str) -> Artifacts:
    """Check the lock and read what apply needs; raises ApplyError (tampered, stale,
    missing, or no such node)."""
    out = Path(out)
    try:
        lock = verify_lock(out)
    except LockError as e:
        raise ApplyError(f"refusing {out}: {e}") from None
    if lock.get("lockVersion") != 1:
        raise ApplyError(f"refusing {out}: lock version {lock.get('lockVersion')!r}, expected 1")
    artifacts: dict[str, str] = lock["artifacts"]
    node_dir = MAPS_DIR.format(node=node)
    wanted = [OBJECT_PATH, LAYOUT_PATH, VERDICTS_PATH]
    wanted += sorted(p for p in artifacts if p.startswith(node_dir) and p.endswith(".json"))
    if not any(p.startswith(node_dir) for p in wanted):
        nodes = sorted({p.split("/")[1] for p in artifacts if p.startswith("nodes/")})
        raise ApplyError(f"{out} has no node {node!r} (nodes: {', '.join(nodes) or 'none'})")
    files = {LOCK_NAME: (out / LOCK_NAME).read_bytes()}
    if json.loads(files[LOCK_NAME]) != lock:
        raise ApplyError(f"refusing {out}: {LOCK_NAME} changed while it was read")
    for rel in wanted:
        if rel not in artifacts:
            raise ApplyError(f"refusing {out}: {rel} is not in the lock")
        data = (out / rel).read_bytes()
        if hashlib.sha256(data).hexdigest() != artifacts[rel]:
            raise ApplyError(f"refusing {out}: {rel} changed after the lock was checked")
        files[rel] = data
    try:
        layout = Layout(json.loads(files[LAYOUT_PATH]))
        maps: dict[str, list[dict]] = {}
        for rel in wanted[3:]:
            name, maps[name] = parse_map_file(files[rel], rel)
            if name != Path(rel).stem or name not in layout.maps:
                raise LayoutError(f"{rel}: map {name!r} is not in the layout")
    except (LayoutError, ValueError, KeyError, TypeError) as e:
        raise ApplyError(f"refusing {out}: {e}") from None
    if ENDPOINTS not in maps:
        raise ApplyError(f"refusing {out}: {node_dir}{ENDPOINTS}.json is missing")
    return Artifacts(
        out,
        node,
        hashlib.sha256(files[LOCK_NAME]).hexdigest(),
        lock,
        files,
        layout,
        json.loads(files[VERDICTS_PATH]),
        maps,
    )


# --- pods and their interfaces -------------------------------------------------------------


@dataclass
class Endpoint:
    """A local pod address and the interface it is bound to (None: skipped, see reason)."""

    ip: str
    note: str
    ifindex: int | None = None
    ifname: str | None = None
    reason: str | None = None


def resolve_endpoints(ipr: Any, entries: list[dict]) -> list[Endpoint]:
    """Bind each endpoint to the interface the node routes its address through: a direct
    (gatewayless) unicast route; anything else leaves it unbound, with the reason."""
    out = []
    for e in entries:
        ep = Endpoint(str(e["key"]["ip"]), str(e.get("note", "")))
        try:
            route = ipr.route("get", dst=ep.ip)[0]
        except Exception as err:
            ep.reason = f"no route ({os.strerror(getattr(err, 'code', 0) or 0)})"
            out.append(ep)
            continue
        oif, gateway = route.get_attr("RTA_OIF"), route.get_attr("RTA_GATEWAY")
        if route["type"] == RTN_LOCAL:
            ep.reason = "the address is the node's own"
        elif route["type"] != RTN_UNICAST or not oif:
            ep.reason = "no unicast route to an interface"
        elif gateway:
            ep.reason = f"routed via gateway {gateway}, not to a pod interface"
        else:
            links = ipr.get_links(oif)
            name = links[0].get_attr("IFLA_IFNAME") if links else None
            if name == "lo":
                ep.reason = "routed to the loopback interface"
            else:
                ep.ifindex, ep.ifname = int(oif), name
        out.append(ep)
    return out


def uplinks(ipr: Any, services: list[dict]) -> list[tuple[int, str]]:
    """(ifindex, name) of the interfaces holding the node addresses its NodePort entries
    (scope 1 of `netcc_lb_services`) name: where the NodePort programs go."""
    found = {}
    for vip in sorted({e["key"]["vip"] for e in services if e["key"].get("scope") == 1}):
        for msg in ipr.get_addr(family=2, address=vip):
            links = ipr.get_links(msg["index"])
            name = links[0].get_attr("IFLA_IFNAME") if links else str(msg["index"])
            if name != "lo":
                found[int(msg["index"])] = name
    return sorted(found.items())


# --- results -------------------------------------------------------------------------------


@dataclass
class ApplyResult:
    """What an apply did. `status`: applied (first time), updated (new version), repaired
    (same version, something had drifted), unchanged."""

    node: str
    digest: str
    status: str
    mode: str
    pin_root: str
    state_dir: str
    hooks: list[dict[str, Any]] = field(default_factory=list)
    endpoints: list[dict[str, Any]] = field(default_factory=list)
    maps: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    wireguard: dict[str, Any] | None = None  # the tunnel's TunnelReport, if OUT plans one

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def format_result(r: ApplyResult) -> str:
    """Human-readable summary of an ApplyResult."""
    tunnel = _format_tunnel(r.wireguard)
    if r.status == "unchanged":
        return f"netcc: {r.node}: unchanged (artifacts {r.digest[:12]}, {r.mode})" + tunnel
    acted = [h for h in r.hooks if h["action"] != "kept"]
    counts: dict[str, int] = {}
    for h in acted:
        counts[h["action"]] = counts.get(h["action"], 0) + 1
    ifaces = {h["ifname"] for h in r.hooks if h["action"] != "detached"}
    lines = [
        f"netcc: {r.node}: {r.status} artifacts {r.digest[:12]} in {r.mode} mode on "
        f"{len(ifaces)} interface(s): "
        + (", ".join(f"{n} {a}" for a, n in sorted(counts.items())) or "hooks kept")
    ]
    for name, m in sorted(r.maps.items()):
        bits = [m["plan"]]
        if m.get("why"):
            bits.append(f"({m['why']})")
        if any(m.get(k) for k in ("added", "changed", "removed")):
            bits.append(f"+{m.get('added', 0)} ~{m.get('changed', 0)} -{m.get('removed', 0)}")
        if m.get("migrated"):
            bits.append(f"carried {m['migrated']['copied']}, dropped {m['migrated']['skipped']}")
        lines.append(f"  map {name}: {' '.join(bits)}")
    return "\n".join(lines) + tunnel


def _format_tunnel(report: dict[str, Any] | None) -> str:
    if not report:
        return ""
    what = ", ".join(report["changes"]) or "nothing to change"
    return f"\n  wireguard {report['ifname']} ({report['backend']}): {report['status']}: {what}"


# --- undo journal --------------------------------------------------------------------------


class _Journal:
    """Undo steps, run newest first; failures are collected, not raised."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, Callable[[], None]]] = []

    def push(self, what: str, fn: Callable[[], None]) -> None:
        self.steps.append((what, fn))

    def rollback(self) -> list[str]:
        problems = []
        for what, fn in reversed(self.steps):
            try:
                fn()
            except Exception as e:
                problems.append(f"{what}: {e}")
        self.steps.clear()
        return problems


def _read_raw(fd: int, layout: Layout, name: str) -> dict[bytes, bytes]:
    m = layout.maps[name]
    ksize, vsize = layout.size(m.key), layout.size(m.value)
    out = {}
    for key in libbpf.map_keys(fd, ksize):
        value = libbpf.map_lookup(fd, key, vsize)
        if value is not None:
            out[key] = value
    return out


def _upsert(fd: int, want: dict[bytes, bytes], have: dict[bytes, bytes]) -> dict[str, int]:
    """Write the entries that are new or differ."""
    added = changed = 0
    for key, value in want.items():
        if key not in have:
            added += 1
        elif have[key] != value:
            changed += 1
        else:
            continue
        libbpf.map_update(fd, key, value)
    return {"added": added, "changed": changed}


def _delete_stale(fd: int, want: dict[bytes, bytes], have: dict[bytes, bytes]) -> dict[str, int]:
    """Delete the keys that should not be there."""
    stale = [key for key in have if key not in want]
    for key in stale:
        libbpf.map_delete(fd, key)
    return {"removed": len(stale)}


def _allow_list(layout: Layout, name: str) -> bool:
    """A map whose values only name the allowing verdict (policy maps): its entries only
    ever add allows, so the union of two versions' entries allows no more than either."""
    value = layout.maps[name].value
    fields = layout.structs[value].fields if value in layout.structs else {}
    return bool(fields) and {f for f, d in fields.items() if d.encoding != "pad8"} <= {"verdict"}


def _snapshot_reason(
    layout: Layout,
    want: dict[str, dict[bytes, bytes]],
    fits: dict[str, Any],
    have: dict[str, dict[bytes, bytes]],
) -> str | None:
    """Why the new version's data maps must be a fresh set rather than the pinned ones
    synced in place; None if in place is safe.

    Syncing in place is not atomic: until the hooks are swapped the old programs read a
    mix of old and new entries. Within one map every entry flips atomically, and the
    union of two allow lists allows nothing neither version allows. But a classification
    map (endpoints, ipcache: which profile or peer class an address is) changing together
    with another data map can combine into allows of neither version (an address already
    in its new peer class meeting the old policy). Shared only when the layout fits and
    the verdict numbers keep their meaning (see `_plan_maps`)."""
    misfits = {m: fits[m] for m in want if isinstance(fits[m], str)}
    if "verdicts renumbered" in misfits.values():
        return "consistent snapshot: verdicts renumbered"
    if misfits:
        return "consistent snapshot: " + "; ".join(f"{m} {w}" for m, w in sorted(misfits.items()))
    changed = sorted(m for m in want if want[m] != have[m])
    classifying = [m for m in changed if not _allow_list(layout, m)]
    if len(classifying) > 1 or (classifying and len(changed) > 1):
        return "consistent snapshot: " + ", ".join(changed) + " change together"
    return None


# --- apply ---------------------------------------------------------------------------------


def apply(
    out: str | Path,
    node: str,
    *,
    pin_root: str | Path | None = None,
    state_dir: str | Path | None = None,
    wireguard: str = "auto",
) -> ApplyResult:
    """Apply OUT's datapath for `node` to this network namespace (the caller's thread's);
    see the module doc. Raises ApplyError (nothing changed, or rolled back). Then the node's
    WireGuard tunnel, if OUT plans one, with backend `wireguard` (auto, kernel, userspace)."""
    from pyroute2 import IPRoute

    art = read_artifacts(out, node)
    paths = state.paths_for(node, pin_root, state_dir)
    if str(paths.pin_root).startswith("/sys/fs/bpf/"):
        ensure_bpffs()
    try:
        with state.locked(paths), IPRoute() as ipr:
            result = _Apply(art, paths, ipr).run()
            result.wireguard = _apply_tunnel(art, paths, wireguard)
            return result
    except ApplyError:
        if not paths.state_file.exists():  # a first apply that failed: leave no residue
            _remove_empty_dirs(paths)
        raise


def _apply_tunnel(art: Artifacts, paths: Paths, choice: str) -> dict[str, Any] | None:
    """The node's WireGuard tunnel, once the programs are in place (they judge what it
    decrypts). A failure leaves the datapath applied and says so."""
    from pyroute2.netlink.exceptions import NetlinkError

    from netcc.loader.wireguard.apply import apply_tunnel
    from netcc.loader.wireguard.backend import BackendError

    try:
        report = apply_tunnel(art.out, art.lock, art.node, paths.state_dir, choice)
    except (BackendError, NetlinkError, OSError) as e:
        raise ApplyError(f"the datapath is applied, but the WireGuard tunnel is not: {e}") from e
    return report.to_json() if report else None


def _remove_empty_dirs(paths: Paths) -> None:
    for d in (paths.staging, paths.maps, paths.links, paths.progs, paths.pin_root):
        with suppress(OSError):
            d.rmdir()
    with suppress(OSError):
        (paths.state_dir / ".lock").unlink()
        paths.state_dir.rmdir()


class _Apply:
    """One apply run; see `apply`."""

    def __init__(self, art: Artifacts, paths: Paths, ipr: Any) -> None:
        self.art, self.paths, self.ipr = art, paths, ipr
        self.layout = art.layout
        self.journal = _Journal()
        self.fds: list[int] = []  # closed at the end
        self.warnings: list[str] = []
        self.maps_report: dict[str, dict[str, Any]] = {}
        self.created_clsact: set[int] = set()  # clsact qdiscs this run added
        self.stale_hooks: list[Hook] = []  # hooks this run took netcc off
        self.touched = False  # whether anything the running datapath uses was changed
        self.old = state.load_state(paths)
        self.old_layout: Layout | None = None
        self.old_verdicts: dict[str, Any] = {"verdicts": []}
        if self.old is not None:
            if Path(self.old["pin_root"]) != paths.pin_root:
                raise ApplyError(
                    f"node {paths.node} is applied under {self.old['pin_root']}, not "
                    f"{paths.pin_root}; detach it first"
                )
            self.old_layout = Layout(json.loads(state.read_copy(paths, state.LAYOUT_COPY)))
            self.old_verdicts = json.loads(state.read_copy(paths, state.VERDICTS_COPY))

    def _get(self, path: Path) -> int:
        fd = libbpf.obj_get(path)
        self.fds.append(fd)
        return fd

    # -- planning --

    def _expected_data(self, endpoints: list[Endpoint]) -> Data:
        """Packed contents of every data map, endpoints bound to their interfaces."""
        bound = {e.ip: e.ifindex for e in endpoints if e.ifindex}
        want = {}
        for name, entries in self.art.maps.items():
            if name == ENDPOINTS:
                entries = [
                    {**e, "value": {**e.get("value", {}), "ifindex": bound[e["key"]["ip"]]}}
                    for e in entries
                    if e["key"]["ip"] in bound
                ]
            want[name] = dict(self.layout.pack_entries(name, entries))
            if self.layout.maps[name].percpu:
                raise ApplyError(f"data map {name} is per-CPU; the loader cannot sync it")
        return want

    def _desired_hooks(self, endpoints: list[Endpoint], mode: str) -> dict[HookKey, Hook]:
        hooks = {}
        for e in endpoints:
            if not e.ifindex:
                continue
            for d in HOOKS:
                pin = str(self.paths.link_pin(e.ifindex, d)) if mode == TCX else None
                hooks[(e.ifindex, d)] = Hook(e.ifindex, e.ifname or "", d, mode, pin)
        for ifindex, ifname in uplinks(self.ipr, self.art.maps.get(LB_SERVICES, [])):
            for d in HOOKS:
                pin = str(self.paths.link_pin(ifindex, d)) if mode == TCX else None
                hooks[(ifindex, d)] = Hook(ifindex, ifname, d, mode, pin, role=UPLINK)
        return hooks

    def _old_hooks(self) -> list[Hook]:
        return [Hook.from_json(h) for h in (self.old or {}).get("hooks", [])]

    def _same_version_usable(self) -> bool:
        if self.old is None or self.old.get("digest") != self.art.digest:
            return False
        pins = [self.paths.maps / m for m in self.layout.maps]
        # the programs pinned last time (an older object may lack the uplink ones), and those
        # the hooks need now (a loader that did not know the uplink ones pinned only the pods')
        programs = set(self.old.get("programs") or PROGRAMS) | set(POD_PROGRAMS)
        if uplinks(self.ipr, self.art.maps.get(LB_SERVICES, [])):
            programs |= set(UPLINK_PROGRAMS)
        pins += [self.paths.prog_dir(self.art.digest) / p for p in sorted(programs)]
        return all(p.exists() for p in pins)

    def _old_prog_fds(self) -> dict[str, int]:
        """fds of the programs of the applied version (kept open: rollback targets)."""
        if self.old is None:
            return {}
        d = self.paths.prog_dir(self.old["digest"])
        return {p: self._get(d / p) for p in PROGRAMS if (d / p).exists()}

    # -- run --

    def run(self) -> ApplyResult:
        try:
            return self._run()
        finally:
            for fd in self.fds:
                os.close(fd)

    def _run(self) -> ApplyResult:
        endpoints = resolve_endpoints(self.ipr, self.art.maps[ENDPOINTS])
        for e in endpoints:
            if not e.ifindex:
                self.warnings.append(f"pod {e.ip} ({e.note}): {e.reason}; skipped")
        want = self._expected_data(endpoints)
        old_progs = self._old_prog_fds()
        same = self._same_version_usable()
        obj: BpfObject | None = None
        try:
            if same:
                progs = dict(old_progs)
                map_fds = {m: self._get(self.paths.maps / m) for m in self.layout.maps}
                fresh: set[str] = set()
                old_map_fds: dict[str, int] = {}
                tr = None
            else:
                obj, progs, map_fds, fresh, old_map_fds, tr = self._load(want)
            mode = attach.choose_mode(progs[PROGRAMS[0]])
            desired = self._desired_hooks(endpoints, mode)
            missing = sorted({h.program for h in desired.values()} - set(progs))
            if missing:
                raise ApplyError(f"{self.art.out}/{OBJECT_PATH} has no {', '.join(missing)}")
            prog_ids = {p: libbpf.prog_info(fd)["id"] for p, fd in progs.items()}
            current = {h.key(): (h, attach.hook_prog_id(self.ipr, h)) for h in self._old_hooks()}
            have = {m: _read_raw(map_fds[m], self.layout, m) for m in want if m not in fresh}
            if same and self._nothing_to_do(desired, current, prog_ids, want, have, endpoints):
                return self._result("unchanged", mode, desired, {}, endpoints, prog_ids)
            self.touched = True
            self._sync_maps(want, have, map_fds, fresh)
            self._migrate(old_map_fds, map_fds, tr, second_pass=False)
            actions = self._swap_hooks(desired, current, progs, old_progs, prog_ids)
            self._migrate(old_map_fds, map_fds, tr, second_pass=True)
            self._flush_removed_backends(map_fds)
            self._drop_stale_hooks(desired, current, old_progs, actions)
            if not same:
                self._commit_pins(fresh)
            self._save(mode, desired, endpoints, prog_ids, tr)
        except BaseException as e:
            problems = self.journal.rollback()
            if isinstance(e, KeyboardInterrupt | SystemExit):
                raise
            if problems:
                restored = "rollback incomplete: " + "; ".join(problems)
            elif not self.touched:
                restored = "nothing was changed"
            else:
                restored = "previous datapath restored" if self.old else "nothing left applied"
            if isinstance(e, ApplyError):
                raise ApplyError(f"{e}; {restored}", e.log, not problems) from e
            log = getattr(e, "log", "")
            raise ApplyError(f"apply failed: {e}; {restored}", log, not problems) from e
        finally:
            if obj is not None:
                obj.close()
        self.journal.steps.clear()
        self._cleanup(same)
        status = "repaired" if same else ("updated" if self.old else "applied")
        return self._result(status, mode, desired, actions, endpoints, prog_ids)

    def _nothing_to_do(
        self,
        desired: dict[HookKey, Hook],
        current: Current,
        prog_ids: dict[str, int],
        want: Data,
        have: Data,
        endpoints: list[Endpoint],
    ) -> bool:
        """Whether hooks, maps and recorded bindings are all as they should be."""
        for key, hook in desired.items():
            cur = current.get(key)
            if cur is None or cur[0].mode != hook.mode or cur[1] != prog_ids[hook.program]:
                return False
            if cur[0].ifname != hook.ifname:
                return False
        if set(current) - set(desired):
            return False
        if any(want[m] != have[m] for m in want):
            return False
        bound = {e.ip: e.ifindex for e in endpoints}
        return bound == {e["ip"]: e.get("ifindex") for e in (self.old or {}).get("endpoints", [])}

    # -- loading a new version --

    def _plan_maps(self, want: Data, tr: migrate.Translation) -> tuple[set[str], dict[str, int]]:
        """Which pinned maps the new object shares, which it gets anew; returns (fresh
        names, old fds of maps to migrate). Fills the report."""
        layout, fresh, old_map_fds, fits = self.layout, set(), {}, {}
        for name in layout.maps:
            pin = self.paths.maps / name
            if not pin.exists():
                fits[name] = "new map"
                continue
            fd = self._get(pin)
            why = migrate.layout_mismatch(libbpf.map_info(fd), layout, name)
            if why is None and not tr.identical and migrate.carries_verdicts(layout, name):
                why = "verdicts renumbered"
            fits[name] = why or fd
        snapshot = _snapshot_reason(layout, want, fits, self._current_data(fits))
        for name in layout.maps:
            fit = fits[name]
            if fit == "new map":
                fresh.add(name)
                self.maps_report[name] = {"plan": "create"}
            elif name in want and snapshot:
                fresh.add(name)  # all data maps anew: the new programs get a consistent set
                self.maps_report[name] = {"plan": "recreate", "why": snapshot}
            elif isinstance(fit, str):
                fresh.add(name)
                plan = "create"
                carry = name not in migrate.CACHES
                if carry and self.old_layout and name in self.old_layout.maps:
                    old_map_fds[name] = self._get(self.paths.maps / name)
                    plan = "migrate"
                self.maps_report[name] = {"plan": plan, "why": fit}
            else:
                libbpf.obj_pin(fit, self.paths.staging / name)
                self.maps_report[name] = {"plan": "reuse"}
        return fresh, old_map_fds

    def _current_data(self, fits: dict[str, Any]) -> Data:
        return {
            name: _read_raw(fit, self.layout, name)
            for name, fit in fits.items()
            if name in self.art.maps and not isinstance(fit, str)
        }

    def _load(
        self, want: Data
    ) -> tuple[
        BpfObject, dict[str, int], dict[str, int], set[str], dict[str, int], migrate.Translation
    ]:
        """Load the new object next to the running one; returns (object, program fds, map
        fds, maps created fresh, old fds of migrated maps, verdict translation)."""
        paths, layout = self.paths, self.layout
        stale = (self.old or {}).get("stale_verdict")
        tr = migrate.translation(self.old_verdicts, self.art.verdicts, stale)
        state.remove_pin_tree(paths.staging)
        paths.staging.mkdir(parents=True)
        self.journal.push("remove staging pins", lambda: state.remove_pin_tree(paths.staging))
        fresh, old_map_fds = self._plan_maps(want, tr)
        obj = self._load_object()
        try:
            prog_dir = paths.prog_dir(self.art.digest)
            if self.old is None or self.old["digest"] != self.art.digest:
                state.remove_pin_tree(prog_dir)
            prog_dir.mkdir(parents=True, exist_ok=True)
            progs = {}
            has = set(obj.program_names())  # an older object may lack the uplink programs
            for p in PROGRAMS:
                if p not in has and p not in POD_PROGRAMS:
                    continue
                progs[p] = obj.prog_fd(p)
                if os.path.lexists(prog_dir / p):
                    os.unlink(prog_dir / p)
                libbpf.obj_pin(progs[p], prog_dir / p)
            if self.old is None or self.old["digest"] != self.art.digest:
                self.journal.push("unpin new programs", lambda: state.remove_pin_tree(prog_dir))
            map_fds = {m: obj.map_fd(m) for m in layout.maps}
        except BaseException:
            obj.close()
            raise
        return obj, progs, map_fds, fresh, old_map_fds, tr

    def _load_object(self) -> BpfObject:
        """Open and load the verified object bytes (from a private copy, so the file libbpf
        reads is the one checked against the lock)."""
        with tempfile.TemporaryDirectory(prefix="netcc-load-") as tmp:
            path = Path(tmp) / "datapath.o"
            path.write_bytes(self.art.files[OBJECT_PATH])
            obj = None
            try:
                obj = BpfObject.open(path, pin_root=str(self.paths.staging))
                obj.load()
            except BpfError as e:
                if obj is not None:
                    obj.close()
                why = f"{os.strerror(e.errno)}, errno {e.errno}"
                log = " (verifier log above)" if e.log else ""
                raise ApplyError(
                    f"the kernel refused {self.art.out}/{OBJECT_PATH} ({why}){log}", e.log
                ) from None
            return obj

    # -- maps --

    def _sync_maps(self, want: Data, have: Data, map_fds: dict[str, int], fresh: set[str]) -> None:
        """Fill fresh data maps; sync shared ones in place: every upsert (in every map)
        before any delete, so that, while the old programs still read them, the allow
        lists are at most the union of the old and new ones. Saved contents are restored
        the same way on rollback."""
        shared = [m for m in want if m not in fresh]
        for name in want:
            report = self.maps_report.setdefault(name, {"plan": "reuse"})
            if name in fresh:
                report |= _upsert(map_fds[name], want[name], {})
        saved = {m: have[m] for m in shared}

        def restore() -> None:
            now = {m: _read_raw(map_fds[m], self.layout, m) for m in shared}
            for m in shared:
                _upsert(map_fds[m], saved[m], now[m])
            for m in shared:
                _delete_stale(map_fds[m], saved[m], now[m])

        self.journal.push("restore map contents", restore)
        for m in shared:
            self.maps_report[m] |= _upsert(map_fds[m], want[m], have[m])
        for m in shared:
            self.maps_report[m] |= _delete_stale(map_fds[m], want[m], have[m])

    def _migrate(
        self,
        old_fds: dict[str, int],
        map_fds: dict[str, int],
        tr: migrate.Translation | None,
        second_pass: bool,
    ) -> None:
        """Carry state maps into their replacements (see `migrate.migrate`)."""
        if not old_fds or self.old_layout is None:
            return
        for name, old_fd in old_fds.items():
            if name in self.art.maps:
                continue  # data maps come from OUT
            res = migrate.migrate(
                old_fd, self.old_layout, map_fds[name], self.layout, name, tr, second_pass
            )
            if res is not None:
                total = self.maps_report[name].setdefault("migrated", {"copied": 0, "skipped": 0})
                total["copied"] += res.copied
                total["skipped"] += res.skipped

    def _flush_removed_backends(self, map_fds: dict[str, int]) -> None:
        """Drop the non-TCP service flows to backends this version removed (see
        `migrate.flush_removed_backends`); counted as `flushed` in netcc_ct's report."""
        if self.old is None:
            return
        n = migrate.flush_removed_backends(map_fds, self.layout, self.art.maps)
        if n:
            self.maps_report.setdefault("netcc_ct", {"plan": "reuse"})["flushed"] = n

    def _commit_pins(self, fresh: set[str]) -> None:
        """Move the new version's map pins from `next/` to `maps/` (replacing the old);
        unpin maps the new version no longer has."""
        paths = self.paths
        paths.maps.mkdir(parents=True, exist_ok=True)
        gone = [p for p in paths.maps.iterdir() if p.name not in self.layout.maps]
        for name in [m for m in self.layout.maps if m in fresh] + [p.name for p in gone]:
            src, dst = paths.staging / name, paths.maps / name
            old_fd = self._get(dst) if dst.exists() else None
            if name in self.layout.maps:
                os.replace(src, dst)
            else:
                os.unlink(dst)

            def undo(dst=dst, old_fd=old_fd) -> None:
                if os.path.lexists(dst):
                    os.unlink(dst)
                if old_fd is not None:
                    libbpf.obj_pin(old_fd, dst)

            self.journal.push(f"restore pin {dst}", undo)

    # -- hooks --

    def _swap_hooks(
        self,
        desired: dict[HookKey, Hook],
        current: Current,
        progs: dict[str, int],
        old_progs: dict[str, int],
        prog_ids: dict[str, int],
    ) -> dict[HookKey, str]:
        """Point every desired hook at the new program; returns the action per hook."""
        actions: dict[HookKey, str] = {}
        clsact_done: set[int] = set()
        for key, hook in sorted(desired.items()):
            fd = progs[hook.program]
            cur = current.get(key)
            if cur is not None and cur[0].mode == hook.mode and cur[1] is not None:
                if cur[1] == prog_ids[hook.program]:
                    actions[key] = "kept"
                    continue
                attach.replace(self.ipr, hook, fd)
                actions[key] = "replaced"
                old_fd = old_progs.get(hook.program)
                if old_fd is not None:
                    self.journal.push(
                        f"re-point {hook.ifname} {hook.direction}",
                        lambda h=hook, o=old_fd: attach.replace(self.ipr, h, o),
                    )
                else:
                    self.journal.push(
                        f"detach {hook.ifname} {hook.direction}",
                        lambda h=hook: attach.detach(self.ipr, h),
                    )
                continue
            if hook.mode == TC and hook.ifindex not in clsact_done:
                clsact_done.add(hook.ifindex)
                if attach.ensure_clsact(self.ipr, hook.ifindex):
                    self.created_clsact.add(hook.ifindex)
                    self.journal.push(
                        f"delete clsact on {hook.ifname}",
                        lambda i=hook.ifindex: attach.delete_clsact(self.ipr, i),
                    )
            if hook.mode == TCX:
                self.paths.links.mkdir(parents=True, exist_ok=True)
            attach.attach(self.ipr, hook, fd)
            actions[key] = "attached"
            self.journal.push(
                f"detach {hook.ifname} {hook.direction}", lambda h=hook: attach.detach(self.ipr, h)
            )
        return actions

    def _drop_stale_hooks(
        self,
        desired: dict[HookKey, Hook],
        current: Current,
        old_progs: dict[str, int],
        actions: dict[HookKey, str],
    ) -> None:
        """Take netcc off hooks no longer wanted: pods gone, or the attach mode changed."""
        for key, (hook, prog_id) in sorted(current.items()):
            new = desired.get(key)
            if new is not None and new.mode == hook.mode:
                continue
            attach.detach(self.ipr, hook)
            if new is None:
                actions[key] = "detached"
            old_fd = old_progs.get(hook.program)
            if prog_id is not None and old_fd is not None:
                self.journal.push(
                    f"re-attach {hook.ifname} {hook.direction}",
                    lambda h=hook, o=old_fd: attach.attach(self.ipr, h, o),
                )
            self.stale_hooks.append(hook)

    # -- state --

    def _clsact_owned(self, desired: dict[HookKey, Hook]) -> list[int]:
        """Interfaces whose clsact qdisc netcc made (kept across applies while in use)."""
        before = set((self.old or {}).get("clsact_created", []))
        live = {h.ifindex for h in desired.values() if h.mode == TC}
        return sorted((before | self.created_clsact) & live)

    def _save(
        self,
        mode: str,
        desired: dict[HookKey, Hook],
        endpoints: list[Endpoint],
        prog_ids: dict[str, int],
        tr: migrate.Translation | None,
    ) -> None:
        """Record what is applied (the commit point); undone by restoring the old files."""
        old_files = {}
        if self.old is not None:
            for name in (state.STATE_FILE, state.LOCK_COPY, state.LAYOUT_COPY, state.VERDICTS_COPY):
                old_files[name] = state.read_copy(self.paths, name)
        netns = current_netns()
        doc = {
            "node": self.paths.node,
            "pin_root": str(self.paths.pin_root),
            "netns": {"dev": netns[0], "ino": netns[1]},
            "digest": self.art.digest,
            "out": str(self.art.out.resolve()),
            "applied_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "mode": mode,
            "programs": prog_ids,
            "hooks": [h.to_json() for _, h in sorted(desired.items())],
            "endpoints": [e.__dict__ for e in endpoints],
            "clsact_created": self._clsact_owned(desired),
            "stale_verdict": tr.stale if tr is not None else (self.old or {}).get("stale_verdict"),
        }
        copies = {
            state.LOCK_COPY: self.art.files[LOCK_NAME],
            state.LAYOUT_COPY: self.art.files[LAYOUT_PATH],
            state.VERDICTS_COPY: self.art.files[VERDICTS_PATH],
        }
        state.save_state(self.paths, doc, copies)

        def undo() -> None:
            if not old_files:
                state.remove_state(self.paths)
                return
            for name, data in old_files.items():
                state._write_atomic(self.paths.state_dir / name, data)

        self.journal.push("restore state", undo)

    def _cleanup(self, same: bool) -> None:
        """After commit: unpin previous programs, stale links, the staging dir; clsact
        qdiscs netcc made on interfaces it left. Failures are warnings."""
        problems = state.remove_pin_tree(self.paths.staging)
        if not same and self.paths.progs.exists():
            for d in self.paths.progs.iterdir():
                if d.name != self.art.digest:
                    problems += state.remove_pin_tree(d)
        owned = set((self.old or {}).get("clsact_created", []))
        for hook in self.stale_hooks:
            if hook.mode == TC and hook.ifindex in owned:
                try:
                    if attach.clsact_present(self.ipr, hook.ifindex) and not (
                        attach.foreign_filters(self.ipr, hook.ifindex)
                        or attach.tc_prog_id(self.ipr, hook.ifindex, "ingress")
                        or attach.tc_prog_id(self.ipr, hook.ifindex, "egress")
                    ):
                        attach.delete_clsact(self.ipr, hook.ifindex)
                except Exception as e:
                    if getattr(e, "code", None) not in (19, 22):  # ENODEV, EINVAL: gone
                        problems.append(f"clsact on {hook.ifname}: {e}")
        self.warnings += [f"cleanup: {p}" for p in problems]

    def _result(
        self,
        status: str,
        mode: str,
        desired: dict[HookKey, Hook],
        actions: dict[HookKey, str],
        endpoints: list[Endpoint],
        prog_ids: dict[str, int],
    ) -> ApplyResult:
        hooks = []
        for key, hook in sorted(desired.items()):
            hooks.append(
                hook.to_json()
                | {"program": hook.program, "prog_id": prog_ids[hook.program]}
                | {"action": actions.get(key, "kept")}
            )
        for h in self.stale_hooks:
            if h.key() not in desired:
                hooks.append(h.to_json() | {"program": h.program, "action": "detached"})
        return ApplyResult(
            node=self.paths.node,
            digest=self.art.digest,
            status=status,
            mode=mode,
            pin_root=str(self.paths.pin_root),
            state_dir=str(self.paths.state_dir),
            hooks=hooks,
            endpoints=[e.__dict__ for e in endpoints],
            maps=self.maps_report,
            warnings=self.warnings,
        )
