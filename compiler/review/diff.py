"""`netcc diff`: connections newly allowed and newly denied between two versions of a cluster.

Both versions are cut along the union of their ipBlock prefixes, so external addresses compare
region by region. Ends are workloads (by namespace/name), node addresses (as /32) and
address ranges outside the cluster (CIDRs; a CIDR stands for its addresses that are neither a
pod nor a node, which come under their own names). A workload present in one version only
has all its connections added or removed. Entries are exact, per protocol and port range;
protocols without ports (ICMP, ...) come as protocol OTHER, port "0".

A workload class is one end, `NS/CLASS (class)`, standing for all its pods (two of them are
different pods, so a class's flows to itself are compared too). What flows cannot show about
classes (added, removed, blocks moved, the keys that decide a pod's class) is in `classes`
(`netcc.review.class_diff`).

With `spec.encryption` on either side, `encryption` says how what is encrypted changes (a node
newly covered or no longer, WireGuard, IPsec or none) and, when the IPsec keys or
acceptPlaintext change, whether rolling NEW out over OLD is safe and what step comes next
(`netcc.review.encryption`, `netcc.contract.ipsecrollout`).
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from netcc.model.types import Cluster
from netcc.review.class_diff import ClassChange, class_changes, format_changes
from netcc.review.connectivity import Connectivity, Party, block_prefixes
from netcc.review.encryption import encryption_diff
from netcc.review.portset import EMPTY, OTHER, PORTED, PortSet, range_text

PROTOCOL_ORDER = {p: i for i, p in enumerate((*PORTED, OTHER))}


@dataclass(frozen=True)
class End:
    """One end of a compared flow, with the party standing for it in each version."""

    kind: str  # pod | node | region
    key: str  # workload name, node address, or region text
    old: Party | None
    new: Party | None
    networks: tuple[IPv4Network, ...] = ()


@dataclass(frozen=True)
class Change:
    """A flow entry of the diff: `from` and `to` are workloads or CIDRs."""

    src: str
    dst: str
    protocol: str
    ports: str

    def to_json(self) -> dict[str, str]:
        return {"from": self.src, "to": self.dst, "protocol": self.protocol, "ports": self.ports}


@dataclass(frozen=True)
class Diff:
    added: tuple[Change, ...]
    removed: tuple[Change, ...]
    classes: tuple[ClassChange, ...] = ()
    with_classes: bool = False  # either version has classes: JSON has `classes`
    encryption: dict[str, Any] | None = None  # either version has spec.encryption

    @property
    def encryption_lines(self) -> list[str]:
        return list(self.encryption["lines"]) if self.encryption else []

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.classes or self.encryption_lines)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "added": [c.to_json() for c in self.added],
            "removed": [c.to_json() for c in self.removed],
        }
        if self.with_classes:
            out["classes"] = [c.to_json() for c in self.classes]
        if self.encryption is not None:
            out["encryption"] = self.encryption
        return out


def _ends(a: Connectivity, b: Connectivity) -> list[End]:
    ends = []
    pods_a = {p.name: p for p in a.pods}
    pods_b = {p.name: p for p in b.pods}
    for name in sorted(pods_a.keys() | pods_b.keys()):
        ends.append(End("pod", name, pods_a.get(name), pods_b.get(name)))
    node_ips = sorted({ip for p in a.nodes + b.nodes for ip in p.ips})
    for ip in node_ips:
        ends.append(End("node", str(ip), a.party_of(ip), b.party_of(ip), (IPv4Network(ip),)))
    prefixes_b = {r.prefix: r for r in b.regions}
    for r in a.regions:
        assert r.prefix in prefixes_b  # both are cut along the same prefixes
        ends.append(
            End(
                "region",
                str(r),
                a._region_party[r.prefix],
                b._region_party[r.prefix],
                tuple(r.networks()),
            )
        )
    return ends


def _allowed(c: Connectivity, src: Party | None, dst: Party | None) -> PortSet:
    if src is None or dst is None or not (src.is_pod or dst.is_pod):
        return EMPTY
    return c.flow(src, dst).allowed


def _sort_key(end: str) -> tuple:
    try:
        net = IPv4Network(end)
        return (1, int(net.network_address), net.prefixlen)
    except ValueError:
        return (0, end)


def diff(old: Cluster, new: Cluster) -> Diff:
    """Flows `new` allows that `old` did not (added), and the other way round (removed)."""
    a = Connectivity(old, block_prefixes(new))
    b = Connectivity(new, block_prefixes(old))
    ends = _ends(a, b)
    # (change, src key, dst key, protocol, lo, hi) -> networks, for the address end
    atoms: dict[tuple, list[IPv4Network]] = defaultdict(list)
    for s in ends:
        for d in ends:
            no_pod = s.kind != "pod" and d.kind != "pod"
            itself = s.kind == "pod" and s.key == d.key and not _is_class(s)
            if no_pod or itself:
                continue  # no pod on the path, or a pod and itself (always allowed)
            before, after = _allowed(a, s.old, d.old), _allowed(b, s.new, d.new)
            if before == after:
                continue
            for change, ports in (("added", after - before), ("removed", before - after)):
                for protocol, lo, hi in ports.items():
                    src = s.key if s.kind != "region" else "*region"
                    dst = d.key if d.kind != "region" else "*region"
                    nets = s.networks if s.kind == "region" else d.networks
                    atoms[(change, src, dst, protocol, lo, hi)].extend(
                        nets if "*region" in (src, dst) else ()
                    )
    out: dict[str, list[Change]] = {"added": [], "removed": []}
    for (change, src, dst, protocol, lo, hi), nets in atoms.items():
        ports = "0" if protocol == OTHER else range_text(lo, hi)
        if "*region" not in (src, dst):
            src = f"{src}/32" if _is_ip(src) else src
            dst = f"{dst}/32" if _is_ip(dst) else dst
            out[change].append(Change(src, dst, protocol, ports))
            continue
        for net in ipaddress.collapse_addresses(nets):
            out[change].append(
                Change(
                    str(net) if src == "*region" else src,
                    str(net) if dst == "*region" else dst,
                    protocol,
                    ports,
                )
            )

    def order(c: Change) -> tuple:
        lo = 0 if c.protocol == OTHER else int(c.ports.split("-")[0])
        return (_sort_key(c.src), _sort_key(c.dst), PROTOCOL_ORDER[c.protocol], lo)

    return Diff(
        tuple(sorted(out["added"], key=order)),
        tuple(sorted(out["removed"], key=order)),
        tuple(class_changes(old, new)),
        bool(old.classes or new.classes),
        encryption_diff(old, new),
    )


def _is_class(end: End) -> bool:
    """A class's end: its pods are many, so its flows to itself count."""
    return any(p is not None and p.is_class for p in (end.old, end.new))


