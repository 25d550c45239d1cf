"""CNI results: what ADD returns and what `prevResult` holds (CNI spec 1.0.0 and 1.1.0).

Build a `Result` from typed parts; `to_json(version)` writes it in the negotiated version
(1.1.0 adds interface `mtu`, `socketPath`, `pciID` and route `mtu`, `advmss`, `priority`,
`table`, `scope`; a 1.0.0 result leaves them out). `Result.from_json` reads a `prevResult`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from netcc.loader.cni.errors import INVALID_CONFIG, CniError

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_V1_1 = (1, 1, 0)


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


@dataclass(frozen=True)
class Interface:
    """An interface the plugin created: `sandbox` is the netns path for a container side."""

    name: str
    mac: str = ""
    sandbox: str = ""
    mtu: int | None = None  # 1.1.0
    socket_path: str = ""  # 1.1.0
    pci_id: str = ""  # 1.1.0

    def to_json(self, v: tuple[int, ...]) -> dict:
        out: dict[str, Any] = {"name": self.name}
        if self.mac:
            out["mac"] = self.mac
        if self.sandbox:
            out["sandbox"] = self.sandbox
        if v >= _V1_1:
            if self.mtu is not None:
                out["mtu"] = self.mtu
            if self.socket_path:
                out["socketPath"] = self.socket_path
            if self.pci_id:
                out["pciID"] = self.pci_id
        return out


@dataclass(frozen=True)
class IPConfig:
    """An address with its prefix (`10.244.1.17/32`), on `interfaces[interface]`."""

    address: IPInterface
    gateway: IPAddress | None = None
    interface: int | None = None

    def to_json(self) -> dict:
        out: dict[str, Any] = {"address": str(self.address)}
        if self.gateway is not None:
            out["gateway"] = str(self.gateway)
        if self.interface is not None:
            out["interface"] = self.interface
        return out


@dataclass(frozen=True)
class Route:
    """A route in the container: `gw` None means the runtime's default for the interface."""

    dst: IPNetwork
    gw: IPAddress | None = None
    mtu: int | None = None  # 1.1.0 from here on
    advmss: int | None = None
    priority: int | None = None
    table: int | None = None
    scope: int | None = None

    def to_json(self, v: tuple[int, ...]) -> dict:
        out: dict[str, Any] = {"dst": str(self.dst)}
        if self.gw is not None:
            out["gw"] = str(self.gw)
        if v >= _V1_1:
            for key in ("mtu", "advmss", "priority", "table", "scope"):
                value = getattr(self, key)
                if value is not None:
                    out[key] = value
        return out


@dataclass(frozen=True)
class DNS:
    """DNS settings for the container (the runtime usually decides these itself)."""

    nameservers: tuple[str, ...] = ()
    domain: str = ""
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def to_json(self) -> dict:
        out: dict[str, Any] = {}
        if self.nameservers:
            out["nameservers"] = list(self.nameservers)
        if self.domain:
            out["domain"] = self.domain
        if self.search:
            out["search"] = list(self.search)
        if self.options:
            out["options"] = list(self.options)
        return out


@dataclass(frozen=True)
class Result:
    """The result of ADD."""

    interfaces: tuple[Interface, ...] = ()
    ips: tuple[IPConfig, ...] = ()
    routes: tuple[Route, ...] = ()
    dns: DNS = field(default_factory=DNS)

    def to_json(self, cni_version: str) -> dict:
        """The result in `cni_version`; ValueError if an IP names a missing interface."""
        v = _version_tuple(cni_version)
        for ip in self.ips:
            if ip.interface is not None and not 0 <= ip.interface < len(self.interfaces):
                raise ValueError(f"ip {ip.address} names interface {ip.interface}: no such entry")
        out: dict[str, Any] = {"cniVersion": cni_version}
        if self.interfaces:
            out["interfaces"] = [i.to_json(v) for i in self.interfaces]
        if self.ips:
            out["ips"] = [i.to_json() for i in self.ips]
        if self.routes:
            out["routes"] = [r.to_json(v) for r in self.routes]
        dns = self.dns.to_json()
        if dns:
            out["dns"] = dns
        return out

    @classmethod
    def from_json(cls, doc: Mapping) -> Result:
        """Read a result (a `prevResult`); CniError INVALID_CONFIG if it is malformed."""
        try:
            return cls(
                interfaces=tuple(_interface(i) for i in _list(doc, "interfaces")),
                ips=tuple(_ipconfig(i) for i in _list(doc, "ips")),
                routes=tuple(_route(r) for r in _list(doc, "routes")),
                dns=_dns(doc.get("dns") or {}),
            )
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            raise CniError(INVALID_CONFIG, "prevResult is not a valid CNI result", str(e)) from None


def _list(doc: Mapping, key: str) -> list:
    value = doc.get(key) or []
    if not isinstance(value, list):
        raise TypeError(f"{key} must be a list")
    return value


def _str(d: Mapping, key: str) -> str:
    value = d.get(key, "")
    if not isinstance(value, str):
        raise TypeError(f"{key} must be a string")
    return value


def _int(d: Mapping, key: str) -> int | None:
    value = d.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise TypeError(f"{key} must be an integer")
    return value


def _interface(d: Mapping) -> Interface:
    return Interface(
        name=_str(d, "name"),
        mac=_str(d, "mac"),
        sandbox=_str(d, "sandbox"),
        mtu=_int(d, "mtu"),
        socket_path=_str(d, "socketPath"),
        pci_id=_str(d, "pciID"),
    )


def _ipconfig(d: Mapping) -> IPConfig:
    gw = _str(d, "gateway")
    return IPConfig(
        address=ipaddress.ip_interface(_str(d, "address")),
        gateway=ipaddress.ip_address(gw) if gw else None,
        interface=_int(d, "interface"),
    )


def _route(d: Mapping) -> Route:
    gw = _str(d, "gw")
    return Route(
        dst=ipaddress.ip_network(_str(d, "dst"), strict=False),
        gw=ipaddress.ip_address(gw) if gw else None,
        mtu=_int(d, "mtu"),
        advmss=_int(d, "advmss"),
        priority=_int(d, "priority"),
        table=_int(d, "table"),
        scope=_int(d, "scope"),
    )


def _dns(d: Mapping) -> DNS:
    def strings(key: str) -> tuple[str, ...]:
        values = _list(d, key)
        if not all(isinstance(v, str) for v in values):
            raise TypeError(f"dns.{key} must be a list of strings")
        return tuple(values)

    return DNS(strings("nameservers"), _str(d, "domain"), strings("search"), strings("options"))
