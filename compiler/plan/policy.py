"""Policy entries: each node's profiles, and the rules that select them expanded into keys.

- *Profiles.* Local pods with the same identity and container ports are judged by the same
  entries, so they share a profile, numbered per node in workload order. Workload classes
  come first: class profiles are numbered 1..C cluster-wide (a class's pods may run on any
  node, so every node holds every class profile's entries), a node's static profiles follow.
- *Expansion.* Each rule becomes keys (profile, peer class or PEER_ANY, direction, protocol,
  port prefix), each citing its rule's verdict; where two rules give one key, the lower
  verdict (the earlier rule) stays. Peers, named ports and selection come resolved
  (`netcc.resolve`): the expansion only lays them out.
- Single ports go to `netcc_policy_exact` (a hash map), port ranges (as port prefixes) and
  all-port or all-protocol allows to `netcc_policy` (an LPM trie).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat
from operator import add, itemgetter

from netcc.contract import constants
from netcc.contract.entries import Entry, PolicyEntry, PolicyExactKey, PolicyKey
from netcc.model.types import (
    PROTOCOL_NUMBERS,
    NetworkPolicy,
    PolicyPort,
    Rule,
    Workload,
    WorkloadClass,
)
from netcc.plan.verdicts import Verdicts
from netcc.resolve.cidr import port_range_prefixes
from netcc.resolve.peers import sorted_ports
from netcc.resolve.ports import Ports
from netcc.resolve.resolution import DIRECTIONS, Resolution

DIR_NUMBER = {"ingress": constants.DIR_INGRESS, "egress": constants.DIR_EGRESS}
FULL = constants.POLICY_PREFIX_FULL
ALL_PORTS = constants.POLICY_PREFIX_ALL_PORTS
ALL_PROTOCOLS = constants.POLICY_PREFIX_ALL_PROTOCOLS
FLAG = constants.ENDPOINT_FLAGS
# A key as the planner holds it, in the order map files list entries:
# (profile, dir, peer, proto, port, prefixlen)
Key = tuple[int, int, int, int, int, int]
Tail = tuple[int, int, int, int, int]  # a key without its profile: (dir, peer, proto, port, bits)
Held = tuple[tuple, str]  # an entry's value record and note
EXACT_RECORD = itemgetter(0, 2, 1, 3, 4)  # a Key's netcc_policy_exact fields, in layout order
LPM_RECORD = itemgetter(5, 0, 2, 1, 3, 4)  # a Key's netcc_policy fields, in layout order


@dataclass(frozen=True)
class Profile:
    number: int
    members: tuple[Workload | WorkloadClass, ...]  # the pods judged by its entries, by key
    flags: int  # ENDPOINT_F_* of its pods


@dataclass(frozen=True)
class NodePolicy:
    """One node's profiles and policy map entries."""

    profiles: tuple[Profile, ...]
    exact: tuple[Entry, ...]  # netcc_policy_exact, sorted by (profile, dir, peer, proto, port)
    ranges: tuple[Entry, ...]  # netcc_policy, sorted likewise, then by prefix length

    def profile_of(self) -> dict[str, Profile]:
        """workload key -> its profile."""
        return {w.key: p for p in self.profiles for w in p.members}


def tail(bits: int, peer: int, d: int, proto: int, port: int) -> Tail:
    """A key's fields but the profile, with the bits past the prefix zeroed."""
    if bits <= ALL_PROTOCOLS:
        proto, port = 0, 0
    elif bits < FULL:
        keep = bits - ALL_PORTS
        port &= (0xFFFF << (16 - keep)) & 0xFFFF
    return (d, peer, proto, port, bits)


def port_keys(pp: PolicyPort, number: int | None = None) -> list[tuple[int, int, int]]:
    """(proto, port, prefix bits) of one NetworkPolicyPort; a named port needs its `number`
    on the destination (none: no entry)."""
    proto = PROTOCOL_NUMBERS[pp.protocol]
    if pp.port is None:
        return [(proto, 0, ALL_PORTS)]
    if isinstance(pp.port, str):
        return [(proto, number, FULL)] if number else []
    last = pp.end_port if pp.end_port is not None else pp.port
    return [(proto, port, FULL - 16 + bits) for port, bits in port_range_prefixes(pp.port, last)]


