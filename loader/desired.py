"""What a node should run: OUT (checked against its lock) and the pods the runtime added.

`Desired` is the input of the plan (`netcc.loader.plan`) on the desired side: the artifacts,
where the node's pins and state live, the attach mode, and the runtime endpoints. OUT's own
endpoints (`nodes/NODE/maps/netcc_endpoints.json`) are bound to the interface the node routes
each address through, which the snapshot reads from the kernel; a runtime endpoint (a pod the
node daemon added on a CNI ADD) comes with its values and its host-side interface.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from netcc.contract.constants import LB_SCOPE_NODEPORT
from netcc.contract.programs import HOOKS, POD, UPLINK
from netcc.loader.artifacts import ENDPOINTS, LB_SERVICES, Artifacts
from netcc.loader.errors import ApplyError
from netcc.loader.link.hook import Hook, HookKey, Mode
from netcc.loader.state import Paths

Data = dict[str, dict[bytes, bytes]]  # map -> packed key -> packed value


@dataclass(frozen=True)
class RuntimeEndpoint:
    """A local pod the runtime added: its address, its endpoint entry's values (every field
    of the layout's endpoint value but `ifindex`), and the host-side interface it is bound
    to, which gets the pod's hooks."""

    ip: str
    value: Mapping[str, Any]
    ifindex: int
    ifname: str
    note: str = ""


@dataclass(frozen=True)
class Binding:
    """Where the node routes a pod address: an interface (`ifindex`, `ifname`), or why no
    pod interface serves it (`reason`)."""

    ifindex: int | None = None
    ifname: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Endpoint:
    """A local pod address and the interface it is bound to (None: skipped, see reason)."""

    ip: str
    note: str
    ifindex: int | None = None
    ifname: str | None = None
    reason: str | None = None
    runtime: bool = False  # added by the runtime, not listed in OUT

    def to_json(self) -> dict[str, Any]:
        doc = {
            "ip": self.ip,
            "note": self.note,
            "ifindex": self.ifindex,
            "ifname": self.ifname,
            "reason": self.reason,
        }
        return doc | ({"runtime": True} if self.runtime else {})


@dataclass(frozen=True)
class Interface:
    """A network interface of the node."""

    ifindex: int
    name: str


@dataclass(frozen=True)
class ServiceOverlay:
    """The node daemon's entries for the service rows runtime pods back (`rows`): in the LB
    maps they take the place of OUT's entries of those rows (OUT's rows, members and service
    entries pointing at them); its backends join OUT's."""

    rows: frozenset[int]
    entries: Mapping[str, list[dict[str, Any]]]  # map -> entries, in OUT's map-file form


ROW_OF = {  # how an entry of each LB map names its row
    "netcc_lb_maglev": lambda e: e["key"]["id"],
    "netcc_lb_members": lambda e: e["key"]["row"],
    "netcc_lb_services": lambda e: e["value"]["row"],
}


def with_overlay(name: str, entries: list[dict], overlay: ServiceOverlay | None) -> list[dict]:
    """A map's entries with the daemon's in place of OUT's for the overlay's rows."""
    if overlay is None or name not in overlay.entries:
        return entries
    row_of = ROW_OF.get(name)
    if row_of is not None:
        entries = [e for e in entries if row_of(e) not in overlay.rows]
    return entries + list(overlay.entries[name])


@dataclass(frozen=True)
class Desired:
    """Everything the plan needs on the desired side."""

    artifacts: Artifacts
    paths: Paths
    mode: Mode
    runtime: tuple[RuntimeEndpoint, ...] = ()
    services: ServiceOverlay | None = None

    @property
    def digest(self) -> str:
        return self.artifacts.digest

    def service_maps(self) -> dict[str, list[dict]]:
        """The service entries and row members as they will be (the overlay in place)."""
        return {
            name: with_overlay(name, self.artifacts.maps.get(name, []), self.services)
            for name in ("netcc_lb_services", "netcc_lb_members")
        }

    def static_addresses(self) -> list[str]:
        """The addresses of OUT's endpoints, for the snapshot to look their routes up."""
        return [str(e["key"]["ip"]) for e in self.artifacts.maps[ENDPOINTS]]

    def nodeport_addresses(self) -> list[str]:
        """The node addresses its NodePort services listen on (`netcc_lb_services` keys
        of scope LB_SCOPE_NODEPORT): the interfaces holding them get the uplink programs."""
        services = self.artifacts.maps.get(LB_SERVICES, [])
        return sorted(
            {e["key"]["vip"] for e in services if e["key"].get("scope") == LB_SCOPE_NODEPORT}
        )


def bind_endpoints(desired: Desired, routes: Mapping[str, Binding]) -> list[Endpoint]:
    """OUT's endpoints bound as the node routes them, then the runtime's (bound to their
    interfaces). An address both in OUT and added by the runtime is refused."""
    out = []
    for e in desired.artifacts.maps[ENDPOINTS]:
        ip = str(e["key"]["ip"])
        b = routes.get(ip, Binding(reason="not looked up"))
        out.append(Endpoint(ip, str(e.get("note", "")), b.ifindex, b.ifname, b.reason))
    static = {e.ip for e in out}
    clash = sorted(r.ip for r in desired.runtime if r.ip in static)
    if clash:
        raise ApplyError(f"runtime endpoints {', '.join(clash)} are also endpoints in OUT")
    unbound = sorted(r.ip for r in desired.runtime if r.ifindex <= 0)
    if unbound:
        raise ApplyError(f"runtime endpoints {', '.join(unbound)} have no interface")
    for r in desired.runtime:
        out.append(Endpoint(r.ip, r.note, r.ifindex, r.ifname, runtime=True))
    return out


def map_data(desired: Desired, endpoints: Iterable[Endpoint]) -> Data:
    """Packed contents of every data map: OUT's entries, the endpoints bound to their
    interfaces (unbound ones left out), the runtime's endpoints added."""
    art, layout = desired.artifacts, desired.artifacts.layout
    bound = {e.ip: e.ifindex for e in endpoints if e.ifindex}
    want = {}
    for name, entries in art.maps.items():
        if name == ENDPOINTS:
            entries = [
                {**e, "value": {**e.get("value", {}), "ifindex": bound[e["key"]["ip"]]}}
                for e in entries
                if e["key"]["ip"] in bound
            ]
            entries += [
                {"key": {"ip": r.ip}, "value": {**r.value, "ifindex": r.ifindex}, "note": r.note}
                for r in desired.runtime
            ]
        entries = with_overlay(name, entries, desired.services)
        want[name] = dict(layout.pack_entries(name, entries))
        if layout.maps[name].percpu:
            raise ApplyError(f"data map {name} is per-CPU; the loader cannot sync it")
    return want


def wanted_hooks(
    desired: Desired, endpoints: Iterable[Endpoint], uplinks: Iterable[Interface]
) -> dict[HookKey, Hook]:
    """Two hooks on every bound pod's interface, two on every uplink."""
    mode, paths = desired.mode, desired.paths
    found: dict[HookKey, Hook] = {}

    def add(ifindex: int, ifname: str, role: str = POD) -> None:
        for d in HOOKS:
            pin = str(paths.link_pin(ifindex, d)) if mode.pins_links else None
            found[(ifindex, d)] = Hook(ifindex, ifname, d, mode, pin, role)

    for e in endpoints:
        if e.ifindex:
            add(e.ifindex, e.ifname or "")
    for i in uplinks:
        add(i.ifindex, i.name, UPLINK)
    return found
