"""`services.json`: the service ports whose backends are runtime pods, as the node daemon needs
them, and how their backends are numbered.

What is decided at build time, committed and reviewable: which classes may back each service
port (a class of the service's namespace that its selector matches and that serves the port's
targetPort), the targetPort of each class, the Maglev rows the port's entries point at (the
cluster row, and the node-local row that `internalTrafficPolicy: Local` and
`externalTrafficPolicy: Local` use), and the port's static backends (workloads with fixed
addresses, numbered by the compiler). What changes at runtime is the set of live, ready
backends, which only the node daemon knows (from EndpointSlices, or the lab's pod list).

An address is accepted as a backend of a port only inside the block of one of the port's
classes on some node, and only on that class's targetPort: an EndpointSlice cannot make a pod
of another class, or an outside address, a backend.

A runtime backend's number is a function of its address and target port
(`Layout.backend_id`), so every node numbers it alike, a restarted daemon finds its own
entries again, and no number is ever handed out twice: the compiler numbers static backends
below `backendBase`; runtime ones are `backendBase + address index * len(targetPorts) + t`,
the address index counting the addresses of every node's podCIDR in node order.

    {"servicesVersion": 1, "backendBase": 1048576, "maglevSize": 509,
     "targetPorts": [[8080, "TCP"]],
     "nodes": [{"node": "n1", "podCIDR": "10.1.0.0/24", "index": 0}],
     "ports": [{"service": "shop/web", "portName": "http", "port": 80, "protocol": "TCP",
                "clusterIP": "10.96.0.10", "nodePort": 30080, "sessionAffinity": "None",
                "internalTrafficPolicy": "Cluster", "externalTrafficPolicy": "Local",
                "selector": {"app": "web"}, "rows": {"cluster": 3, "local": 7},
                "classes": [{"class": "shop/web", "offset": 32, "size": 16, "targetPort": 8080}],
                "static": [{"id": 4, "ip": "10.1.0.5", "port": 8080, "node": "n1"}]}]}

The daemon fills a dynamic port's rows with `slot_table`: each slot goes to the backend of
highest rendezvous score for it (SHAKE-128 of the backend's identity gives its score for
every slot). Unlike
Maglev's fill, which couples the slots, this makes a table a function of its backend set in
which adding or removing one backend moves exactly that backend's slots and no other.
"""

from __future__ import annotations

import hashlib
import json
import sys
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any

SERVICES_FILE = "services.json"
SERVICES_VERSION = 1
BACKEND_BASE = 1 << 20  # static backends are numbered below it (NETCC_MAX_LB_BACKENDS)
BACKEND_LIMIT = 1 << 32


class ServicesFormatError(ValueError):
    """`services.json` is not in the format this netcc reads."""


@dataclass(frozen=True)
class PortClass:
    """A class that may back a port, where its block lies and the port it serves it on."""

    key: str  # namespace/name of the class
    offset: int
    size: int
    target_port: int


@dataclass(frozen=True)
class StaticBackend:
    """A backend with a fixed address, numbered by the compiler."""

    id: int
    ip: IPv4Address
    port: int
    node: str


@dataclass(frozen=True)
class DynamicPort:
    """One TCP or UDP service port that runtime pods may back."""

    service: str  # namespace/name
    port_name: str  # "" for an unnamed port
    port: int
    protocol: str
    cluster_ip: IPv4Address
    node_port: int | None
    session_affinity: str
    internal_policy: str  # internalTrafficPolicy: Cluster | Local
    external_policy: str  # externalTrafficPolicy: Cluster | Local
    selector: tuple[tuple[str, str], ...]
    cluster_row: int
    local_row: int | None  # the node-local row (either traffic policy Local), else None
    classes: tuple[PortClass, ...]
    static: tuple[StaticBackend, ...] = ()

    @property
    def namespace(self) -> str:
        return self.service.split("/", 1)[0]

    @property
    def label(self) -> str:
        """`ns/name port NAME (TCP 80)`, as generated code and map notes cite a port."""
        return f"{self.service} port {self.port_name or self.port} ({self.protocol} {self.port})"


@dataclass(frozen=True)
class NodeRange:
    node: str
    pod_cidr: IPv4Network
    index: int  # of the podCIDR's first address in the cluster-wide address index


