"""Carrying state maps from one applied version to the next.

A version's object may not be able to share a pinned map: its type, key or value size or
capacity differ (compared with `map_info` against the new `layout.json`), or its entries hold
verdict numbers that the new verdict table numbers differently (verdicts are numbered by
policy order, so adding a rule renumbers the rules and denies after it). Such a map is
created anew for the new object and what can be translated is copied over:

- hash maps (conntrack `netcc_ct`, `netcc_frags`): each entry is unpacked with the old
  layout and packed with the new one, field by field by name; `verdict` fields are
  translated through the two verdict tables;
- `netcc_stats` (per-CPU counters indexed by verdict): each verdict's counters move to the
  new number of the same verdict;
- `netcc_flow_cache` is a cache in front of conntrack and starts empty, as do the generations
  of its slots (`netcc_flow_cache_gen`); the flow event ring buffer (`netcc_events`) is never
  copied (the node daemon reads what the old one still holds);
- `netcc_event_budget` (per-CPU counters) is summed like `netcc_stats`, slot by slot.

A verdict is the same across versions when its identity is: a reserved verdict by name, a
rule by (policy, direction, index), a default deny by (pod, direction). A connection whose
allowing rule is gone is kept and counted under `STALE_NAME`, a number the loader takes from
the unused part of the reserved allow range (numbers below the first reserved drop are
allows in the datapath's `verdict_is_drop`).
"""

from __future__ import annotations

import errno as errno_mod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from netcc.contract.constants import (
    CT_F_HAIRPIN,
    CT_F_SERVICE,
    LB_SCOPE_CLUSTER_IP,
    LB_SCOPE_NODEPORT,
    LB_SCOPE_NODEPORT_POD,
)
from netcc.contract.layoutfile import Layout
from netcc.contract.verdicts import by_number
from netcc.loader import libbpf
from netcc.loader.libbpf import BPF_ANY, BPF_NOEXIST, BpfError
from netcc.loader.maps import BpfMap

VERDICT_KEYED = {"netcc_stats"}  # u32 key = verdict number
CACHES = {"netcc_flow_cache", "netcc_flow_cache_gen", "netcc_events"}  # never copied
RINGS = {"ringbuf"}  # map types without entries (flow events: netcc.contract.events)
VERDICT_FIELDS = ("verdict", "ingress_deny", "egress_deny")
STALE_NAME = "ALLOW_ESTABLISHED_REMOVED_RULE"
STALE_DOC = "connection allowed by a rule that a later applied version removed (conntrack kept)"


# --- verdict tables ------------------------------------------------------------------------


def _identity(v: dict[str, Any]) -> tuple:
    if "policy" in v:
        return ("rule", v["policy"], v.get("direction"), v.get("index"))
    if "pod" in v:
        return ("deny", v["pod"], v.get("direction"))
    return ("reserved", v.get("name"))


def verdict_table(doc: dict[str, Any], stale: int | None = None) -> dict[int, dict[str, Any]]:
    """number -> verdict of a `verdicts.json` document, plus the loader's stale verdict."""
    table = by_number(doc)
    if stale is not None and stale not in table:
        table[stale] = {"number": stale, "name": STALE_NAME, "action": "allow", "doc": STALE_DOC}
    return table


def stale_number(doc: dict[str, Any], prefer: int | None = None) -> int | None:
    """An unused number of the reserved allow range (below the first reserved drop), for
    connections whose rule is gone; `prefer` if still free."""
    table = verdict_table(doc)
    drops = [n for n, v in table.items() if v.get("action") == "drop" and "pod" not in v]
    limit = min(drops) if drops else 0
    free = [n for n in range(1, limit) if n not in table]
    if prefer in free:
        return prefer
    return max(free) if free else None


@dataclass
class Translation:
    """Old verdict number -> new, and whether every old number keeps its meaning."""

    mapping: dict[int, int]
    identical: bool
    stale: int | None  # the new table's stale verdict
    removed: list[int] = field(default_factory=list)  # old allows with no counterpart

    def verdict(self, old: int) -> int | None:
        """The new number of an old verdict; None if it must not be carried (a removed
        verdict when no stale number is available)."""
        if old in self.mapping:
            return self.mapping[old]
        return self.stale if old in self.removed else None


def translation(
    old_doc: dict[str, Any], new_doc: dict[str, Any], old_stale: int | None = None
) -> Translation:
    """How the numbers of the old verdict table map onto the new one."""
    old = verdict_table(old_doc, old_stale)
    new = verdict_table(new_doc)
    by_identity = {_identity(v): n for n, v in new.items()}
    stale = stale_number(new_doc, prefer=old_stale)
    mapping, removed = {}, []
    for n, v in old.items():
        ident = _identity(v)
        if ident == ("reserved", STALE_NAME):
            if stale is not None:
                mapping[n] = stale
            else:
                removed.append(n)
            continue
        if ident in by_identity:
            mapping[n] = by_identity[ident]
        elif v.get("action") == "allow":
            removed.append(n)
    identical = all(mapping.get(n) == n for n in old) and not removed
    return Translation(mapping, identical, stale, removed)