def _is_ip(text: str) -> bool:
    try:
        IPv4Address(text)
        return True
    except ValueError:
        return False


def _port_set(changes: list[Change]) -> PortSet:
    out = EMPTY
    for c in changes:
        if c.protocol == OTHER:
            out = out | PortSet.of(OTHER)
        else:
            lo, _, hi = c.ports.partition("-")
            out = out | PortSet.of(c.protocol, int(lo), int(hi or lo))
    return out


def format_text(d: Diff) -> str:
    """`~ CHANGE` for the classes and encryption, `+ FROM -> TO PORTS` for newly allowed
    flows, `- ...` for newly denied ones."""
    if not d.changed:
        return "connectivity unchanged"
    lines = format_changes(list(d.classes))
    lines += [f"~ {line}" for line in d.encryption_lines]
    for sign, changes in (("+", d.added), ("-", d.removed)):
        pairs: dict[tuple[str, str], list[Change]] = {}
        for c in changes:
            pairs.setdefault((c.src, c.dst), []).append(c)
        for (src, dst), group in pairs.items():
            lines.append(f"{sign} {src} -> {dst}: {_port_set(group)}")
    summary = f"{len(d.added)} entries newly allowed, {len(d.removed)} newly denied"
    if d.classes:
        summary += f", {len(d.classes)} class change(s)"
    if d.encryption_lines:
        summary += ", encryption changed"
    lines.append(summary)
    return "\n".join(lines)