@dataclass(frozen=True)
class Services:
    """Every dynamic service port of OUT and the backend numbering."""

    backend_base: int
    maglev_size: int
    target_ports: tuple[tuple[int, str], ...]
    nodes: tuple[NodeRange, ...]
    ports: tuple[DynamicPort, ...]
    _tp_index: Mapping[tuple[int, str], int] = field(default_factory=dict, compare=False)

    def node_of(self, ip: IPv4Address) -> NodeRange | None:
        """The node whose podCIDR holds `ip`."""
        for n in self.nodes:
            if ip in n.pod_cidr:
                return n
        return None

    def placement(self, port: DynamicPort, ip: IPv4Address) -> tuple[PortClass, str] | None:
        """The class of `port` whose block holds `ip` on some node, and that node; None when
        no class of the port may have that address."""
        n = self.node_of(ip)
        if n is None:
            return None
        offset = int(ip) - int(n.pod_cidr.network_address)
        for c in port.classes:
            if c.offset <= offset < c.offset + c.size:
                return c, n.node
        return None

    def backend_id(self, ip: IPv4Address, port: int, protocol: str) -> int:
        """The number of runtime backend (ip, port): a function of them alone."""
        n = self.node_of(ip)
        t = self._tp_index.get((port, protocol))
        if n is None or t is None:
            raise ValueError(f"{ip}:{port}/{protocol} is no runtime backend of OUT")
        index = n.index + int(ip) - int(n.pod_cidr.network_address)
        return self.backend_base + index * len(self.target_ports) + t

    def by_service(self) -> dict[str, list[DynamicPort]]:
        out: dict[str, list[DynamicPort]] = {}
        for p in self.ports:
            out.setdefault(p.service, []).append(p)
        return out


def id_space(nodes: Iterable[tuple[str, IPv4Network]], target_ports: int) -> int:
    """How many runtime backend numbers the cluster needs (for the compiler's check that they
    fit above BACKEND_BASE in 32 bits)."""
    return sum(n.num_addresses for _, n in nodes) * max(target_ports, 1)


# --- the slot table ----------------------------------------------------------------------------

_SCORE_BYTES = 6  # and 2 bytes of index: a row holds at most 65,535 backends (M <= 65,521)


def identity_hash(identity: str) -> int:
    """A backend's 64-bit hash from its identity (`ip:port/PROTO`)."""
    return int.from_bytes(hashlib.blake2b(identity.encode(), digest_size=8).digest(), "big")


def scores(identity: str, size: int) -> bytes:
    """A backend's 48-bit score for every slot: SHAKE-128 of its identity, 6 bytes a slot
    (an extendable-output hash: the same bytes on every machine and Python)."""
    return hashlib.shake_128(identity.encode()).digest(_SCORE_BYTES * size)


def _keyed(identity: str, index: int, size: int) -> array:
    """Per slot, (score << 16) | index as one unsigned 64-bit number, built at C speed."""
    raw = scores(identity, size)
    buf = bytearray(8 * size)
    buf[0::8] = bytes([index & 0xFF]) * size
    buf[1::8] = bytes([index >> 8]) * size
    for k in range(_SCORE_BYTES):  # the score's most significant byte last (little-endian)
        buf[2 + k :: 8] = raw[_SCORE_BYTES - 1 - k :: _SCORE_BYTES]
    out = array("Q")
    out.frombytes(bytes(buf))
    if sys.byteorder == "big":
        out.byteswap()
    return out


def slot_table(identities: Sequence[str], size: int) -> tuple[int, ...]:
    """Slot -> index into `identities`: each slot goes to the backend of highest score for
    it (rendezvous hashing per slot). Empty with no identity.

    A function of the set: adding or removing one backend moves exactly the slots it wins or
    held (scores tie with probability ~N^2 M / 2^49, broken by the identities' order)."""
    if not identities:
        return ()
    order = sorted(set(identities))
    if len(order) > 0xFFFF:
        raise ValueError(f"{len(order)} backends do not fit one row")
    position = {ident: n for n, ident in enumerate(identities)}
    if len(order) == 1:
        return (position[order[0]],) * size
    keyed = [_keyed(ident, n, size) for n, ident in enumerate(order)]
    winners = map(max, *keyed)
    return tuple(position[order[w & 0xFFFF]] for w in winners)


