"""Whether moving the nodes from one IPsec plan to another is safe, and what step comes next.

A new OUT reaches nodes one at a time: during a rollout some nodes run the deployed plan and the
others the new one, in any mix. Traffic keeps flowing if, for every sender and receiver of either
plan, the receiver accepts what the sender sends. A plan sends with its `send` key, or in clear
when it has none (or no IPsec); it accepts each key it lists, and clear pod traffic when
`acceptPlaintext` is true (or with no IPsec). So a step from D to N is safe when

    send(D) in accept(N)  and  send(N) in accept(D)

(each plan accepts what it sends itself), a key id in both has the same fingerprint and the same
AEAD in both (else the two ends of an SA derive different keys), and the previous rollout is
complete: every node runs D. `rollout_step` checks this on what the plans say (`Rollout`, the
part of `nodes/NODE/ipsec.json` that every node shares), and names the phase and the next step.

A rotation from key 1 to key 2 takes three rollouts, each safe by the rule:

1. `keys: [{id: 2, state: accept}, {id: 1, state: send}]`: every node learns key 2;
2. `[{id: 2, state: send}, {id: 1, state: accept}]`: nodes send with key 2 and still take key 1;
3. `[{id: 2, state: send}]`: key 1 goes (a node keeps accepting it `removedKeyGraceSeconds`).

Turning IPsec on in a running cluster is the same with clear text in the place of the old key
(`acceptPlaintext: true` with key 1 in state accept, then send, then `acceptPlaintext: false`);
turning it off, the same backwards. A fresh cluster (nothing deployed) can start anywhere.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from netcc.contract.files import read_beneath
from netcc.contract.ipsec import PLAN_PATH, Aead, IPsecFormatError, IPsecPlan, from_doc
from netcc.contract.lock import (
    LOCK_NAME,
    MAX_LOCK_BYTES,
    LockError,
    LockFormatError,
    load_json_bounded,
    parse_lock,
)

PLAIN = "clear text"
MAX_PLAN_BYTES = 64 << 20  # one node's plan: a few hundred bytes per peer


@dataclass(frozen=True)
class KeyState:
    id: int
    state: str  # "send" | "accept"
    fingerprint: str | None = None


@dataclass(frozen=True)
class Rollout:
    """What a plan sends and accepts, the same on every node. `enabled` False: no IPsec (sends
    and accepts pod traffic in clear only)."""

    enabled: bool
    keys: tuple[KeyState, ...] = ()  # sorted by id
    accept_plaintext: bool = True
    aead: Aead | None = None
    grace: int = 0  # removedKeyGraceSeconds

    @property
    def send(self) -> int | None:
        return next((k.id for k in self.keys if k.state == "send"), None)

    @property
    def sends(self) -> int | str:
        """The key id it sends with, or PLAIN."""
        return PLAIN if self.send is None else self.send

    @property
    def accepts(self) -> frozenset[int | str]:
        keys: set[int | str] = {k.id for k in self.keys}
        return frozenset(keys | ({PLAIN} if self.accept_plaintext or not self.enabled else set()))

    @property
    def fingerprints(self) -> dict[int, str | None]:
        return {k.id: k.fingerprint for k in self.keys}

    def same_keys(self, other: Rollout) -> bool:
        """Whether `other` sends and accepts the same, with the same keys (the grace aside)."""
        mine = (self.enabled, self.keys, self.accept_plaintext, self.aead)
        return mine == (other.enabled, other.keys, other.accept_plaintext, other.aead)

    def text(self) -> str:
        """`key 2 accept (5d0c1a2b…), key 1 send` (a fingerprint's first 8 digits when the
        plan has one; and `, clear text accepted`), or `IPsec off`."""
        if not self.enabled:
            return "IPsec off"
        keys = ", ".join(
            f"key {k.id} {k.state}" + (f" ({k.fingerprint[:8]}…)" if k.fingerprint else "")
            for k in sorted(self.keys, key=lambda k: -k.id)
        )
        return keys + (", clear text accepted" if self.accept_plaintext else "")


OFF = Rollout(enabled=False)


def rollout_of(plan: IPsecPlan) -> Rollout:
    return Rollout(
        enabled=True,
        keys=tuple(KeyState(k.id, k.state, k.fingerprint) for k in plan.keys),
        accept_plaintext=plan.accept_plaintext,
        aead=plan.aead,
        grace=plan.removed_key_grace,
    )


def rollout_of_plans(plans: Iterable[IPsecPlan]) -> Rollout:
    """The rollout of every node's plan (OFF for none); IPsecFormatError if nodes disagree."""
    found = {rollout_of(p) for p in plans}
    if len(found) > 1:
        raise IPsecFormatError("the nodes' ipsec.json disagree on keys, acceptPlaintext or AEAD")
    return found.pop() if found else OFF


