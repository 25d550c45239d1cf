"""`OUT/nodes/NODE/wireguard.json`: one node's tunnel plan, its values checked, both ways.

The compiler plans each node's tunnel (`netcc.emit.tunnels`) and writes it with `to_doc`; the
loader reads it back with `from_doc` and configures the device from it. The document names the
private key's file, never the key. Example:

    {"version": 1, "node": "node-1", "ifname": "netcc-wg0", "listenPort": 51871, "mtu": 1420,
     "address": "10.244.1.1", "publicKey": "...", "privateKeyFile": "/etc/netcc/wg/node-1.key",
     "peers": [{"node": "node-2", "publicKey": "...", "endpoint": "192.168.77.12:51871",
                "allowedIPs": ["10.244.2.0/24"], "persistentKeepalive": 25}],
     "routes": [{"dst": "10.244.2.0/24", "via": "node-2"}]}

Every value is checked here before anything is done with it (`check_plan`): a WireGuard UAPI
`set` is applied line by line and is not atomic, so one bad value half-way (an endpoint that
does not parse, say) would leave the peers before it configured. The loader checks a device
change with the same functions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address, ip_network
from typing import Any

from netcc.contract.wgkey import KeyFormatError, decode_key

PLAN_PATH = "nodes/{node}/wireguard.json"  # in OUT, one per node with a tunnel
VERSION = 1
_IFNAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")
MAX_PORT = 65535
MAX_KEEPALIVE = 65535
MIN_MTU, MAX_MTU = 576, 65535


class TunnelFormatError(ValueError):
    """A tunnel document, or a value in it, that is not what the contract allows."""


@dataclass(frozen=True)
class PeerConfig:
    """One peer as the plan wants it."""

    public_key: str
    endpoint: str  # "ADDRESS:PORT"
    allowed_ips: tuple[str, ...]  # CIDRs, sorted
    persistent_keepalive: int = 0  # seconds, 0 = off


@dataclass(frozen=True)
class TunnelRoute:
    """A remote pod CIDR routed through the tunnel device."""

    dst: str
    via_node: str


@dataclass(frozen=True)
class TunnelPlan:
    """One node's tunnel, as `OUT/nodes/NODE/wireguard.json` describes it."""

    node: str
    ifname: str
    listen_port: int
    private_key_file: str
    mtu: int
    address: str  # the node's router address, the tunnel's source for node-originated traffic
    peers: tuple[PeerConfig, ...] = ()
    routes: tuple[TunnelRoute, ...] = field(default_factory=tuple)
    public_key: str = ""  # the node's own public key (the spec's), checked against the key file


# --- the document ----------------------------------------------------------------------------


def to_doc(plan: TunnelPlan, peer_nodes: tuple[str, ...]) -> dict[str, Any]:
    """The JSON document of a plan; `peer_nodes` names each peer, in order (for readers)."""
    return {
        "version": VERSION,
        "node": plan.node,
        "ifname": plan.ifname,
        "listenPort": plan.listen_port,
        "mtu": plan.mtu,
        "address": plan.address,
        "publicKey": plan.public_key,
        "privateKeyFile": plan.private_key_file,
        "peers": [
            {
                "node": node,
                "publicKey": p.public_key,
                "endpoint": p.endpoint,
                "allowedIPs": list(p.allowed_ips),
                "persistentKeepalive": p.persistent_keepalive,
            }
            for node, p in zip(peer_nodes, plan.peers, strict=True)
        ],
        "routes": [{"dst": r.dst, "via": r.via_node} for r in plan.routes],
    }


