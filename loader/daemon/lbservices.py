"""The live backends of the service ports runtime pods may back, and the LB map entries they
make on this node. Pure: EndpointSlices in, entries out; `lbwriter` puts them in the kernel.

For each dynamic port of OUT (`services.json`, `netcc.contract.services`):
1. Its endpoints are the EndpointSlices of its service: the slice port of the same name and
   protocol gives the port number. An address is accepted only inside the block of one of
   the port's classes on some node, and only on that class's targetPort (decided at build
   time); anything else is rejected and reported, never a backend. The node an endpoint runs
   on is the node whose podCIDR holds its address (the slice's nodeName is not trusted).
2. As kube-proxy chooses (KEP-1669): the ready endpoints; when none is ready, the serving
   ones that are terminating. The cluster row takes them from every node; the local row
   (internalTrafficPolicy or externalTrafficPolicy Local) from this node only, chosen
   separately, so a node whose own endpoints all terminate still uses them.
3. The port's static backends (OUT's) are always members.
4. Rows are filled by `services.SlotTable` (per-slot rendezvous), kept per row, so a change
   moves only the slots of the backends that came or went; a row holds at most the table
   size of backends (the smallest identity hashes first; reported).
5. The entries: every runtime backend (`services.backend_id`, flagged local on its node),
   each row, each row's members, and OUT's service entries pointing at the port's rows with
   `count` set to the row's backends (0: the datapath drops, DROP_NO_BACKEND).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any, Protocol

from netcc.contract import constants
from netcc.contract import services as dyn

SERVICES_MAP = "netcc_lb_services"
BACKENDS_MAP = "netcc_lb_backends"
ROWS_MAP = "netcc_lb_maglev"
MEMBERS_MAP = "netcc_lb_members"
LB_MAPS = (SERVICES_MAP, BACKENDS_MAP, ROWS_MAP, MEMBERS_MAP)
LOCAL = constants.LB_FLAGS["LB_BACKEND_F_LOCAL"]

EntryKey = tuple[str, tuple]  # (map, key fields as a tuple)


class SlicePortLike(Protocol):
    name: str
    port: int | None
    protocol: str


class SliceEndpointLike(Protocol):
    address: str
    ready: bool
    serving: bool
    terminating: bool
    node_name: str


class SliceLike(Protocol):
    name: str
    ports: tuple[SlicePortLike, ...]
    endpoints: tuple[SliceEndpointLike, ...]


@dataclass(frozen=True, order=True)
class Live:
    """One endpoint of a port as the daemon judges it."""

    ip: IPv4Address
    port: int
    node: str
    klass: str
    ready: bool
    serving: bool
    terminating: bool


def identity(ip: IPv4Address | str, port: int, protocol: str) -> str:
    """How rows hash a backend: the same text as the compiler's `Backend.identity`."""
    return f"{ip}:{port}/{protocol}"


def endpoints(
    services: dyn.Services, port: dyn.DynamicPort, slices: Iterable[SliceLike]
) -> tuple[list[Live], list[str]]:
    """The port's endpoints in `slices` (its service's), and why others were rejected."""
    found: dict[tuple[IPv4Address, int], Live] = {}
    rejected = []
    for s in slices:
        numbers = [
            p.port
            for p in s.ports
            if (p.name or "") == port.port_name and (p.protocol or "TCP") == port.protocol
        ]
        if not numbers or numbers[0] is None:
            continue
        number = numbers[0]
        for e in s.endpoints:
            try:
                ip = IPv4Address(e.address)
            except ValueError:
                rejected.append(f"{s.name}: {e.address!r} is not an IPv4 address")
                continue
            placed = services.placement(port, ip)
            if placed is None:
                if not any(b.ip == ip and b.port == number for b in port.static):
                    rejected.append(f"{s.name}: {ip} is in no block of {_classes(port)}")
                continue
            klass, node = placed
            if number != klass.target_port:
                rejected.append(
                    f"{s.name}: {ip}:{number} is not {klass.key}'s targetPort {klass.target_port}"
                )
                continue
            live = Live(ip, number, node, klass.key, e.ready, e.serving, e.terminating)
            old = found.get((ip, number))
            if old is None or _rank(live) > _rank(old):
                found[(ip, number)] = live
    return sorted(found.values()), rejected


def _rank(e: Live) -> tuple[bool, bool]:
    return e.ready, e.serving


def _classes(port: dyn.DynamicPort) -> str:
    return ", ".join(c.key for c in port.classes) or "no class"


