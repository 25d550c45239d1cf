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
- internalTrafficPolicy Local gives the ClusterIP entry, on every node, a row over that node's
  backends only (the same per-node row externalTrafficPolicy Local gives the uplink).
- A port that workload classes may back (`Resolution.port_classes`) is *dynamic*: its rows
  hold its static backends at build time, and the node daemon refills them from the live,
  ready pods of those classes (`netcc.contract.services`, written as `services.json`). Its
  rows are filled by per-slot rendezvous (`services.slot_table`), as the daemon fills them, so
  a daemon with no runtime backend yet computes exactly OUT's rows. The table size and the
  capacities leave room for every address of the classes' blocks.
SCTP ports are not translated (their CRC32c checksum cannot be updated incrementally).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address

from netcc.contract import constants
from netcc.contract import services as dyn
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
    dynamic: dyn.Services | None = None  # the ports runtime pods may back (services.json)
    reserve: dict[str, int] = field(default_factory=dict)  # map -> room for runtime entries
    rows: list[tuple[str, Row]] = field(default_factory=list)  # (node or "", row), emitted
    maps: dict[str, dict[str, list[Entry]]] = field(default_factory=dict)  # node -> map -> entries
    notes: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)  # lines for the generated services.h


def _ports(service: Service) -> list[ServicePort]:
    return [p for p in service.ports if p.protocol in TRANSLATED]


def _flags(service: Service) -> int:
    return constants.LB_FLAGS["LB_F_AFFINITY"] if service.session_affinity == "ClientIP" else 0