def read_deployed(out: str | Path) -> Rollout:
    """The rollout of an OUT directory, from its `nodes/NODE/ipsec.json` as its lock lists
    them (each checked against its digest and `check_plan`); OFF when it has none.

    LockError when OUT, its lock or a plan cannot be read or does not match."""
    out = Path(out)
    try:
        data = read_beneath(out, LOCK_NAME, MAX_LOCK_BYTES)
        if data is None:
            raise LockError(f"{out}: no {LOCK_NAME} (not an OUT directory)")
        lock = parse_lock(data)
    except (OSError, ValueError, LockFormatError) as e:
        raise LockError(f"{out}/{LOCK_NAME}: unreadable lock file ({e})") from None
    pattern = PLAN_PATH.format(node="*")
    plans = []
    for rel, digest in sorted(lock["artifacts"].items()):
        if not fnmatch.fnmatchcase(rel, pattern) or rel.count("/") != pattern.count("/"):
            continue
        try:
            text = read_beneath(out, rel, MAX_PLAN_BYTES)
        except (OSError, ValueError) as e:
            raise LockError(f"{out}/{rel}: unreadable ({e})") from None
        if text is None or hashlib.sha256(text).hexdigest() != digest:
            raise LockError(f"{out}/{rel}: missing or not what {LOCK_NAME} lists")
        try:
            plans.append(from_doc(load_json_bounded(text, MAX_PLAN_BYTES)))
        except (IPsecFormatError, LockFormatError) as e:
            raise LockError(f"{out}/{rel}: {e}") from None
    try:
        return rollout_of_plans(plans)
    except IPsecFormatError as e:
        raise LockError(f"{out}: {e}") from None


@dataclass(frozen=True)
class Step:
    """The verdict on rolling out `new` over `deployed`: safe or not, the phase, what next."""

    safe: bool
    phase: str  # what this rollout does (safe), or "" (unsafe)
    next: str  # the step after it (safe), or the step to take first (unsafe); "" for none
    problems: tuple[str, ...] = ()

    def text(self) -> str:
        if not self.safe:
            first = f"; first: {self.next}" if self.next else ""
            return "unsafe: " + "; ".join(self.problems) + first
        return f"safe: {self.phase}" + (f"; next: {self.next}" if self.next else "")

    def to_json(self) -> dict[str, object]:
        return {
            "safe": self.safe,
            "phase": self.phase,
            "next": self.next,
            "problems": list(self.problems),
        }


def _send(sent: int | str, s: str = "") -> str:
    """`send with key 2` or `send pod traffic in clear` (`s`: "s" for one node)."""
    return f"send{s} pod traffic in clear" if sent == PLAIN else f"send{s} with key {sent}"


def _keys_text(keys: dict[int, str], accept_plaintext: bool) -> str:
    parts = [f"{{id: {i}, state: {s}}}" for i, s in sorted(keys.items(), reverse=True)]
    text = "keys: [" + ", ".join(parts) + "]"
    return text + (", acceptPlaintext: true" if accept_plaintext else "")


def _states(r: Rollout) -> dict[int, str]:
    return {k.id: k.state for k in r.keys}


def _problems(d: Rollout, n: Rollout) -> tuple[list[str], str]:
    """What breaks between nodes on `d` and nodes on `n`, and the plan to roll out first."""
    problems: list[str] = []
    first = ""
    if n.sends not in d.accepts:
        problems.append(
            f"nodes on the new plan would {_send(n.sends)}, which nodes still on the deployed "
            "plan do not accept"
            + (" (no inbound SAs for it: XfrmInNoStates)" if n.sends != PLAIN else "")
        )
        keys = _states(d)
        if n.sends == PLAIN:
            first = "the deployed plan with " + _keys_text(keys, True)
        else:
            keys.setdefault(int(n.sends), "accept")
            clear = not d.enabled or d.accept_plaintext or d.send is None
            first = _keys_text(keys, clear) + (
                f" (every node accepts key {n.sends}, nothing sends with it yet)"
            )
    if d.sends not in n.accepts:
        problems.append(
            f"nodes still on the deployed plan {_send(d.sends)}, which nodes on the new plan "
            "would not accept"
        )
        if not first:
            keys = _states(n)
            if d.sends == PLAIN:
                first = "the new plan with acceptPlaintext: true until every node sends with a key"
            else:
                keys[int(d.sends)] = "accept"
                first = _keys_text(keys, n.accept_plaintext) + (
                    f" (keep accepting key {d.sends} until every node {_send(n.sends, 's')})"
                )
    shared = sorted(set(d.fingerprints) & set(n.fingerprints))
    for key_id in shared:
        old, new = d.fingerprints[key_id], n.fingerprints[key_id]
        if old is not None and new is not None and old != new:
            problems.append(
                f"key {key_id} has another fingerprint ({old} -> {new}): a new key needs a new "
                "id, rolled out as a rotation"
            )
    if problems and not d.enabled:
        problems.append("(a cluster not running yet can start with the new plan as it is)")
    if shared and d.aead != n.aead:
        both = ", ".join(f"key {k}" for k in shared)
        problems.append(
            f"the cipher, key size or ICV changed while {both} stays: the two ends of an SA "
            "would derive different keys; change them only between a full stop and start "
            "(IPsec off, then on)"
        )
    return problems, first


