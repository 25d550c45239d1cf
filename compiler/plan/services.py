"""The per-node load-balancing plan: service entries, backends and Maglev rows.

- Every TCP or UDP port of every service gets a cluster-wide row (its Maglev table over all of
  its backends) and, on every node, a ClusterIP entry (cluster IP, port) for pods' traffic.
- A NodePort port also gets, on every node, an entry (0.0.0.0, nodePort) for pods reaching it
  through any node's address: all of its backends, as kube-proxy treats pod traffic to
  external destinations ("subject to neither form of traffic policy").
- And, on every node, a NodePort entry (the node's address, nodePort) for the node's uplink.
  With externalTrafficPolicy Cluster it shares the ClusterIP row; with Local it has a row per
  node over that node's backends only (none: the entry drops).
- Backends are numbered cluster-wide; each node marks its own (LB_BACKEND_F_LOCAL), which
  tells the uplink whether a NodePort flow needs SNAT to the node's address.
- Each row's backends are also listed by (row, address, port) in netcc_lb_members: a
  sessionAffinity entry is honoured only while its backend is one of them, so an update keeps
  every client whose backend stays and re-balances only those whose backend went away.
SCTP ports are not translated (their CRC32c checksum cannot be updated incrementally).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address

from netcc.contract import constants
from netcc.contract.entries import (
    Entry,
    LbBackend,
    LbBackendKey,
    LbMember,
    LbMemberKey,
    LbRow,
    LbRowKey,
    LbService,
    LbServiceKey,
)
from netcc.model.types import PROTOCOL_NUMBERS, Service, ServicePort
from netcc.plan import maglev
from netcc.resolve.backends import Backend, port_label
from netcc.resolve.resolution import Resolution

TRANSLATED = ("TCP", "UDP")
UPLINK_NODEPORT, POD_NODEPORT = constants.LB_SCOPE_NODEPORT, constants.LB_SCOPE_NODEPORT_POD
SCOPE_NAMES = {
    constants.LB_SCOPE_CLUSTER_IP: "ClusterIP",
    UPLINK_NODEPORT: "NodePort",
    POD_NODEPORT: "NodePort from pods, any node's address",
}


@dataclass(frozen=True)
class Row:
    """One Maglev table: its number, what it serves, and its backends."""

    number: int
    label: str
    backends: tuple[Backend, ...]
    node: str | None = None  # set for externalTrafficPolicy Local rows (node-local backends)


@dataclass
class LbPlan:
    maglev_size: int
    rows: list[tuple[str, Row]] = field(default_factory=list)  # (node or "", row), emitted
    maps: dict[str, dict[str, list[Entry]]] = field(default_factory=dict)  # node -> map -> entries
    notes: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)  # lines for the generated services.h


def _ports(service: Service) -> list[ServicePort]:
    return [p for p in service.ports if p.protocol in TRANSLATED]


def _flags(service: Service) -> int:
    return constants.LB_FLAGS["LB_F_AFFINITY"] if service.session_affinity == "ClientIP" else 0


def plan_services(r: Resolution) -> LbPlan:
    """The LB maps of every node. Raises maglev.TableSizeError when the tables cannot fit."""
    cluster = r.cluster
    services = sorted(cluster.services, key=lambda s: s.key)
    cluster_rows: dict[tuple[str, int], Row] = {}
    number = 1
    notes = []
    for s in services:
        for i, p in enumerate(s.ports):
            if p.protocol not in TRANSLATED:
                notes.append(f"{port_label(s, p)}: {p.protocol} services are not translated")
                continue
            cluster_rows[(s.key, i)] = Row(number, port_label(s, p), r.backends[(s.key, i)])
            number += 1
    local_rows: dict[tuple[str, int, str], Row] = {}
    local_numbers: dict[tuple[str, int], int] = {}
    for s in services:
        if s.type != "NodePort" or s.external_traffic_policy != "Local":
            continue
        for i, p in enumerate(s.ports):
            if (s.key, i) in cluster_rows and p.node_port:
                local_numbers[(s.key, i)] = number
                number += 1
    for (key, i), n in local_numbers.items():
        base = cluster_rows[(key, i)]
        for node in cluster.nodes:
            mine = tuple(b for b in base.backends if b.node == node.name)
            local_rows[(key, i, node.name)] = Row(n, base.label + " local", mine, node.name)

    all_rows = list(cluster_rows.values()) + list(local_rows.values())
    biggest = max((len(r.backends) for r in all_rows), default=1)
    size = maglev.table_size(biggest, len(cluster_rows) + len(local_numbers))
    backends = sorted({b for r in cluster_rows.values() for b in r.backends})
    backend_id = {b: n for n, b in enumerate(backends, start=1)}

    # A row's slots as backend numbers, computed once per distinct backend set and shared by
    # identical rows and by every node (hashing Backends per slot dominated large clusters).
    slot_ids: dict[tuple[Backend, ...], tuple[int, ...]] = {}

    def row_ids(row: Row) -> tuple[int, ...]:
        ids = slot_ids.get(row.backends)
        if ids is None:
            numbers = [backend_id[b] for b in row.backends]
            slots = maglev.table([b.identity for b in row.backends], size)
            ids = slot_ids[row.backends] = tuple(numbers[i] for i in slots)
        return ids

    out = LbPlan(size, notes=notes)
    for r in cluster_rows.values():
        out.comments.append(f"row {r.number}: {r.label}: {len(r.backends)} backend(s)")
    for n in sorted(set(local_numbers.values())):
        label = next(r.label for r in local_rows.values() if r.number == n)
        out.comments.append(f"row {n}: {label}: the node's own backends only")
    for node in sorted(cluster.nodes, key=lambda n: n.name):
        svc_entries: list[Entry] = []
        rows: dict[int, Row] = {r.number: r for r in cluster_rows.values()}
        for s in services:
            for i, p in enumerate(s.ports):
                row = cluster_rows.get((s.key, i))
                if row is None:
                    continue
                svc_entries.append(_service_entry(s, p, row, s.cluster_ip, 0, _flags(s)))
                if s.type != "NodePort" or not p.node_port:
                    continue
                svc_entries.append(
                    _service_entry(s, p, row, IPv4Address(0), POD_NODEPORT, _flags(s), p.node_port)
                )
                flags = _flags(s) | constants.LB_FLAGS["LB_F_NODEPORT"]
                if (s.key, i) in local_numbers:
                    row = local_rows[(s.key, i, node.name)]
                    rows[row.number] = row
                    flags |= constants.LB_FLAGS["LB_F_LOCAL"]
                svc_entries.append(
                    _service_entry(s, p, row, node.address, UPLINK_NODEPORT, flags, p.node_port)
                )
        local = constants.LB_FLAGS["LB_BACKEND_F_LOCAL"]
        backend_entries = [
            Entry(
                LbBackendKey(backend_id[b]),
                LbBackend(ip=str(b.ip), port=b.port, flags=local if b.node == node.name else 0),
                f"{b.workload} {b.protocol} {b.port}",
            )
            for b in backends
        ]
        row_entries, member_entries = [], []
        for n, row in sorted(rows.items()):
            if not row.backends:
                continue
            row_entries.append(Entry(LbRowKey(n), LbRow(row_ids(row)), row.label))
            member_entries += [_member_entry(n, row, b, node.name) for b in row.backends]
        svc_entries.sort(key=lambda e: (int(IPv4Address(e.key.vip)), e.key.port, e.key.proto))
        out.maps[node.name] = {
            "netcc_lb_services": svc_entries,
            "netcc_lb_backends": backend_entries,
            "netcc_lb_maglev": row_entries,
            "netcc_lb_members": member_entries,
        }
    return out


def _service_entry(
    s: Service,
    p: ServicePort,
    row: Row,
    vip: IPv4Address,
    scope: int,
    flags: int,
    port: int | None = None,
) -> Entry:
    kind = SCOPE_NAMES[scope]
    return Entry(
        LbServiceKey(
            vip=str(vip), port=port or p.port, proto=PROTOCOL_NUMBERS[p.protocol], scope=scope
        ),
        LbService(
            row=row.number,
            count=len(row.backends),
            flags=flags,
            timeout=s.session_affinity_timeout if s.session_affinity == "ClientIP" else 0,
        ),
        f"{row.label} {kind} ({s.path})",
    )


def _member_entry(number: int, row: Row, b: Backend, node: str) -> Entry:
    local = constants.LB_FLAGS["LB_BACKEND_F_LOCAL"] if b.node == node else 0
    return Entry(
        LbMemberKey(row=number, ip=str(b.ip), port=b.port),
        LbMember(flags=local),
        f"{row.label}: {b.workload} {b.protocol} {b.port}",
    )