def dumps(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def from_doc(doc: Any) -> tuple[TunnelPlan, dict[str, str]]:
    """The plan of a document, checked, and its peers' node names by public key.

    Raises TunnelFormatError when the document is malformed or a value is bad."""
    try:
        if doc.get("version") != VERSION:
            raise TunnelFormatError(
                f"wireguard.json version {doc.get('version')!r}, expected {VERSION}"
            )
        peers = tuple(
            PeerConfig(
                p["publicKey"],
                p["endpoint"],
                tuple(p["allowedIPs"]),
                p.get("persistentKeepalive", 0),
            )
            for p in doc["peers"]
        )
        names = {p["publicKey"]: p.get("node", "") for p in doc["peers"]}
        plan = TunnelPlan(
            node=doc["node"],
            ifname=doc["ifname"],
            listen_port=doc["listenPort"],
            private_key_file=doc["privateKeyFile"],
            mtu=doc["mtu"],
            address=doc["address"],
            peers=peers,
            routes=tuple(TunnelRoute(r["dst"], r.get("via", "")) for r in doc["routes"]),
            public_key=doc.get("publicKey", ""),
        )
    except (AttributeError, KeyError, TypeError) as e:
        raise TunnelFormatError(f"wireguard.json: malformed ({type(e).__name__}: {e})") from None
    check_plan(plan)
    return plan, names


# --- its values ------------------------------------------------------------------------------


def check_ifname(ifname: str) -> str:
    if not isinstance(ifname, str) or not _IFNAME.fullmatch(ifname) or ifname in (".", ".."):
        raise TunnelFormatError(f"{ifname!r}: not an interface name (1-15 of A-Z a-z 0-9 _ . -)")
    return ifname


def check_key(key: str, what: str = "key") -> bytes:
    """The 32 bytes of a base64 key (exactly 44 characters, nothing around them)."""
    try:
        if not isinstance(key, str) or len(key) != 44:
            raise KeyFormatError("not 44 characters")
        return decode_key(key)
    except KeyFormatError:
        raise TunnelFormatError(f"{what}: not a WireGuard key (base64 of 32 bytes)") from None


def check_port(port: int, what: str = "port") -> int:
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port <= MAX_PORT:
        raise TunnelFormatError(f"{what} {port!r}: not a port (1-{MAX_PORT})")
    return port


def check_endpoint(endpoint: str) -> tuple[str, int]:
    """`A.B.C.D:PORT` (IPv4 underlay) as (address, port)."""
    host, sep, port = endpoint.rpartition(":") if isinstance(endpoint, str) else ("", "", "")
    try:
        address = str(IPv4Address(host))
        number = int(port) if port.isdigit() else -1
    except ValueError:
        address, number = "", -1
    if not sep or not address or not 0 < number <= MAX_PORT:
        raise TunnelFormatError(f"endpoint {endpoint!r}: expected IPv4ADDRESS:PORT")
    return address, number


def check_cidr(cidr: str) -> str:
    try:
        return str(ip_network(cidr, strict=True))
    except (TypeError, ValueError):
        raise TunnelFormatError(
            f"allowed IP {cidr!r}: not a CIDR (host bits must be zero)"
        ) from None


def check_peer(peer: PeerConfig) -> None:
    check_key(peer.public_key, "peer public key")
    check_endpoint(peer.endpoint)
    for cidr in peer.allowed_ips:
        check_cidr(cidr)
    keepalive = peer.persistent_keepalive
    if not isinstance(keepalive, int) or not 0 <= keepalive <= MAX_KEEPALIVE:
        raise TunnelFormatError(f"persistent keepalive {keepalive!r}: expected 0-{MAX_KEEPALIVE} s")


def check_plan(plan: TunnelPlan) -> None:
    """A tunnel plan as read from OUT, before anything is done with it."""
    check_ifname(plan.ifname)
    check_port(plan.listen_port, "listenPort")
    if not isinstance(plan.mtu, int) or not MIN_MTU <= plan.mtu <= MAX_MTU:
        raise TunnelFormatError(f"mtu {plan.mtu!r}: expected {MIN_MTU}-{MAX_MTU}")
    if not isinstance(plan.private_key_file, str) or not plan.private_key_file.startswith("/"):
        raise TunnelFormatError(f"privateKeyFile {plan.private_key_file!r}: not an absolute path")
    if plan.public_key:
        check_key(plan.public_key, "publicKey")
    try:
        IPv4Address(plan.address)
    except ValueError:
        raise TunnelFormatError(f"address {plan.address!r}: not an IPv4 address") from None
    keys = [p.public_key for p in plan.peers]
    if len(set(keys)) != len(keys) or plan.public_key in keys:
        raise TunnelFormatError("two peers (or a peer and this node) share a public key")
    for peer in plan.peers:
        check_peer(peer)
    for route in plan.routes:
        check_cidr(route.dst)
