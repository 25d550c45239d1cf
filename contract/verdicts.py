"""The verdict table: reserved verdicts, rule and deny numbering, and `OUT/verdicts.json`.

A verdict is a number the datapath counts every packet under (`netcc_stats`) and stores in the
policy and conntrack maps. Numbers below FIRST_RULE_VERDICT are reserved: the allows and drops
no rule decides, listed below. From FIRST_RULE_VERDICT on, the compiler numbers one allow per
policy rule, then one default deny per isolated pod and direction. The generated `bpf/verdicts.h`
is rendered from this module; `verdicts.json` lists every verdict of a compile, one object
each:

    {"verdicts": [{"number": 36, "name": "RULE_36", "action": "allow",
                   "doc": "shop/frontend-ingress ingress rule 0 (...): ...",
                   "policy": "shop/frontend-ingress", "direction": "ingress", "index": 0,
                   "path": "spec.policies[1].spec.ingress[0]"}, ...]}

`policy`, `direction` and `index` are present for rule verdicts, `direction`, `path` and `pod`
for default denies; empty fields are left out.

`phrase` says in words why a verdict let a packet through or dropped it, with the words of
`netcc why` (`REASONS`, `rule_name`): "allowed by shop/web-ingress ingress[0]", "default deny:
shop/db is isolated for ingress and no rule matches", "a pod may always reach itself". `why`
and the flow events (`netcc.contract.flows`) both phrase through it, so the two never drift.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

VERDICTS_PATH = "verdicts.json"  # in OUT


@dataclass(frozen=True)
class Verdict:
    """A reserved verdict: its number, C name (VERDICT_<name>), action and meaning."""

    number: int
    name: str
    action: str  # allow | drop
    doc: str


# Verdicts that no rule decides. Rule verdicts are numbered from FIRST_RULE_VERDICT.
RESERVED_VERDICTS: tuple[Verdict, ...] = (
    Verdict(1, "ALLOW_UNISOLATED_INGRESS", "allow", "no policy selects the pod for ingress"),
    Verdict(2, "ALLOW_UNISOLATED_EGRESS", "allow", "no policy selects the pod for egress"),
    Verdict(3, "ALLOW_FROM_HOST", "allow", "traffic from the pod's own node is always allowed"),
    Verdict(4, "ALLOW_SELF", "allow", "a pod can always reach itself"),
    Verdict(5, "ALLOW_RELATED", "allow", "ICMP error about a tracked, allowed connection"),
    Verdict(6, "ALLOW_NON_IP", "allow", "not IP (ARP and other link traffic)"),
    Verdict(7, "ALLOW_NODEPORT", "allow", "NodePort flow translated at the node's uplink"),
    Verdict(16, "DROP_MALFORMED", "drop", "truncated or malformed IPv4 or L4 header"),
    Verdict(17, "DROP_SPOOFED", "drop", "source address is not the sending pod's"),
    Verdict(18, "DROP_UNKNOWN_ENDPOINT", "drop", "address is not a pod of this node"),
    Verdict(
        19, "DROP_FRAGMENT", "drop", "fragment whose first fragment was not seen; ports unknown"
    ),
    Verdict(20, "DROP_IPV6", "drop", "IPv6 other than neighbour discovery (IPv4-only cluster)"),
    Verdict(21, "DROP_NO_BACKEND", "drop", "service port without a backend (kube-proxy: REJECT)"),
    Verdict(22, "DROP_SERVICE_HAIRPIN", "drop", "hairpin without a router address to masquerade"),
    Verdict(23, "DROP_NODEPORT_NO_PORT", "drop", "NodePort: every probed source port is in use"),
)
FIRST_RULE_VERDICT = 32
# Reserved numbers from here up to FIRST_RULE_VERDICT are drops (`verdict_is_drop` in C).
FIRST_RESERVED_DROP = min(v.number for v in RESERVED_VERDICTS if v.action == "drop")


@dataclass(frozen=True)
class VerdictEntry:
    """One verdict of a compile, as `verdicts.json` lists it."""

    number: int
    name: str
    action: str  # allow | drop
    doc: str
    policy: str = ""  # namespace/name, for rule verdicts
    direction: str = ""
    index: int = -1  # rule index, for rule verdicts
    path: str = ""  # spec path of the rule, or of the pod for default denies
    pod: str = ""  # namespace/name, for default denies

    def to_json(self) -> dict[str, Any]:
        """The entry's object: its fields, empty ones left out."""
        return {k: v for k, v in vars(self).items() if v not in ("", -1)}


