"""Reconcile a node's kernel XFRM states and policies with its IPsec plan (`nodes/NODE/ipsec.json`).

In order, in the calling thread's network namespace:

1. The plan is read from OUT (its sha256 checked against the verified lock) and checked
   (`netcc.contract.ipsec.from_doc`). Every key it lists is read from its file and checked
   (`check_key`: the id, and the plan's fingerprint); a key without a fingerprint in the plan
   is pinned to the fingerprint first seen under its id, and another key under that id is
   refused later. Every SA's key is derived (`sa_key`). A refusal changes nothing and never
   quotes key material.
2. The kernel's states and policies are dumped. netcc's own are those of the plan's reqid
   (`desired.is_ours_state`, `is_ours_policy`); nothing else is ever changed. A state or
   policy of someone else in the place of one of netcc's (the same destination and SPI; the
   same direction and selector) is refused before anything is sent.
3. The difference goes to the kernel, in the order that never drops traffic during a key
   rotation: first every missing `in` state, then `out` states (so every key the plan accepts
   is installed before anything sends with it), then the `in` and `fwd` policies, then the
   `out` policies (a changed template, the switch to the send key, is one XFRM_MSG_UPDPOLICY:
   atomic), and only then removals: policies that no longer belong, `out` states of keys the
   plan no longer lists, states of nodes it no longer lists. A state that differs from the
   plan (another key, selector, window...) is deleted and added again (XFRM cannot change a
   state's key in place). Nothing that matches is sent again: a second run sends nothing.

Removed keys and their grace time: a key the plan no longer lists keeps its `in` states for
`removedKeyGraceSeconds` (nodes still on the previous plan may send with it until they are
updated), counted from the first reconcile that found the key's states in the kernel with the
plan no longer listing it. That moment (wall-clock seconds) is written to the node's state
directory, `STATE_DIR/ipsec.json`, before anything is deleted, so a restarted loader or daemon
keeps counting from it; after the grace the next reconcile deletes them (`IPsecReport.recheck`
says when one is due; the daemon's periodic reconcile does it). A lost state directory restarts
the grace at the next reconcile (longer, never shorter); a clock set back to before the moment
restarts it at the current time. A kept state that vanished from the kernel is not installed
again (its key may be gone). The record also holds the pinned fingerprints (not secrets), the
peers' names by address and the names of the planned states and policies, for `ipsec_status`
and for removing netcc's objects when an OUT without IPsec is applied (`remove_ipsec`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netcc.contract.ipsec import PLAN_PATH, IPsecPlan, from_doc
from netcc.contract.ipseckey import ClusterKey, IPsecKeyError, check_key, read_key
from netcc.loader.ipsec.desired import (
    Wanted,
    is_ours_policy,
    is_ours_state,
    key_of_spi,
    policy_key,
    state_key,
    wanted,
)
from netcc.loader.ipsec.xfrm import (
    DIRECTION_NAMES,
    IPPROTO_ESP,
    XFRM_POLICY_FWD,
    XFRM_POLICY_IN,
    XFRM_POLICY_OUT,
    XFRM_POLICY_TYPE_MAIN,
    XfrmError,
    XfrmPolicy,
    XfrmSocket,
    XfrmState,
    xfrm_stats,
)

STATE_NAME = "ipsec.json"
RECORD_VERSION = 1
MAX_PLAN_BYTES = 64 << 20


class IPsecError(Exception):
    """The node's IPsec could not be brought to its plan; the message says why (never a key)."""


@dataclass
class IPsecReport:
    """What a reconcile did: `status` installed, updated, unchanged or removed; `changes`
    one line each; `kept` the states of removed keys still accepted and until when;
    `recheck` seconds until the next reconcile has something to remove (None: nothing due)."""

    node: str
    status: str
    changes: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    recheck: float | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


# --- the record in the state directory -------------------------------------------------------


