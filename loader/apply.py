"""`netcc load apply`: put an artifact directory's datapath on this node, or update it.

Reads only OUT, never the spec. Plans before it acts:

1. What should be (`desired.Desired`): OUT, read once and checked against its lock
   (`artifacts`), the attach mode, and the endpoints the runtime added (none from the CLI).
2. What is (`snapshot.take`): the state file, the pinned maps and programs, what runs on each
   hook, and where the node routes each local pod address (`routes`): OUT's endpoints are
   bound to that interface and its ifindex goes into the endpoint entry (anti-spoofing); a pod
   with no such interface yet is reported and skipped.
3. The diff (`plan.plan`, pure): a list of actions (`actions`). None: "unchanged", and nothing
   is written. Otherwise a new version is loaded next to the running one, its maps the pinned
   ones where they fit, new ones where the layout or the verdict numbering changed
   (`migrate`); data maps are synced (upsert, then delete stale keys), state maps migrated,
   and every hook swapped atomically to the new program (`bpf_link_update` / tc filter
   replace): no moment without enforcement. Conntrack and counters carry over.
4. The executor (`execute`) runs the actions with an undo journal: a failure before the state
   is written rolls back (every hook back on the previous programs, previous map contents and
   pins restored, the new pins removed). A verifier failure stops before anything changed,
   with the log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netcc.loader import attach, snapshot, state
from netcc.loader.actions import ApplyStatus, HookChange
from netcc.loader.artifacts import ENDPOINTS, LB_SERVICES, Artifacts, read_artifacts
from netcc.loader.bpffs import ensure_bpffs
from netcc.loader.desired import Desired, Endpoint, RuntimeEndpoint, ServiceOverlay
from netcc.loader.errors import ApplyError
from netcc.loader.execute import Executor, Outcome
from netcc.loader.libbpf import BpfError
from netcc.loader.link.hook import Mode
from netcc.loader.plan import Plan, plan
from netcc.loader.routes import resolve_endpoints, uplinks
from netcc.loader.state import Paths

__all__ = [
    "ENDPOINTS",
    "LB_SERVICES",
    "ApplyError",
    "ApplyResult",
    "Artifacts",
    "Endpoint",
    "RuntimeEndpoint",
    "apply",
    "apply_desired",
    "format_result",
    "read_artifacts",
    "resolve_endpoints",
    "uplinks",
]


# --- results -------------------------------------------------------------------------------


@dataclass
class ApplyResult:
    """What an apply did. `status`: applied (first time), updated (new version), repaired
    (same version, something had drifted), unchanged."""

    node: str
    digest: str
    status: ApplyStatus
    mode: Mode
    pin_root: str
    state_dir: str
    hooks: list[dict[str, Any]] = field(default_factory=list)
    endpoints: list[dict[str, Any]] = field(default_factory=list)
    maps: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    wireguard: dict[str, Any] | None = None  # the tunnel's TunnelReport, if OUT plans one
    ipsec: dict[str, Any] | None = None  # the XFRM reconcile's IPsecReport, if OUT plans IPsec

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__) | {"status": self.status.value, "mode": self.mode.value}


def format_result(r: ApplyResult) -> str:
    """Human-readable summary of an ApplyResult."""
    tunnel = _format_tunnel(r.wireguard) + _format_ipsec(r.ipsec)
    if r.status == ApplyStatus.UNCHANGED:
        return f"netcc: {r.node}: unchanged (artifacts {r.digest[:12]}, {r.mode})" + tunnel
    acted = [h for h in r.hooks if h["action"] != HookChange.KEPT]
    counts: dict[str, int] = {}
    for h in acted:
        counts[h["action"]] = counts.get(h["action"], 0) + 1
    ifaces = {h["ifname"] for h in r.hooks if h["action"] != HookChange.DETACHED}
    lines = [
        f"netcc: {r.node}: {r.status} artifacts {r.digest[:12]} in {r.mode} mode on "
        f"{len(ifaces)} interface(s): "
        + (", ".join(f"{n} {a}" for a, n in sorted(counts.items())) or "hooks kept")
    ]
    for name, m in sorted(r.maps.items()):
        bits = [str(m["plan"])]
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


def _format_ipsec(report: dict[str, Any] | None) -> str:
    if not report:
        return ""
    what = ", ".join(report.get("changes") or []) or "nothing to change"
    kept = report.get("kept") or []
    return f"\n  ipsec: {report['status']}: {what}" + (
        f" (kept: {', '.join(kept)})" if kept else ""
    )


def _result(p: Plan, paths: Paths, digest: str, done: Outcome | None) -> ApplyResult:
    """The result of a plan, run (`done`) or with nothing to run."""
    prog_ids = done.prog_ids if done else p.prog_ids
    hooks = [
        hook.to_json()
        | {"program": hook.program, "prog_id": prog_ids[hook.program]}
        | {"action": p.change(key).value}
        for key, hook in sorted(p.hooks.items())
    ]
    hooks += [
        h.to_json() | {"program": h.program, "action": HookChange.DETACHED.value}
        for h in p.detached
        if h.key() not in p.hooks
    ]
    return ApplyResult(
        node=paths.node,
        digest=digest,
        status=p.status,
        mode=p.mode,
        pin_root=str(paths.pin_root),
        state_dir=str(paths.state_dir),
        hooks=hooks,
        endpoints=[e.to_json() for e in p.endpoints],
        maps=done.maps if done else p.maps,
        warnings=p.warnings + (done.warnings if done else []),
    )


# --- apply ---------------------------------------------------------------------------------


def apply(
    out: str | Path,
    node: str,
    *,
    pin_root: str | Path | None = None,
    state_dir: str | Path | None = None,
    wireguard: str = "auto",
    runtime: Iterable[RuntimeEndpoint] = (),
    services: Callable[[], ServiceOverlay | None] | None = None,
) -> ApplyResult:
    """Apply OUT's datapath for `node` to this network namespace (the caller's thread's),
    with the endpoints the runtime added (`runtime`) and the live service backends the
    daemon found (`services`, asked under the node's lock, so that no change of them made
    meanwhile is undone); see the module doc. Raises ApplyError
    (nothing changed, or rolled back). First the node's IPsec states and policies, if OUT
    plans IPsec; after the datapath, its WireGuard tunnel, if OUT plans one, with backend
    `wireguard` (auto, kernel, userspace)."""
    from pyroute2 import IPRoute

    art = read_artifacts(out, node)
    paths = state.paths_for(node, pin_root, state_dir)
    if str(paths.pin_root).startswith("/sys/fs/bpf/"):
        ensure_bpffs()
    try:
        with state.locked(paths), IPRoute() as ipr:
            overlay = services() if services is not None else None
            desired = Desired(art, paths, _mode(), tuple(runtime), overlay)
            # IPsec before the datapath: pod CIDRs stay routed over the underlay (the XFRM
            # policies match them), so pod traffic must never flow before they are in place.
            ipsec = _apply_ipsec(art, paths)
            result = apply_desired(desired, ipr)
            result.wireguard = _apply_tunnel(art, paths, wireguard)
            result.ipsec = ipsec
            return result
    except ApplyError:
        if not paths.state_file.exists():  # a first apply that failed: leave no residue
            _remove_empty_dirs(paths)
        raise


def apply_desired(desired: Desired, ipr: Any) -> ApplyResult:
    """Snapshot, plan, run: the datapath part of `apply`, under the node's state lock."""
    snap = snapshot.take(ipr, desired)
    p = plan(desired, snap)
    done = Executor(desired, p, snap, ipr).run() if p.actions else None
    return _result(p, desired.paths, desired.digest, done)


def _mode() -> Mode:
    """The attach mode (`attach.choose_mode`); a bad choice refuses the apply."""
    try:
        return attach.choose_mode()
    except (BpfError, ValueError) as e:
        log = getattr(e, "log", "")
        raise ApplyError(f"apply failed: {e}; nothing was changed", log, True) from e


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


def _apply_ipsec(art: Artifacts, paths: Paths) -> dict[str, Any] | None:
    """The node's XFRM states and policies, if OUT plans IPsec (`netcc.loader.ipsec`)."""
    from netcc.loader.ipsec.apply import IPsecError, apply_ipsec

    try:
        report = apply_ipsec(art.out, art.lock, art.node, paths.state_dir)
    except (IPsecError, OSError) as e:
        raise ApplyError(f"IPsec is not applied: {e}") from e
    return report.to_json() if report else None


def _remove_empty_dirs(paths: Paths) -> None:
    for d in (paths.staging, paths.maps, paths.links, paths.progs, paths.pin_root):
        with suppress(OSError):
            d.rmdir()
    with suppress(OSError):
        (paths.state_dir / ".lock").unlink()
        paths.state_dir.rmdir()