# --- compatibility -------------------------------------------------------------------------


def layout_mismatch(info: dict[str, Any], layout: Layout, name: str) -> str | None:
    """Why a kernel map (its `map_info`) cannot serve as `name` of the new layout; None if
    it can."""
    m = layout.maps[name]
    ring = m.type in RINGS  # the kernel map has no key or value size: its records are `value`
    want = {
        "type": libbpf.MAP_TYPES.get(m.type),
        "key_size": 0 if ring else layout.size(m.key),
        "value_size": 0 if ring else layout.size(m.value),
        "max_entries": m.max_entries,
    }
    diffs = [f"{k} {info[k]} -> {v}" for k, v in want.items() if info.get(k) != v]
    return ", ".join(diffs) or None


def carries_verdicts(layout: Layout, name: str) -> bool:
    """Whether the map's entries hold verdict numbers (as key or value fields)."""
    if name in VERDICT_KEYED:
        return True
    m = layout.maps[name]
    if m.value == "u32" or m.value not in layout.structs:
        return False
    return any(f in layout.structs[m.value].fields for f in VERDICT_FIELDS)


# --- copying -------------------------------------------------------------------------------


@dataclass
class CopyResult:
    copied: int = 0
    skipped: int = 0  # not translatable, or no room

    def to_json(self) -> dict[str, int]:
        return {"copied": self.copied, "skipped": self.skipped}


def _convert(
    old: Layout, new: Layout, old_struct: str, new_struct: str, raw: bytes, tr: Translation | None
) -> bytes | None:
    """Repack one struct by field names (new fields zero); None if a verdict is dropped."""
    values = old.unpack(old_struct, raw)
    if new_struct == "u32":
        return new.pack("u32", values if isinstance(values, int) else 0)
    fields = new.structs[new_struct].fields
    keep = {k: v for k, v in values.items() if k in fields and fields[k].encoding != "pad8"}
    if tr is not None:
        for f in VERDICT_FIELDS:
            if keep.get(f):
                translated = tr.verdict(keep[f])
                if translated is None:
                    return None
                keep[f] = translated
    return new.pack(new_struct, keep, partial=True)


def copy_hash(
    old: BpfMap, new: BpfMap, tr: Translation | None, only_missing: bool = False
) -> CopyResult:
    """Copy a hash-type map's entries into the new map, translated; with `only_missing`,
    keys already in the new map are left alone."""
    om, nm = old.spec, new.spec
    res = CopyResult()
    for key, raw in old.entries():
        nkey = _convert(old.layout, new.layout, om.key, nm.key, key, None)
        nval = _convert(old.layout, new.layout, om.value, nm.value, raw, tr)
        if nkey is None or nval is None:
            res.skipped += 1
            continue
        try:
            new.put(nkey, nval, BPF_NOEXIST if only_missing else BPF_ANY)
        except BpfError as e:
            if e.errno not in (errno_mod.EEXIST, errno_mod.E2BIG, errno_mod.ENOMEM):
                raise
            if e.errno != errno_mod.EEXIST:
                res.skipped += 1
            continue
        res.copied += 1
    return res


def add_counters(old: BpfMap, new: BpfMap, tr: Translation | None) -> CopyResult:
    """Add each old per-CPU counter slot into the new map at the verdict's new number
    (integer fields are summed field by field, per CPU)."""
    om, nm = old.spec, new.spec
    res = CopyResult()
    for index in range(om.max_entries):
        olds = old.get_percpu(index.to_bytes(4, "little"))
        if not any(any(v) for v in olds):
            continue
        # a removed rule's counters go with it
        target = index if tr is None else tr.mapping.get(index)
        if target is None or target >= nm.max_entries:
            res.skipped += 1
            continue
        key = target.to_bytes(4, "little")
        merged = []
        for o, n in zip(olds, new.get_percpu(key), strict=True):
            a, b = old.unpack_value(o), new.unpack_value(n)
            total = {k: b.get(k, 0) + a.get(k, 0) for k in b if isinstance(b[k], int)}
            merged.append(new.layout.pack(nm.value, total))
        new.put_percpu(key, merged)
        res.copied += 1
    return res