@dataclass
class Record:
    node: str
    address: str
    peers: dict[str, str] = field(default_factory=dict)  # address -> node name
    pinned: dict[int, str] = field(default_factory=dict)  # key id -> fingerprint
    removed: dict[int, float] = field(default_factory=dict)  # key id -> since (epoch seconds)
    states: list[str] = field(default_factory=list)  # "DST SPI" of the planned states
    policies: list[str] = field(default_factory=list)  # "DIR SRC DST" of the planned policies

    def to_doc(self) -> dict[str, Any]:
        return {
            "version": RECORD_VERSION,
            "node": self.node,
            "address": self.address,
            "peers": dict(sorted(self.peers.items())),
            "pinned": {str(k): v for k, v in sorted(self.pinned.items())},
            "removed": {str(k): v for k, v in sorted(self.removed.items())},
            "states": sorted(self.states),
            "policies": sorted(self.policies),
        }

    @classmethod
    def from_doc(cls, doc: Any) -> Record:
        if not isinstance(doc, dict) or doc.get("version") != RECORD_VERSION:
            raise ValueError(f"version {doc.get('version') if isinstance(doc, dict) else None}")
        return cls(
            node=str(doc["node"]),
            address=str(doc["address"]),
            peers={str(k): str(v) for k, v in doc.get("peers", {}).items()},
            pinned={int(k): str(v) for k, v in doc.get("pinned", {}).items()},
            removed={int(k): float(v) for k, v in doc.get("removed", {}).items()},
            states=[str(s) for s in doc.get("states", [])],
            policies=[str(p) for p in doc.get("policies", [])],
        )


def read_record(state_dir: str | Path) -> Record | None:
    path = Path(state_dir) / STATE_NAME
    try:
        return Record.from_doc(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise IPsecError(f"{path}: unreadable ({e})") from None


def write_record(state_dir: str | Path, record: Record) -> None:
    from netcc.loader.state import write_atomic

    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record.to_doc(), indent=1, sort_keys=True) + "\n"
    write_atomic(state_dir / STATE_NAME, text.encode())


# --- the plan and its keys -------------------------------------------------------------------


def read_plan(out: str | Path, lock: Mapping[str, Any], node: str) -> IPsecPlan | None:
    """The node's IPsec plan from OUT (checked against `lock`, already verified), or None when
    OUT plans no IPsec for the node."""
    rel = PLAN_PATH.format(node=node)
    digest = lock.get("artifacts", {}).get(rel)
    if digest is None:
        return None
    try:
        data = (Path(out) / rel).read_bytes()
    except OSError as e:
        raise IPsecError(f"{out}/{rel}: unreadable ({e.strerror or e})") from None
    if len(data) > MAX_PLAN_BYTES or hashlib.sha256(data).hexdigest() != digest:
        raise IPsecError(f"refusing {out}: {rel} changed after the lock was checked")
    try:
        plan = from_doc(json.loads(data))
    except ValueError as e:  # IPsecFormatError is one, and so is bad JSON
        raise IPsecError(f"{rel}: {e}") from None
    if plan.node != node:
        raise IPsecError(f"{rel} is the plan of node {plan.node!r}")
    return plan


def read_keys(plan: IPsecPlan, pinned: dict[int, str]) -> dict[int, ClusterKey]:
    """Every key the plan lists, read from its file and checked against the plan (and, for a
    key without a fingerprint in the plan, against `pinned`, which learns a first one)."""
    keys = {}
    for ref in plan.keys:
        try:
            key = read_key(ref.file)
            got = check_key(ref, key)
        except IPsecKeyError as e:
            raise IPsecError(f"key {ref.id}: {e}") from None
        if ref.fingerprint is None and pinned.get(ref.id, got) != got:
            raise IPsecError(
                f"key {ref.id}: {ref.file} has fingerprint {got}, but this node installed "
                f"key {ref.id} with fingerprint {pinned[ref.id]}: a changed key under the "
                "same id is refused; give the new key a new id and roll it out as a rotation"
            )
        pinned[ref.id] = got
        keys[ref.id] = key
    return keys