class SlotTable:
    """A row's slot table over a set of backend identities, recomputed when the set changes
    (the cost is one hash stream per backend and a C-level maximum per slot)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.owner: list[str | None] = [None] * size
        self._members: set[str] = set()

    def members(self) -> set[str]:
        return set(self._members)

    def _refill(self) -> None:
        names = sorted(self._members)
        table = slot_table(names, self.size)
        self.owner = [names[i] for i in table] if names else [None] * self.size

    def add(self, identity: str) -> None:
        if identity not in self._members:
            self._members.add(identity)
            self._refill()

    def remove(self, identity: str) -> None:
        if identity in self._members:
            self._members.discard(identity)
            self._refill()

    def set(self, identities: Iterable[str]) -> tuple[set[str], set[str]]:
        """Make the members `identities`; (added, removed)."""
        want = set(identities)
        added, removed = want - self._members, self._members - want
        if added or removed:
            self._members = want
            self._refill()
        return added, removed


def make(
    backend_base: int,
    maglev_size: int,
    target_ports: tuple[tuple[int, str], ...],
    nodes: tuple[NodeRange, ...],
    ports: tuple[DynamicPort, ...],
) -> Services:
    """A Services with its lookup index."""
    index = {tp: i for i, tp in enumerate(target_ports)}
    return Services(backend_base, maglev_size, target_ports, nodes, ports, index)


# --- the document -------------------------------------------------------------------------------


def dump(s: Services) -> bytes:
    """The `services.json` bytes (sorted keys, one stable layout)."""
    doc = {
        "servicesVersion": SERVICES_VERSION,
        "backendBase": s.backend_base,
        "maglevSize": s.maglev_size,
        "targetPorts": [[p, proto] for p, proto in s.target_ports],
        "nodes": [{"node": n.node, "podCIDR": str(n.pod_cidr), "index": n.index} for n in s.nodes],
        "ports": [_port_doc(p) for p in s.ports],
    }
    return (json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=True) + "\n").encode()


def _port_doc(p: DynamicPort) -> dict[str, Any]:
    return {
        "service": p.service,
        "portName": p.port_name,
        "port": p.port,
        "protocol": p.protocol,
        "clusterIP": str(p.cluster_ip),
        "nodePort": p.node_port,
        "sessionAffinity": p.session_affinity,
        "internalTrafficPolicy": p.internal_policy,
        "externalTrafficPolicy": p.external_policy,
        "selector": dict(p.selector),
        "rows": {"cluster": p.cluster_row, "local": p.local_row},
        "classes": [
            {"class": c.key, "offset": c.offset, "size": c.size, "targetPort": c.target_port}
            for c in p.classes
        ],
        "static": [{"id": b.id, "ip": str(b.ip), "port": b.port, "node": b.node} for b in p.static],
    }


def load(data: bytes) -> Services:
    """Parse `services.json`; raises ServicesFormatError."""
    try:
        doc = json.loads(data)
        if doc.get("servicesVersion") != SERVICES_VERSION:
            raise ServicesFormatError(
                f"services version {doc.get('servicesVersion')!r}, this netcc reads "
                f"{SERVICES_VERSION}"
            )
        tps = tuple((int(p), str(proto)) for p, proto in doc["targetPorts"])
        nodes = tuple(
            NodeRange(n["node"], IPv4Network(n["podCIDR"]), int(n["index"])) for n in doc["nodes"]
        )
        ports = tuple(_port(p) for p in doc["ports"])
        out = make(int(doc["backendBase"]), int(doc["maglevSize"]), tps, nodes, ports)
    except ServicesFormatError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ServicesFormatError(f"not a services document: {e}") from None
    return out


def _port(p: Mapping[str, Any]) -> DynamicPort:
    rows = p["rows"]
    return DynamicPort(
        service=str(p["service"]),
        port_name=str(p["portName"]),
        port=int(p["port"]),
        protocol=str(p["protocol"]),
        cluster_ip=IPv4Address(p["clusterIP"]),
        node_port=int(p["nodePort"]) if p.get("nodePort") else None,
        session_affinity=str(p["sessionAffinity"]),
        internal_policy=str(p["internalTrafficPolicy"]),
        external_policy=str(p["externalTrafficPolicy"]),
        selector=tuple(sorted((str(k), str(v)) for k, v in p["selector"].items())),
        cluster_row=int(rows["cluster"]),
        local_row=int(rows["local"]) if rows.get("local") else None,
        classes=tuple(
            PortClass(c["class"], int(c["offset"]), int(c["size"]), int(c["targetPort"]))
            for c in p["classes"]
        ),
        static=tuple(
            StaticBackend(int(s["id"]), IPv4Address(s["ip"]), int(s["port"]), s["node"])
            for s in p["static"]
        ),
    )