def usable(eps: Iterable[Live]) -> list[Live]:
    """KEP-1669: the ready endpoints; with none, the serving ones that terminate."""
    eps = list(eps)
    ready = [e for e in eps if e.ready]
    return ready or [e for e in eps if e.serving and e.terminating]


@dataclass
class RowState:
    """One dynamic row on this node: its slot table over backend identities."""

    number: int
    table: dyn.SlotTable
    members: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # id -> ip, port, id
    capped: int = 0  # live backends left out: more than the table has slots


@dataclass
class PortState:
    """A dynamic port's live view on this node."""

    port: dyn.DynamicPort
    live: list[Live] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    cluster: RowState | None = None
    local: RowState | None = None


class Reconciler:
    """This node's entries for every dynamic port, recomputed per service on each change."""

    def __init__(
        self,
        node: str,
        services: dyn.Services,
        service_entries: Iterable[Mapping[str, Any]],
    ) -> None:
        """`service_entries`: OUT's `netcc_lb_services` entries of this node."""
        self.node = node
        self.services = services
        self.by_service = services.by_service()
        self.rows = frozenset(
            n for p in services.ports for n in (p.cluster_row, p.local_row) if n is not None
        )
        self._svc_entries: dict[int, list[Mapping[str, Any]]] = {}
        for e in service_entries:
            row = int(e["value"]["row"])
            if row in self.rows:
                self._svc_entries.setdefault(row, []).append(e)
        self.ports: dict[tuple[str, str, str], PortState] = {}
        self.entries: dict[EntryKey, dict[str, Any]] = {}
        self._by_service: dict[str, set[EntryKey]] = {}
        self._backend_refs: dict[int, set[str]] = {}  # backend id -> services holding it
        for service in sorted(self.by_service):
            self.update(service, ())

    # -- a change ----------------------------------------------------------------------------

    def update(self, service: str, slices: Iterable[SliceLike]) -> Change:
        """Recompute `service`'s ports from its slices: the entry changes (none when the
        service backs no dynamic port here)."""
        ports = self.by_service.get(service)
        if not ports:
            return Change()
        slices = tuple(slices)
        want: dict[EntryKey, dict[str, Any]] = {}
        removed: list[tuple[dyn.DynamicPort, set[tuple[str, int]]]] = []
        for port in ports:
            st = self.ports.get(_port_key(port))
            if st is None:
                st = self.ports[_port_key(port)] = PortState(port)
            before = _backend_set(st)
            st.live, st.rejected = endpoints(self.services, port, slices)
            self._fill(st)
            gone = before - _backend_set(st)
            if gone:
                removed.append((port, gone))
            want.update(self._entries(st))
        return self._diff(service, want, removed)

    def _fill(self, st: PortState) -> None:
        port, size = st.port, self.services.maglev_size
        static = [(str(b.ip), b.port, b.id, b.node) for b in port.static]
        cluster = [(str(e.ip), e.port, self._id(e, port), e.node) for e in usable(st.live)]
        st.cluster = _row(st.cluster, port.cluster_row, port.protocol, static + cluster, size)
        if port.local_row is not None:
            mine = [e for e in st.live if e.node == self.node]
            local = [(str(e.ip), e.port, self._id(e, port), e.node) for e in usable(mine)]
            own = [b for b in static if b[3] == self.node]
            st.local = _row(st.local, port.local_row, port.protocol, own + local, size)

    def _id(self, e: Live, port: dyn.DynamicPort) -> int:
        return self.services.backend_id(e.ip, e.port, port.protocol)

    def _entries(self, st: PortState) -> dict[EntryKey, dict[str, Any]]:
        out: dict[EntryKey, dict[str, Any]] = {}
        label = st.port.label
        locals_ = {str(e.ip) for e in st.live if e.node == self.node}
        static_local = {str(b.ip) for b in st.port.static if b.node == self.node}
        for row in (st.cluster, st.local):
            if row is None:
                continue
            for ident, (ip, number, bid) in sorted(row.members.items()):
                flags = LOCAL if ip in locals_ or ip in static_local else 0
                key = (MEMBERS_MAP, (row.number, ip, number))
                out[key] = {
                    "key": {"row": row.number, "ip": ip, "port": number},
                    "value": {"flags": flags},
                    "note": f"{label}: {ident}",
                }
                if bid >= self.services.backend_base:
                    out[(BACKENDS_MAP, (bid,))] = {
                        "key": {"id": bid},
                        "value": {"ip": ip, "port": number, "flags": flags},
                        "note": f"runtime backend {ident}",
                    }
            if row.members:
                slots = [row.members[o][2] for o in row.table.owner if o is not None]
                out[(ROWS_MAP, (row.number,))] = {
                    "key": {"id": row.number},
                    "value": {"backends": slots},
                    "note": label,
                }
            for e in self._svc_entries.get(row.number, ()):
                k = e["key"]
                out[(SERVICES_MAP, (k["vip"], k["port"], k["proto"], k["scope"]))] = {
                    "key": dict(k),
                    "value": {**e["value"], "count": len(row.members)},
                    "note": e.get("note", label),
                }
        return out

    def _diff(
        self,
        service: str,
        want: dict[EntryKey, dict[str, Any]],
        removed: list[tuple[dyn.DynamicPort, set[tuple[str, int]]]],
    ) -> Change:
        had = self._by_service.get(service, set())
        puts = {k: v for k, v in want.items() if self.entries.get(k) != v}
        deletes = set()
        for k in had - set(want):
            if k[0] == BACKENDS_MAP:
                refs = self._backend_refs.get(k[1][0], set())
                refs.discard(service)
                if refs:
                    continue  # another service's port still has this backend
                self._backend_refs.pop(k[1][0], None)
            deletes.add(k)
        for k in want:
            if k[0] == BACKENDS_MAP:
                self._backend_refs.setdefault(k[1][0], set()).add(service)
        for k in deletes:
            self.entries.pop(k, None)
        self.entries.update(puts)
        self._by_service[service] = set(want)
        return Change(puts, deletes, removed)

    # -- what the full apply and the report read ---------------------------------------------

    def overlay(self) -> dict[str, list[dict[str, Any]]]:
        """Every entry, by map: what the full apply puts in place of OUT's for `rows`."""
        out: dict[str, list[dict[str, Any]]] = {m: [] for m in LB_MAPS}
        for (name, _), e in sorted(self.entries.items(), key=lambda kv: repr(kv[0])):
            out[name].append(e)
        return out

    def report(self) -> list[dict[str, Any]]:
        """Each dynamic port's live backends, for `netcc load status`."""
        out = []
        for _, st in sorted(self.ports.items()):
            used = set(st.cluster.members) if st.cluster else set()
            local = set(st.local.members) if st.local else None
            out.append(
                {
                    "port": st.port.label,
                    "classes": [c.key for c in st.port.classes],
                    "backends": [
                        {
                            "address": f"{e.ip}:{e.port}",
                            "node": e.node,
                            "class": e.klass,
                            "ready": e.ready,
                            "serving": e.serving,
                            "terminating": e.terminating,
                            "used": identity(e.ip, e.port, st.port.protocol) in used,
                            **(
                                {"local": identity(e.ip, e.port, st.port.protocol) in local}
                                if local is not None and e.node == self.node
                                else {}
                            ),
                        }
                        for e in st.live
                    ],
                    "static": [f"{b.ip}:{b.port}" for b in st.port.static],
                    "rows": {
                        "cluster": len(used),
                        **({"local": len(local)} if local is not None else {}),
                    },
                    "capped": (st.cluster.capped if st.cluster else 0),
                    "rejected": st.rejected[:20],
                }
            )
        return out