def _phase(d: Rollout, n: Rollout) -> tuple[str, str]:
    """(this phase, the next step) of a safe rollout from `d` to `n`."""
    if d == n or (_states(d) == _states(n) and d.accept_plaintext == n.accept_plaintext):
        what = "IPsec off in both plans" if not n.enabled else "keys and clear text unchanged"
        return f"{what}: nothing to order", ""
    if not n.enabled:
        return "IPsec off: nodes send and accept pod traffic in clear only; complete", ""
    learning = sorted(k for k, s in _states(n).items() if s == "accept" and k not in _states(d))
    kept = sorted(k for k, s in _states(n).items() if s == "accept" and k in _states(d))
    removed = sorted(set(_states(d)) - set(_states(n)))
    grace = f" (a node keeps accepting it {n.grace} s after it applies this plan)"
    if not d.enabled or (d.send is None and n.send is None):
        key = learning[0] if learning else n.send
        return (
            f"turning IPsec on, phase 1 of 3: every node accepts key {key}, pod traffic still "
            "in clear",
            f"set key {key} to state send, once every node runs this plan",
        )
    if d.send is None and n.send is not None:
        if n.accept_plaintext:
            return (
                f"turning IPsec on, phase 2 of 3: nodes send with key {n.send} and still accept "
                "clear text",
                "acceptPlaintext: false, once every node runs this plan",
            )
        return f"nodes send with key {n.send}", ""
    if d.accept_plaintext and not n.accept_plaintext:
        return (
            "turning IPsec on, phase 3 of 3: pod traffic between nodes in clear is refused; "
            "IPsec is on",
            "",
        )
    if n.send is None:
        return (
            f"turning IPsec off, phase 2 of 3: nodes send in clear, still accepting "
            f"{', '.join(f'key {k}' for k in sorted(_states(n)))}",
            "IPsec off (enabled: false), once every node runs this plan",
        )
    if not d.accept_plaintext and n.accept_plaintext:
        return (
            "turning IPsec off, phase 1 of 3: nodes accept pod traffic in clear too",
            "no key in state send (every key accept), once every node runs this plan",
        )
    if learning and d.send == n.send:
        keys = ", ".join(f"key {k}" for k in learning)
        new = learning[-1]
        return (
            f"phase 1 of 3 (rotation to key {new}): every node accepts {keys}, nodes still send "
            f"with key {n.send}",
            f"switch sending to key {new} (key {new}: send, key {n.send}: accept), once every "
            "node runs this plan",
        )
    if d.send != n.send and d.send in kept:
        return (
            f"phase 2 of 3 (rotation to key {n.send}): nodes send with key {n.send} and still "
            f"accept key {d.send}",
            f"remove key {d.send}, once every node runs this plan",
        )
    if removed and d.send == n.send:
        keys = ", ".join(f"key {k}" for k in removed)
        return f"phase 3 of 3 (rotation to key {n.send}): {keys} removed{grace}; complete", ""
    return "every node accepts what any node sends, whichever plan it runs", ""


def rollout_step(deployed: Rollout | None, new: Rollout) -> Step:
    """Whether rolling `new` out over `deployed` (None: nothing deployed yet) is safe, assuming
    every node runs `deployed`; the phase and the next step, or what to roll out first."""
    if deployed is None:
        return Step(True, "nothing deployed: the plan applies as it is", "")
    problems, first = _problems(deployed, new)
    if problems:
        return Step(False, "", first, tuple(problems))
    phase, then = _phase(deployed, new)
    return Step(True, phase, then)