def reserved_entries() -> list[VerdictEntry]:
    """The reserved verdicts as the first entries of a compile's table."""
    return [VerdictEntry(v.number, v.name, v.action, v.doc) for v in RESERVED_VERDICTS]


def verdicts_document(entries: Iterable[VerdictEntry]) -> dict[str, Any]:
    """The `verdicts.json` document of a compile's verdicts."""
    return {"verdicts": [e.to_json() for e in entries]}


def by_number(doc: Any) -> dict[int, dict[str, Any]]:
    """number -> entry (its JSON object) of a `verdicts.json` document.

    Raises KeyError, TypeError or ValueError when an entry has no number or the document is
    not shaped as `verdicts_document` writes it."""
    return {int(v["number"]): v for v in doc.get("verdicts", [])}


# --- in words ------------------------------------------------------------------------------

# Why one side of a connection passes or drops, by the reason the reference model gives
# (`netcc.semantics.policy.SideVerdict.reason`). `netcc why` prints "allowed by" followed by
# the rules, one per line; `phrase` names the one rule a verdict stands for.
REASONS = {
    "self": "a pod may always reach itself",
    "host": "a pod's own node may always reach it",
    "unisolated": "not isolated: no policy selects {pod} for {direction}",
    "rule": "allowed by",
    "default-deny": "default deny: {pod} is isolated for {direction} and no rule matches",
    "not-a-pod": "{what} is not a pod: no {direction} policy applies",
}
# The reserved verdicts that are one of those reasons; the others are phrased by their doc.
RESERVED_REASONS = {
    "ALLOW_SELF": "self",
    "ALLOW_FROM_HOST": "host",
    "ALLOW_UNISOLATED_INGRESS": "unisolated",
    "ALLOW_UNISOLATED_EGRESS": "unisolated",
}


def rule_name(policy: str, direction: str, index: int) -> str:
    """A rule as `netcc why` (and the policy maps' notes) name it: `shop/web ingress[0]`."""
    return f"{policy} {direction}[{index}]"


def reason_of(entry: Mapping[str, Any]) -> str | None:
    """The reason (a key of REASONS) a `verdicts.json` entry stands for: `rule` for a rule's
    allow, `default-deny` for a pod's deny, the reason of a reserved verdict that is one;
    None for the other reserved verdicts (drops no rule decides, related ICMP, NodePort)."""
    if "policy" in entry:
        return "rule"
    if "pod" in entry and entry.get("action") == "drop":
        return "default-deny"
    return RESERVED_REASONS.get(str(entry.get("name", "")))


def phrase(entry: Mapping[str, Any], pod: str = "") -> str:
    """Why the verdict `entry` (a `verdicts.json` object) let a packet through or dropped it,
    in the words of `netcc why`. `pod` is the pod the verdict judged (the workload or class,
    as `why` names it), which a reserved "not isolated" verdict does not carry."""
    reason = reason_of(entry)
    if reason == "rule":
        rule = rule_name(entry["policy"], entry["direction"], entry["index"])
        return f"{REASONS['rule']} {rule}"
    if reason == "default-deny":
        return REASONS[reason].format(pod=entry["pod"], direction=entry["direction"])
    if reason == "unisolated":
        direction = "ingress" if str(entry["name"]).endswith("INGRESS") else "egress"
        return REASONS[reason].format(pod=pod or "the pod", direction=direction)
    if reason is not None:
        return REASONS[reason]
    return str(entry.get("doc") or entry.get("name") or f"verdict {entry.get('number')}")