def _needs_local(s: Service, p: ServicePort) -> bool:
    """Whether the port has per-node rows of the node's own backends."""
    etp = s.type == "NodePort" and s.external_traffic_policy == "Local" and bool(p.node_port)
    return etp or s.internal_traffic_policy == "Local"


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
        for i, p in enumerate(s.ports):
            if (s.key, i) in cluster_rows and _needs_local(s, p):
                local_numbers[(s.key, i)] = number
                number += 1
    for (key, i), n in local_numbers.items():
        base = cluster_rows[(key, i)]
        for node in cluster.nodes:
            mine = tuple(b for b in base.backends if b.node == node.name)
            local_rows[(key, i, node.name)] = Row(n, base.label + " local", mine, node.name)

    dynamic = {k: r.port_classes.get(k, ()) for k in cluster_rows}
    dynamic = {k: v for k, v in dynamic.items() if v}
    all_rows = list(cluster_rows.values()) + list(local_rows.values())
    biggest = max((len(r.backends) for r in all_rows), default=1)
    rows_count = len(cluster_rows) + len(local_numbers)
    bound = _dynamic_bound(r, cluster_rows, dynamic)
    try:
        size = maglev.table_size(max([biggest, *bound.values()]), rows_count)
    except maglev.TableSizeError:
        size = maglev.table_size(biggest, rows_count)
        notes.append(
            f"Maglev tables of {size} slots: a service port with more live backends than that "
            f"uses {size} of them"
        )
    backends = sorted({b for r in cluster_rows.values() for b in r.backends})
    backend_id = {b: n for n, b in enumerate(backends, start=1)}
    dynamic_rows = {cluster_rows[k].number for k in dynamic} | {
        local_numbers[k] for k in dynamic if k in local_numbers
    }

    # A row's slots as backend numbers, computed once per distinct backend set and shared by
    # identical rows and by every node (hashing Backends per slot dominated large clusters).
    slot_ids: dict[tuple[tuple[Backend, ...], bool], tuple[int, ...]] = {}

    def row_ids(row: Row) -> tuple[int, ...]:
        rendezvous = row.number in dynamic_rows
        ids = slot_ids.get((row.backends, rendezvous))
        if ids is None:
            numbers = [backend_id[b] for b in row.backends]
            fill = dyn.slot_table if rendezvous else maglev.table
            slots = fill([b.identity for b in row.backends], size)
            ids = slot_ids[(row.backends, rendezvous)] = tuple(numbers[i] for i in slots)
        return ids

    out = LbPlan(size, notes=notes)
    if dynamic:
        out.dynamic = _dynamic_ports(r, size, cluster_rows, local_numbers, dynamic, backend_id)
        out.reserve = _reserve(r, dynamic, local_numbers)
    for key, row in cluster_rows.items():
        said = f"row {row.number}: {row.label}: {len(row.backends)} backend(s)"
        if key in dynamic:
            said += ", and the ready pods of " + ", ".join(c for c, _ in dynamic[key])
        out.comments.append(said)
    for n in sorted(set(local_numbers.values())):
        label = next(row.label for row in local_rows.values() if row.number == n)
        out.comments.append(f"row {n}: {label}: the node's own backends only")
    for node in sorted(cluster.nodes, key=lambda n: n.name):
        svc_entries: list[Entry] = []
        rows: dict[int, Row] = {r.number: r for r in cluster_rows.values()}
        for s in services:
            for i, p in enumerate(s.ports):
                row = cluster_rows.get((s.key, i))
                if row is None:
                    continue
                local_row = local_rows.get((s.key, i, node.name))
                if local_row is not None:
                    rows[local_row.number] = local_row
                internal = local_row if s.internal_traffic_policy == "Local" else None
                svc_entries.append(
                    _service_entry(s, p, internal or row, s.cluster_ip, 0, _flags(s))
                )
                if s.type != "NodePort" or not p.node_port:
                    continue
                svc_entries.append(
                    _service_entry(s, p, row, IPv4Address(0), POD_NODEPORT, _flags(s), p.node_port)
                )
                flags = _flags(s) | constants.LB_FLAGS["LB_F_NODEPORT"]
                uplink = row
                if s.external_traffic_policy == "Local" and local_row is not None:
                    uplink = local_row
                    flags |= constants.LB_FLAGS["LB_F_LOCAL"]
                svc_entries.append(
                    _service_entry(s, p, uplink, node.address, UPLINK_NODEPORT, flags, p.node_port)
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


def _block_addresses(r: Resolution, class_key: str) -> int:
    """Addresses of one class's blocks, all nodes together."""
    return r.peers.addresses.blocks[class_key].size * len(r.cluster.nodes)


def _dynamic_bound(
    r: Resolution, cluster_rows: dict[tuple[str, int], Row], dynamic: dict
) -> dict[tuple[str, int], int]:
    """The most backends each dynamic port can have: its static ones and every address of its
    classes' blocks."""
    return {
        k: len(cluster_rows[k].backends) + sum(_block_addresses(r, c) for c, _ in classes)
        for k, classes in dynamic.items()
    }


def _dynamic_ports(
    r: Resolution,
    size: int,
    cluster_rows: dict[tuple[str, int], Row],
    local_numbers: dict[tuple[str, int], int],
    dynamic: dict[tuple[str, int], tuple[tuple[str, int], ...]],
    backend_id: dict[Backend, int],
) -> dyn.Services:
    """What the daemon needs of the dynamic ports (`services.json`)."""
    cluster = r.cluster
    by_key = {s.key: s for s in cluster.services}
    blocks = r.peers.addresses.blocks
    tps = sorted(
        {(tp, by_key[k].ports[i].protocol) for (k, i), cs in dynamic.items() for _, tp in cs}
    )
    nodes, index = [], 0
    for node in sorted(cluster.nodes, key=lambda n: n.name):
        nodes.append(dyn.NodeRange(node.name, node.pod_cidr, index))
        index += node.pod_cidr.num_addresses
    ports = []
    for (key, i), classes in sorted(dynamic.items()):
        s, p = by_key[key], by_key[key].ports[i]
        ports.append(
            dyn.DynamicPort(
                service=key,
                port_name=p.name or "",
                port=p.port,
                protocol=p.protocol,
                cluster_ip=s.cluster_ip,
                node_port=p.node_port if s.type == "NodePort" else None,
                session_affinity=s.session_affinity,
                internal_policy=s.internal_traffic_policy,
                external_policy=s.external_traffic_policy,
                selector=tuple(sorted(s.selector)),
                cluster_row=cluster_rows[(key, i)].number,
                local_row=local_numbers.get((key, i)),
                classes=tuple(
                    dyn.PortClass(c, blocks[c].offset, blocks[c].size, tp) for c, tp in classes
                ),
                static=tuple(
                    dyn.StaticBackend(backend_id[b], b.ip, b.port, b.node)
                    for b in cluster_rows[(key, i)].backends
                ),
            )
        )
    return dyn.make(dyn.BACKEND_BASE, size, tuple(tps), tuple(nodes), tuple(ports))


def _reserve(
    r: Resolution,
    dynamic: dict[tuple[str, int], tuple[tuple[str, int], ...]],
    local_numbers: dict[tuple[str, int], int],
) -> dict[str, int]:
    """Room in the LB maps for what the daemons add: every (address, target port) a class
    may serve as a backend, on every node; each dynamic row's members (a local row holds one
    node's blocks); the dynamic rows themselves, which OUT leaves out while empty."""
    nodes = len(r.cluster.nodes)
    pairs = {(c, tp) for classes in dynamic.values() for c, tp in classes}
    blocks = r.peers.addresses.blocks
    members = 0
    for k, classes in dynamic.items():
        members += sum(blocks[c].size * nodes for c, _ in classes)
        if k in local_numbers:
            members += sum(blocks[c].size for c, _ in classes)
    return {
        "netcc_lb_backends": sum(blocks[c].size * nodes for c, _ in pairs),
        "netcc_lb_members": members,
        "netcc_lb_maglev": len(dynamic) + sum(1 for k in dynamic if k in local_numbers),
    }