# --- the reconcile ---------------------------------------------------------------------------

_STATE_ORDER = {"in": 0, "out": 1}
_POLICY_ORDER = {XFRM_POLICY_IN: 0, XFRM_POLICY_FWD: 1, XFRM_POLICY_OUT: 2}


def _state_dir(s: XfrmState, address: str) -> str:
    return "out" if s.src == address else "in"


def _describe_state(s: XfrmState, address: str, peers: Mapping[str, str]) -> str:
    d = _state_dir(s, address)
    peer = s.dst if d == "out" else s.src
    return f"state {d} {peers.get(peer, peer)} key {key_of_spi(s.spi)} spi 0x{s.spi:08x}"


def _describe_policy(p: XfrmPolicy) -> str:
    spi = p.templates[0].spi if p.templates else 0
    via = f" via spi 0x{spi:08x}" if spi else ""
    return f"policy {DIRECTION_NAMES.get(p.dir, p.dir)} {p.selector.src} -> {p.selector.dst}{via}"


def _differences(want: XfrmState, have: XfrmState) -> str:
    """Which fields of `have` are not the plan's (the key named, never shown)."""
    names = []
    for name in ("src", "selector", "replay_window", "flags", "mode", "family", "mark", "if_id"):
        if getattr(want, name) != getattr(have, name):
            names.append(name.replace("_", " "))
    if have.extras:
        names.append("attributes netcc never sets")
    algo = (want.aead.name, want.aead.icv_bits) if want.aead else None
    if have.aead is None or algo != (have.aead.name, have.aead.icv_bits):
        names.append("algorithm")
    elif want.aead is not None and want.aead.key != have.aead.key:
        names.append("key")
    return ", ".join(names) or "state"


def _conflicts(want: Wanted, states: list[XfrmState], policies: list[XfrmPolicy]) -> list[str]:
    """States and policies of someone else where the plan puts one of netcc's."""
    found = []
    for s in states:
        if not is_ours_state(s) and s.proto == IPPROTO_ESP and state_key(s) in want.states:
            found.append(f"a state {s.name()} with reqid {s.reqid} (not netcc's)")
    for p in policies:
        if (
            not is_ours_policy(p)
            and p.ptype == XFRM_POLICY_TYPE_MAIN
            and p.mark is None
            and p.if_id == 0
            and policy_key(p) in want.policies
        ):
            found.append(f"a {p.name()} (index {p.index}) without netcc's reqid")
    return found


def _is_plain(p: XfrmPolicy) -> bool:
    """One of netcc's policies as netcc installs them (no mark or interface id, main type)."""
    return p.mark is None and p.if_id == 0 and p.ptype == XFRM_POLICY_TYPE_MAIN


