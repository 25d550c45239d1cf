"""The verdict table of a compile: one allow per policy rule, one default deny per isolated
pod and direction, after the reserved verdicts (`netcc.contract.verdicts`).

Rules are numbered in (namespace, name) order of their policies, ingress before egress; denies
in workload order (workloads and workload classes, by key). Every entry of the policy maps
carries its rule's verdict, so every packet the datapath counts names the rule (or the
isolation) behind it.
"""

from __future__ import annotations

from dataclasses import dataclass

from netcc.contract.verdicts import FIRST_RULE_VERDICT, VerdictEntry, reserved_entries
from netcc.model.types import Rule
from netcc.resolve.resolution import DIRECTIONS, Resolution


@dataclass(frozen=True)
class Verdicts:
    table: tuple[VerdictEntry, ...]  # every verdict, by number
    rule: dict[tuple[str, str, int], int]  # (policy key, direction, rule index) -> verdict
    deny: dict[tuple[str, str], int]  # (workload key, direction) -> its default deny

    @property
    def count(self) -> int:
        """Verdict numbers in use: the counter array's slots (0 up to the last verdict)."""
        return self.table[-1].number + 1


def plan_verdicts(r: Resolution) -> Verdicts:
    """Number every rule and every default deny."""
    out = reserved_entries()
    rule_verdict: dict[tuple[str, str, int], int] = {}
    number = FIRST_RULE_VERDICT
    for p in sorted(r.cluster.policies, key=lambda p: (p.namespace, p.name)):
        for direction in DIRECTIONS:
            for rule in p.rules(direction):
                doc = f"{p.key} {direction} rule {rule.index} ({rule.path}): {rule_text(rule)}"
                out.append(
                    VerdictEntry(
                        number, f"RULE_{number}", "allow", doc, p.key, direction, rule.index,
                        rule.path,
                    )
                )  # fmt: skip
                rule_verdict[(p.key, direction, rule.index)] = number
                number += 1
    number = max(number, FIRST_RULE_VERDICT)
    deny_verdict: dict[tuple[str, str], int] = {}
    subjects = (*r.cluster.workloads, *r.cluster.classes)
    for w in sorted(subjects, key=lambda w: w.key):
        for direction in DIRECTIONS:
            selecting = r.policies_selecting(w.key, direction)
            if selecting:
                names = ", ".join(p.key for p in selecting)
                doc = f"{w.key} {direction}: isolated by {names}; no rule allows"
                out.append(
                    VerdictEntry(
                        number,
                        f"DENY_{number}",
                        "drop",
                        doc,
                        direction=direction,
                        path=w.path,
                        pod=w.key,
                    )
                )
                deny_verdict[(w.key, direction)] = number
                number += 1
    return Verdicts(tuple(out), rule_verdict, deny_verdict)


def rule_text(r: Rule) -> str:
    """A rule in a few words: its peers and ports, as verdict docs give it."""
    peers = f"{len(r.peers)} peer(s)" if r.peers else "any peer"
    if not r.ports:
        return f"{peers}; all ports and protocols"
    ports = []
    for pp in r.ports:
        if pp.port is None:
            ports.append(f"{pp.protocol}/any")
        elif pp.end_port is not None:
            ports.append(f"{pp.protocol}/{pp.port}-{pp.end_port}")
        else:
            ports.append(f"{pp.protocol}/{pp.port}")
    return f"{peers}; {', '.join(ports)}"