@dataclass(frozen=True)
class _RuleKeys:
    """What a rule gives any profile it applies to: its key tails, single ports apart from
    ranges and wildcards, with what they hold (its verdict's value record and its note)."""

    verdict: int
    held: Held
    exact: tuple[Tail, ...]
    ranges: tuple[Tail, ...]
    named: tuple[tuple[PolicyPort, tuple[int, ...]], ...] = ()  # resolved on the subject
    any_peer: bool = False  # some key is for PEER_ANY
    direction: str = ""

    @classmethod
    def of(
        cls,
        verdict: int,
        held: Held,
        tails: list[Tail],
        direction: str,
        named: tuple[tuple[PolicyPort, tuple[int, ...]], ...] = (),
    ) -> _RuleKeys:
        exact = tuple(t for t in tails if t[4] == FULL)
        ranges = tuple(t for t in tails if t[4] < FULL)
        any_peer = any(t[1] == constants.PEER_ANY for t in tails)
        return cls(verdict, held, exact, ranges, named, any_peer, direction)


class PolicyPlanner:
    """Expands the rules selecting each profile; what does not depend on the profile is
    computed once per rule (and once per rule and set of container ports for named ports
    resolved on the subject)."""

    def __init__(self, r: Resolution, verdicts: Verdicts) -> None:
        self.r = r
        self.verdicts = verdicts
        self.pod_classes = tuple(c.number for c in r.classes if c.kind == "pod")
        self._rules: dict[tuple[str, str, int], _RuleKeys] = {}
        self._named: dict[tuple[tuple[str, str, int], Ports], _RuleKeys] = {}

    def _rule(self, policy: NetworkPolicy, rule: Rule, direction: str) -> _RuleKeys:
        k = (policy.key, direction, rule.index)
        found = self._rules.get(k)
        if found is not None:
            return found
        d = DIR_NUMBER[direction]
        targets = self.r.rule_targets(policy, rule)
        peers = (constants.PEER_ANY,) if targets is None else targets
        tails: list[Tail] = []
        named: list[tuple[PolicyPort, tuple[int, ...]]] = []
        if not rule.ports:
            tails += [tail(ALL_PROTOCOLS, peer, d, 0, 0) for peer in peers]
        for pp in rule.ports:
            if isinstance(pp.port, str) and direction == "egress":
                # Resolved on each destination pod: no PEER_ANY entry can stand for it.
                for n in self.pod_classes if targets is None else targets:
                    c = self.r.classes[n - 1]
                    number = self.r.named_ports.number(pp.port, pp.protocol, c.ports)
                    tails += [tail(b, n, d, pr, po) for pr, po, b in port_keys(pp, number)]
            elif isinstance(pp.port, str):
                named.append((pp, peers))  # on the subject: resolved per profile
            else:
                tails += [tail(b, p, d, pr, po) for pr, po, b in port_keys(pp) for p in peers]
        verdict = self.verdicts.rule[k]
        held = (PolicyEntry(verdict), f"{policy.key} {direction}[{rule.index}]")
        found = self._rules[k] = _RuleKeys.of(verdict, held, tails, direction, tuple(named))
        return found

    def _on(self, rk: _RuleKeys, k: tuple[str, str, int], ports: Ports) -> _RuleKeys:
        """The keys of a rule's ports named on the subject, for a subject with `ports`."""
        found = self._named.get((k, ports))
        if found is None:
            d = DIR_NUMBER[rk.direction]
            tails = []
            for pp, peers in rk.named:
                number = self.r.named_ports.number(pp.port, pp.protocol, ports)  # type: ignore[arg-type]
                tails += [
                    tail(b, p, d, pr, po) for pr, po, b in port_keys(pp, number) for p in peers
                ]
            found = self._named[(k, ports)] = _RuleKeys.of(rk.verdict, rk.held, tails, rk.direction)
        return found

    def classes(self, classes: list[WorkloadClass]) -> NodePolicy:
        """The profiles and policy entries of the workload classes (sorted by key), numbered
        from 1: one profile per class (classes of one namespace differ in labels, so in
        identity; classes of two namespaces differ in identity)."""
        exact: dict[Key, Held] = {}
        ranges: dict[Key, Held] = {}
        profiles = []
        for number, cls in enumerate(classes, start=1):
            flags = self._expand(number, cls, sorted_ports(cls.ports), exact, ranges)
            profiles.append(Profile(number, (cls,), flags))
        return NodePolicy(
            tuple(profiles),
            _entries(exact, PolicyExactKey, EXACT_RECORD),
            _entries(ranges, PolicyKey, LPM_RECORD),
        )

    def node(self, local: list[Workload], first: int = 1) -> NodePolicy:
        """The profiles and policy entries of a node whose pods are `local` (sorted by key),
        numbered from `first` (after the class profiles)."""
        groups: dict[tuple[int, Ports], list[Workload]] = {}
        for w in local:
            key = (self.r.identities[w.key].number, sorted_ports(w.ports))
            groups.setdefault(key, []).append(w)
        exact: dict[Key, Held] = {}
        ranges: dict[Key, Held] = {}
        profiles = []
        for number, ((_, ports), members) in enumerate(groups.items(), start=first):
            flags = self._expand(number, members[0], ports, exact, ranges)
            profiles.append(Profile(number, tuple(members), flags))
        return NodePolicy(
            tuple(profiles),
            _entries(exact, PolicyExactKey, EXACT_RECORD),
            _entries(ranges, PolicyKey, LPM_RECORD),
        )

    def _expand(
        self,
        profile: int,
        subject: Workload | WorkloadClass,
        ports: Ports,
        exact: dict[Key, Held],
        ranges: dict[Key, Held],
    ) -> int:
        """Adds the profile's keys (where two rules give one key, the lower verdict's) and
        returns its flags."""
        flags = 0
        rules: list[_RuleKeys] = []
        for direction in DIRECTIONS:
            selecting = self.r.policies_selecting(subject.key, direction)
            if not selecting:
                continue
            up = direction.upper()
            flags |= FLAG[f"ENDPOINT_F_{up}_ISOLATED"]
            for p in selecting:
                for rule in p.rules(direction):
                    rk = self._rule(p, rule, direction)
                    found = [rk]
                    if rk.named:
                        found.append(self._on(rk, (p.key, direction, rule.index), ports))
                    for x in found:
                        if x.any_peer:
                            flags |= FLAG[f"ENDPOINT_F_{up}_ANY"]
                        if x.ranges:
                            flags |= FLAG[f"ENDPOINT_F_{up}_RANGES"]
                    rules += found
        # Highest verdict first: a lower verdict's update overwrites it, so the lowest stays.
        rules.sort(key=lambda rk: rk.verdict, reverse=True)
        prefix = (profile,)
        for rk in rules:
            exact.update(zip(map(add, repeat(prefix), rk.exact), repeat(rk.held)))
            ranges.update(zip(map(add, repeat(prefix), rk.ranges), repeat(rk.held)))
        return flags


def _entries(held: dict[Key, Held], record: type, fields: itemgetter) -> tuple[Entry, ...]:
    """The entries of one policy map, sorted by key (profile, dir, peer, proto, port,
    prefixlen). Made in bulk, records straight from the key tuples (`tuple.__new__`: the plan
    checks every record's shape and values afterwards)."""
    new = tuple.__new__
    keys = sorted(held)
    records = map(new, repeat(record), map(fields, keys))
    rows = map(add, zip(records), map(held.__getitem__, keys))  # (key record, value, note)
    return tuple(map(new, repeat(Entry), rows))