def _ignore_gone(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except XfrmError as e:
        if e.errno not in (errno.ESRCH, errno.ENOENT):
            raise


def reconcile(
    plan: IPsecPlan,
    keys: Mapping[int, ClusterKey],
    xs: XfrmSocket,
    record: Record,
    now: float | None = None,
    save: Callable[[Record], None] | None = None,
) -> IPsecReport:
    """Bring netcc's XFRM states and policies to `plan` (module doc). `record` learns the
    removed keys' times and the planned names; `save` (if given) is called with it after the
    dump and before anything is sent to the kernel."""
    now = time.time() if now is None else now
    want = wanted(plan, keys)
    states, policies = xs.states(), xs.policies()
    conflicts = _conflicts(want, states, policies)
    if conflicts:
        raise IPsecError(
            "XFRM objects of someone else are where netcc's plan puts its own; nothing was "
            "changed: " + "; ".join(conflicts)
        )
    ours_s: dict[tuple[str, int], XfrmState] = {}
    stray_s: list[XfrmState] = []  # netcc's reqid with a mark or interface id: never planned
    for s in states:
        if not is_ours_state(s):
            continue
        if s.mark is None and s.if_id == 0 and state_key(s) not in ours_s:
            ours_s[state_key(s)] = s
        else:
            stray_s.append(s)
    ours_p: dict[tuple[int, str, str], XfrmPolicy] = {}
    stray_p: list[XfrmPolicy] = []
    for p in policies:
        if not is_ours_policy(p):
            continue
        if _is_plain(p) and policy_key(p) not in ours_p:
            ours_p[policy_key(p)] = p
        else:
            stray_p.append(p)
    peers = want.peers
    record.peers = {a: n for a, n in peers.items() if a != plan.address}
    record.states = [f"{dst} 0x{spi:08x}" for dst, spi in want.states]
    record.policies = [f"{DIRECTION_NAMES[d]} {src} {dst}" for d, src, dst in sorted(want.policies)]

    # Removed keys: since when, and which of their `in` states are still kept.
    listed = {k.id for k in plan.keys}
    installed = {key_of_spi(s.spi) for s in ours_s.values()}
    for key_id in installed - listed:
        since = record.removed.get(key_id, now)
        record.removed[key_id] = now if since > now else since
    for key_id in list(record.removed):
        if key_id in listed or key_id not in installed:
            del record.removed[key_id]
    grace = plan.removed_key_grace
    kept: dict[tuple[str, int], XfrmState] = {}
    for k, s in ours_s.items():
        key_id = key_of_spi(s.spi)
        if (
            k not in want.states
            and key_id in record.removed
            and now < record.removed[key_id] + grace
            and s.dst == plan.address
            and s.src in record.peers
        ):
            kept[k] = s
    if save is not None:
        save(record)
    changes: list[str] = []
    created = not ours_s and not stray_s and not ours_p and not stray_p

    # 1. States: `in` before `out`, so every accepted key is there before anything sends.
    for k, s in sorted(
        want.states.items(), key=lambda i: _STATE_ORDER[_state_dir(i[1], plan.address)]
    ):
        have = ours_s.get(k)
        what = _describe_state(s, plan.address, peers)
        if have is None:
            xs.add_state(s)
            changes.append(f"{what} added")
        elif have != s:
            why = _differences(s, have)
            _ignore_gone(xs.delete_state, have)
            xs.add_state(s)
            changes.append(f"{what} replaced ({why} differed)")
    # 2. Policies: `in` and `fwd`, then `out` (its template names the send key's SPI).
    for k, p in sorted(want.policies.items(), key=lambda i: _POLICY_ORDER[i[1].dir]):
        have = ours_p.get(k)
        if have is None:
            xs.add_policy(p)
            changes.append(f"{_describe_policy(p)} added")
        elif have != p:
            xs.add_policy(p, update=True)
            changes.append(f"{_describe_policy(p)} updated")
    # 3. Removals: policies first (out first), then states (out first).
    gone_p = [p for k, p in ours_p.items() if k not in want.policies] + stray_p
    for p in sorted(gone_p, key=lambda p: -_POLICY_ORDER.get(p.dir, 0)):
        _ignore_gone(xs.delete_policy, p)
        changes.append(f"{_describe_policy(p)} removed")
    gone_s = [s for k, s in ours_s.items() if k not in want.states and k not in kept] + stray_s
    for s in sorted(gone_s, key=lambda s: -_STATE_ORDER[_state_dir(s, plan.address)]):
        _ignore_gone(xs.delete_state, s)
        changes.append(f"{_describe_state(s, plan.address, peers)} removed")

    left = {key_of_spi(s.spi) for k, s in ours_s.items() if k in want.states or k in kept}
    record.removed = {k: v for k, v in record.removed.items() if k in left}
    kept_text = [
        f"{_describe_state(s, plan.address, peers)} kept until "
        f"{_utc(record.removed[key_of_spi(s.spi)] + grace)} (key removed from the plan)"
        for s in sorted(kept.values(), key=lambda s: (s.src, s.spi))
    ]
    deadlines = [record.removed[key_of_spi(s.spi)] + grace - now for s in kept.values()]
    status = "unchanged" if not changes else "installed" if created else "updated"
    return IPsecReport(
        plan.node, status, changes, kept_text, max(0.0, min(deadlines)) if deadlines else None
    )


def _utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


# --- what the loader calls -------------------------------------------------------------------


def apply_ipsec(
    out: str | Path,
    lock: Mapping[str, Any],
    node: str,
    state_dir: str | Path,
    now: float | None = None,
) -> IPsecReport | None:
    """The node's XFRM states and policies as OUT plans them, in the calling thread's network
    namespace; netcc's are removed when OUT plans no IPsec but this node had it. None when
    there is no IPsec, before or after. IPsecError when it cannot be done (nothing changed if
    the plan, a key or a conflict refused it; what was done before a kernel refusal stays)."""
    state_dir = Path(state_dir)
    plan = read_plan(out, lock, node)
    record = read_record(state_dir)
    if plan is None:
        return None if record is None else remove_ipsec(state_dir, node)
    if record is None or (record.node, record.address) != (plan.node, plan.address):
        pinned = record.pinned if record is not None and record.node == plan.node else {}
        removed = record.removed if record is not None and record.node == plan.node else {}
        record = Record(plan.node, plan.address, pinned=dict(pinned), removed=dict(removed))
    keys = read_keys(plan, record.pinned)
    try:
        with XfrmSocket() as xs:
            # The record (pins, removal times) is written before the kernel is touched.
            report = reconcile(plan, keys, xs, record, now, lambda r: write_record(state_dir, r))
    except XfrmError as e:
        raise IPsecError(f"IPsec of node {node}: {e}") from None
    finally:
        del keys
    return report


def remove_ipsec(state_dir: str | Path, node: str) -> IPsecReport | None:
    """Delete every XFRM policy and state of netcc's in this namespace, then the record."""
    state_dir = Path(state_dir)
    record = read_record(state_dir)
    if record is None:
        return None
    changes = []
    try:
        with XfrmSocket() as xs:
            ours_p = [p for p in xs.policies() if is_ours_policy(p)]
            for p in sorted(ours_p, key=lambda p: -_POLICY_ORDER.get(p.dir, 0)):
                _ignore_gone(xs.delete_policy, p)
                changes.append(f"{_describe_policy(p)} removed")
            ours_s = [s for s in xs.states() if is_ours_state(s)]
            for s in sorted(ours_s, key=lambda s: s.src != record.address):
                _ignore_gone(xs.delete_state, s)
                changes.append(f"{_describe_state(s, record.address, record.peers)} removed")
    except XfrmError as e:
        raise IPsecError(f"IPsec of node {node}: removing netcc's XFRM objects: {e}") from None
    (state_dir / STATE_NAME).unlink(missing_ok=True)
    return IPsecReport(node, "removed", changes)


# --- status ----------------------------------------------------------------------------------


def ipsec_status(state_dir: str | Path) -> dict[str, Any] | None:
    """The node's SAs and XFRM error counters, when it applied an IPsec plan (None if not):

        {"ok", "problems": [...], "address", "sas": [{"peer", "dir", "src", "dst", "spi",
         "key", "selector", "bytes", "packets", "oseq", "seq", "replayWindow",
         "replayErrors", "replayWindowErrors", "integrityFailed", "addTime", "useTime"}],
         "policies": [{"dir", "src", "dst", "spi", "level"}], "errors": {XfrmStat: n, ...},
         "counters": {every /proc/net/xfrm_stat counter}}

    `oseq` is the 64-bit sequence number last sent (out SAs), `seq` the highest received
    (in SAs); bytes and packets are the SA's lifetime counters. `errors` are the XFRM error
    counters above zero (each counts dropped packets since the namespace was made; they never
    go down, so they are shown, not problems). Problems: a planned state or policy missing
    from the kernel. No key anywhere."""
    state_dir = Path(state_dir)
    record = read_record(state_dir)
    if record is None:
        return None
    doc: dict[str, Any] = {"address": record.address, "problems": []}
    try:
        with XfrmSocket() as xs:
            states = [s for s in xs.states() if is_ours_state(s)]
            policies = [p for p in xs.policies() if is_ours_policy(p)]
        counters = xfrm_stats()
    except (XfrmError, OSError) as e:
        return doc | {"ok": False, "problems": [f"ipsec: {e}"], "error": str(e)}
    sas = []
    for s in sorted(states, key=lambda s: (s.src != record.address, s.src, s.dst, s.spi)):
        d = _state_dir(s, record.address)
        c = s.counters
        assert c is not None
        sas.append(
            {
                "peer": record.peers.get(s.dst if d == "out" else s.src, ""),
                "dir": d,
                "src": s.src,
                "dst": s.dst,
                "spi": f"0x{s.spi:08x}",
                "key": key_of_spi(s.spi),
                "selector": f"{s.selector.src} -> {s.selector.dst}",
                "bytes": c.bytes,
                "packets": c.packets,
                "oseq": c.oseq,
                "seq": c.seq,
                "replayWindow": s.replay_window,
                "replayErrors": c.replay_errors,
                "replayWindowErrors": c.replay_window_errors,
                "integrityFailed": c.integrity_failed,
                "addTime": c.add_time,
                "useTime": c.use_time,
            }
        )
    doc["sas"] = sas
    doc["policies"] = [
        {
            "dir": DIRECTION_NAMES.get(p.dir, str(p.dir)),
            "src": p.selector.src,
            "dst": p.selector.dst,
            "spi": f"0x{p.templates[0].spi:08x}" if p.templates else None,
            "level": "use" if p.templates and p.templates[0].optional else "required",
        }
        for p in sorted(policies, key=lambda p: (_POLICY_ORDER.get(p.dir, 9), p.selector.src))
    ]
    doc["counters"] = counters
    doc["errors"] = {k: v for k, v in counters.items() if v}
    have_s = {f"{s.dst} 0x{s.spi:08x}" for s in states}
    have_p = {
        f"{DIRECTION_NAMES.get(p.dir, p.dir)} {p.selector.src} {p.selector.dst}" for p in policies
    }
    problems = doc["problems"]
    problems += [f"ipsec: planned state {n} missing" for n in record.states if n not in have_s]
    problems += [f"ipsec: planned policy {n} missing" for n in record.policies if n not in have_p]
    doc["ok"] = not problems
    return doc


def format_status(doc: dict[str, Any] | None) -> list[str]:
    """`netcc load status` lines for `ipsec_status`'s document (none without IPsec)."""
    if not doc or "sas" not in doc:
        return []
    lines = [f"  ipsec {doc['address']}: {len(doc['sas'])} SA(s), {len(doc['policies'])} policies"]
    for sa in doc["sas"]:
        seq = f"oseq {sa['oseq']}" if sa["dir"] == "out" else f"seq {sa['seq']}"
        lines.append(
            f"    {sa['dir']:3} {sa['peer'] or '?'} key {sa['key']} spi {sa['spi']} "
            f"{sa['src']} -> {sa['dst']}: {sa['packets']} packets, {sa['bytes']} bytes, {seq}"
            + (f", replay errors {sa['replayErrors']}" if sa["replayErrors"] else "")
            + (f", ICV failures {sa['integrityFailed']}" if sa["integrityFailed"] else "")
        )
    errors = ", ".join(f"{k} {v}" for k, v in doc["errors"].items()) or "none"
    lines.append(f"    XFRM errors: {errors}")
    return lines