def migrate(
    old: BpfMap, new: BpfMap, tr: Translation | None, second_pass: bool = False
) -> CopyResult | None:
    """Copy a state map into its replacement; None for maps that are not copied (caches,
    maps missing from either layout). Counters are only moved on the second pass (after the
    programs were swapped, when the old ones no longer count)."""
    name = new.name
    if name in CACHES or name not in old.layout.maps or name not in new.layout.maps:
        return None
    om, nm = old.spec, new.spec
    if name in VERDICT_KEYED or nm.type in ("array", "percpu_array"):
        if not second_pass:
            return None
        if not om.percpu or not nm.percpu:
            return None
        return add_counters(old, new, tr if name in VERDICT_KEYED else None)
    if nm.percpu or om.percpu:
        return None
    return copy_hash(old, new, tr, only_missing=second_pass)


# --- service flows to removed backends -----------------------------------------------------

TCP = 6
FLOW_MAPS = ("netcc_ct", "netcc_lb_nat")  # where service flows are kept
ServiceKey = tuple[str, int, int, int]  # (vip, port, proto, scope) of netcc_lb_services


def service_backends(maps: dict[str, list[dict]]) -> dict[ServiceKey, set[tuple[str, int]]]:
    """Each service port of a version's data maps -> its backends (address, port)."""
    rows: dict[int, set[tuple[str, int]]] = {}
    for e in maps.get("netcc_lb_members", []):
        rows.setdefault(e["key"]["row"], set()).add((e["key"]["ip"], e["key"]["port"]))
    out = {}
    for e in maps.get("netcc_lb_services", []):
        k = e["key"]
        out[(k["vip"], k["port"], k["proto"], k["scope"])] = rows.get(e["value"]["row"], set())
    return out


def _gone(
    backends: dict[ServiceKey, set[tuple[str, int]]],
    service: tuple[str, int, int],
    backend: tuple[str, int],
    scopes: tuple[int, ...],
) -> bool:
    """Whether the flow's backend no longer serves its service port (or the port is gone)."""
    vip, port, proto = service
    for scope in scopes:
        members = backends.get(
            ("0.0.0.0" if scope == LB_SCOPE_NODEPORT_POD else vip, port, proto, scope)
        )
        if members is not None:
            return backend not in members
    return True


def ct_flow(key: dict, val: dict) -> tuple[tuple[str, int, int], tuple[str, int]] | None:
    """(service, backend) of a conntrack entry of a pod's service flow; None for others."""
    if not val.get("nat_addr") or val["nat_addr"] == "0.0.0.0" or val["flags"] & CT_F_HAIRPIN:
        return None
    proto = key["proto"]
    if val["flags"] & CT_F_SERVICE:  # original tuple: client -> VIP, the backend in nat_*
        return (key["remote"], key["rport"], proto), (val["nat_addr"], val["nat_port"])
    # translated tuple: client -> backend, the VIP in nat_*
    return (val["nat_addr"], val["nat_port"], proto), (key["remote"], key["rport"])


def _nat_flow(
    key: dict, val: dict, backends: dict[ServiceKey, set[tuple[str, int]]]
) -> tuple[tuple[str, int, int], tuple[str, int]] | None:
    """(service, backend) of a NodePort translation at the uplink, forward or reverse."""
    proto = key["proto"]
    if (val["saddr"], val["sport"], proto, LB_SCOPE_NODEPORT) in backends:  # backend -> client
        return (val["saddr"], val["sport"], proto), (key["local"], key["lport"])
    return (key["remote"], key["rport"], proto), (val["daddr"], val["dport"])  # client -> node


def flush_removed_backends(
    maps: Mapping[str, BpfMap],
    backends: dict[ServiceKey, set[tuple[str, int]]],
    tcp: bool = False,
) -> int:
    """Delete the conntrack entries (`netcc_ct`) and NodePort translations (`netcc_lb_nat`)
    of service flows whose backend no longer serves their service port (`backends`: the new
    version's, from `service_backends`), so that their next packet picks a live backend, as
    kube-proxy clears the conntrack entries of UDP flows to a removed endpoint. TCP flows are
    left to time out (as kube-proxy does: a pod that left the selector but still runs keeps
    serving them) unless `tcp`. Returns how many entries were deleted."""
    deleted = 0
    for name, scopes in (
        ("netcc_ct", (LB_SCOPE_CLUSTER_IP, LB_SCOPE_NODEPORT_POD)),
        ("netcc_lb_nat", (LB_SCOPE_NODEPORT,)),
    ):
        m = maps.get(name)
        if m is None or name not in m.layout.maps:
            continue
        for raw_key, raw in m.entries():
            key, val = m.unpack_key(raw_key), m.unpack_value(raw)
            if key["proto"] == TCP and not tcp:
                continue
            flow = ct_flow(key, val) if name == "netcc_ct" else _nat_flow(key, val, backends)
            if flow is not None and _gone(backends, *flow, scopes):
                deleted += m.delete(raw_key)
    return deleted