@dataclass
class Change:
    """Entries to put and to delete, and the backends each port lost (flows to flush)."""

    puts: dict[EntryKey, dict[str, Any]] = field(default_factory=dict)
    deletes: set[EntryKey] = field(default_factory=set)
    removed: list[tuple[dyn.DynamicPort, set[tuple[str, int]]]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.puts or self.deletes)


def _port_key(p: dyn.DynamicPort) -> tuple[str, str, str]:
    return (p.service, p.port_name, p.protocol)


def _backend_set(st: PortState) -> set[tuple[str, int]]:
    out = set()
    for row in (st.cluster, st.local):
        if row is not None:
            out |= {(ip, port) for ip, port, _ in row.members.values()}
    return out


def _row(
    old: RowState | None,
    number: int,
    protocol: str,
    backends: list[tuple[str, int, int, str]],
    size: int,
) -> RowState:
    """The row over `backends` (ip, port, id, node), updated in place from `old`."""
    st = old or RowState(number, dyn.SlotTable(size))
    members = {identity(ip, port, protocol): (ip, port, bid) for ip, port, bid, _ in backends}
    capped = 0
    if len(members) > size:  # a row cannot hold more backends than slots: keep the first
        keep = sorted(members, key=lambda i: (dyn.identity_hash(i), i))[:size]
        capped = len(members) - size
        members = {i: members[i] for i in keep}
    st.table.set(members)
    st.members, st.capped = members, capped
    return st
