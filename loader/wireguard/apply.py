"""Reconcile a node's WireGuard device with its tunnel plan (`OUT/nodes/NODE/wireguard.json`).

In order, never tearing the device down to change it:

1. The plan is read (its sha256 checked against the verified lock) and every value checked;
   the private key is read from `privateKeyFile` and must belong to the spec's publicKey for
   this node (a key file and a spec out of step would give a tunnel no peer accepts).
2. The device is created if missing (the backend records nothing about keys).
3. Its state is read and the smallest change computed (`diff`): the private key only if the
   device's public key differs, peers added or updated in place (endpoint, keepalive, allowed
   IPs replaced) only where they differ, peers of removed nodes removed. An empty change is
   not sent, so a second apply sends nothing and no session is disturbed.
4. MTU, the node's router address (/32, the source of node-originated pod traffic) and link up,
   each only if different; then every remote pod CIDR is routed through the device (`replace`:
   over any underlay route) and routes through it to pod CIDRs no longer planned are deleted.

Peers are configured before routes send traffic into the device. The node's state directory
keeps `wireguard.json` (interface, backend, peer names by public key: no key material) so that
`detach`, `status` and an apply of an OUT without encryption find the device again.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netcc.contract.tunnel import PLAN_PATH, PeerConfig, TunnelFormatError, TunnelPlan, from_doc
from netcc.contract.wgkey import KeyFormatError, public_key, read_private_key
from netcc.loader.wireguard.backend import Backend, BackendError, DeviceChange, DeviceState
from netcc.loader.wireguard.select import choose_backend, named_backend

STATE_NAME = "wireguard.json"
MAIN_TABLE, SCOPE_LINK, PROTO_STATIC = 254, 253, 4
IFF_UP = 1


class TunnelError(BackendError):
    """The tunnel could not be brought to its plan; the message says why."""


@dataclass
class TunnelReport:
    """What a reconcile did: `status` created, configured, unchanged or removed."""

    node: str
    ifname: str
    backend: str
    status: str
    changes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


# --- reading the plan ------------------------------------------------------------------------


def plan_path(node: str) -> str:
    return PLAN_PATH.format(node=node)


def read_plan(
    out: str | Path, lock: dict[str, Any], node: str
) -> tuple[TunnelPlan, dict[str, str]] | None:
    """The node's tunnel plan from OUT (checked against `lock`, already verified), or None
    when OUT has no tunnel for the node (encryption off)."""
    rel = plan_path(node)
    digest = lock.get("artifacts", {}).get(rel)
    if digest is None:
        return None
    data = (Path(out) / rel).read_bytes()
    if hashlib.sha256(data).hexdigest() != digest:
        raise TunnelError(f"refusing {out}: {rel} changed after the lock was checked")
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise TunnelError(f"{rel}: not JSON ({e})") from None
    try:
        plan, names = from_doc(doc)
    except TunnelFormatError as e:
        raise TunnelError(str(e)) from None
    if plan.node != node:
        raise TunnelError(f"{rel} is the plan of node {plan.node!r}")
    return plan, names


def own_private_key(plan: TunnelPlan) -> str:
    """The private key from the plan's key file, checked against the spec's public key."""
    try:
        private = read_private_key(plan.private_key_file)
    except OSError as e:
        raise TunnelError(f"privateKeyFile {plan.private_key_file}: {e.strerror}") from None
    except (KeyFormatError, UnicodeDecodeError):
        raise TunnelError(
            f"privateKeyFile {plan.private_key_file}: not a WireGuard private key "
            "(one line of base64, as `wg genkey` or `netcc keys generate` writes)"
        ) from None
    if plan.public_key and public_key(private) != plan.public_key:
        raise TunnelError(
            f"privateKeyFile {plan.private_key_file} is not the key of this node's publicKey "
            f"{plan.public_key} in the spec (rotated on one side only?)"
        )
    return private


# --- the device ------------------------------------------------------------------------------


def _same_peer(want: PeerConfig, have: PeerConfig) -> bool:
    return (
        want.endpoint == have.endpoint
        and sorted(want.allowed_ips) == sorted(have.allowed_ips)
        and want.persistent_keepalive == have.persistent_keepalive
    )


def diff(
    plan: TunnelPlan, state: DeviceState, private_key: str, keepalive: bool = True
) -> DeviceChange:
    """The smallest change from `state` to `plan`. `keepalive` False configures every peer
    without persistent keepalive (the first pass of a cluster brought up at once)."""
    want = {
        p.public_key: PeerConfig(
            p.public_key,
            p.endpoint,
            tuple(sorted(p.allowed_ips)),
            p.persistent_keepalive if keepalive else 0,
        )
        for p in plan.peers
    }
    have = {p.public_key: p for p in state.peers}
    return DeviceChange(
        private_key=None if state.public_key == public_key(private_key) else private_key,
        listen_port=None if state.listen_port == plan.listen_port else plan.listen_port,
        upsert=tuple(
            p for k, p in sorted(want.items()) if k not in have or not _same_peer(p, have[k])
        ),
        remove=tuple(sorted(k for k in have if k not in want)),
    )


def _describe(change: DeviceChange, state: DeviceState, names: dict[str, str]) -> list[str]:
    had = {p.public_key for p in state.peers}
    out = []
    if change.private_key is not None:
        out.append("private key " + ("rotated" if state.public_key else "set"))
    if change.listen_port is not None:
        out.append(f"listen port {change.listen_port}")
    for p in change.upsert:
        verb = "updated" if p.public_key in had else "added"
        out.append(f"peer {names.get(p.public_key) or p.public_key} {verb}")
    out += [f"peer {names.get(k) or k} removed" for k in change.remove]
    return out


def _link(plan: TunnelPlan) -> list[str]:
    """MTU, address, up and routes of the device, each only if it differs; a refused netlink
    call is a TunnelError naming the step (what was done before it stays)."""
    from pyroute2.netlink.exceptions import NetlinkError

    done: list[str] = []
    try:
        _link_steps(plan, done)
    except NetlinkError as e:
        step = f" after {', '.join(done)}" if done else ""
        raise TunnelError(
            f"{plan.ifname}: setting up the device{step} failed: "
            f"{os.strerror(e.code) if isinstance(e.code, int) and e.code > 0 else e}"
        ) from None
    return done


def _link_steps(plan: TunnelPlan, done: list[str]) -> None:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=plan.ifname)
        if not found:
            raise TunnelError(f"{plan.ifname}: the device vanished")
        index = found[0]
        link = ipr.get_links(index)[0]
        if link.get_attr("IFLA_MTU") != plan.mtu:
            ipr.link("set", index=index, mtu=plan.mtu)
            done.append(f"mtu {plan.mtu}")
        addresses = {
            (a.get_attr("IFA_ADDRESS"), a["prefixlen"])
            for a in ipr.get_addr(index=index, family=socket.AF_INET)
        }
        if (plan.address, 32) not in addresses:
            ipr.addr("add", index=index, address=plan.address, prefixlen=32)
            done.append(f"address {plan.address}/32")
        if not link["flags"] & IFF_UP:
            ipr.link("set", index=index, state="up")
            done.append("up")
        have = {}
        for r in ipr.get_routes(family=socket.AF_INET, table=MAIN_TABLE):
            if r.get_attr("RTA_OIF") == index and r["dst_len"] > 0 and r["proto"] == PROTO_STATIC:
                have[f"{r.get_attr('RTA_DST')}/{r['dst_len']}"] = r.get_attr("RTA_PREFSRC")
        want = {r.dst for r in plan.routes}
        for dst in sorted(want):
            if have.get(dst) != plan.address:
                ipr.route(
                    "replace",
                    dst=dst,
                    oif=index,
                    prefsrc=plan.address,
                    scope=SCOPE_LINK,
                    proto=PROTO_STATIC,
                    table=MAIN_TABLE,
                )
                done.append(f"route {dst}")
        for dst in sorted(set(have) - want):
            ipr.route(
                "del", dst=dst, oif=index, table=MAIN_TABLE, proto=PROTO_STATIC, scope=SCOPE_LINK
            )
            done.append(f"route {dst} removed")


def reconcile(
    plan: TunnelPlan,
    backend: Backend,
    names: dict[str, str] | None = None,
    keepalive: bool = True,
) -> TunnelReport:
    """Bring the device to `plan` in the calling thread's network namespace (module doc)."""
    names = names or {}
    private = own_private_key(plan)
    created = not backend.exists(plan.ifname)
    if created:
        backend.create(plan.ifname)
    state = backend.read(plan.ifname)
    change = diff(plan, state, private, keepalive)
    del private
    changes = _describe(change, state, names)
    if not change.empty:
        backend.configure(plan.ifname, change)
    changes += _link(plan)
    status = "created" if created else "configured" if changes else "unchanged"
    return TunnelReport(plan.node, plan.ifname, backend.name, status, changes)


# --- what the loader calls -------------------------------------------------------------------


def _recorded(state_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((state_dir / STATE_NAME).read_text())
    except FileNotFoundError:
        return None
    except ValueError as e:
        raise TunnelError(f"{state_dir / STATE_NAME}: unreadable ({e})") from None


def _record(state_dir: Path, doc: dict[str, Any]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_dir / f".{STATE_NAME}.tmp"
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, state_dir / STATE_NAME)


def apply_tunnel(
    out: str | Path,
    lock: dict[str, Any],
    node: str,
    state_dir: str | Path,
    choice: str = "auto",
    keepalive: bool = True,
) -> TunnelReport | None:
    """The node's tunnel as OUT plans it; removes a recorded one when OUT plans none.
    None when there is no tunnel, before or after."""
    state_dir = Path(state_dir)
    loaded = read_plan(out, lock, node)
    recorded = _recorded(state_dir)
    if loaded is None:
        if recorded is None:
            return None
        return remove_tunnel(state_dir, node)
    plan, names = loaded
    backend = choose_backend(choice)
    if recorded and (recorded["backend"], recorded["ifname"]) != (backend.name, plan.ifname):
        remove_tunnel(state_dir, node)  # another backend or name before: start over
    _record(state_dir, {"ifname": plan.ifname, "backend": backend.name, "peers": names})
    return reconcile(plan, backend, names, keepalive)


def remove_tunnel(state_dir: str | Path, node: str) -> TunnelReport | None:
    """Delete the recorded device (its routes go with it) and the record."""
    state_dir = Path(state_dir)
    recorded = _recorded(state_dir)
    if recorded is None:
        return None
    backend = named_backend(recorded["backend"])
    if backend.exists(recorded["ifname"]):
        backend.delete(recorded["ifname"])
    (state_dir / STATE_NAME).unlink()
    return TunnelReport(node, recorded["ifname"], backend.name, "removed", ["device deleted"])


def tunnel_status(state_dir: str | Path) -> dict[str, Any] | None:
    """The recorded device's peers: endpoint, allowed IPs, last handshake, bytes."""
    recorded = _recorded(Path(state_dir))
    if recorded is None:
        return None
    backend = named_backend(recorded["backend"])
    doc: dict[str, Any] = {"ifname": recorded["ifname"], "backend": backend.name}
    if not backend.exists(recorded["ifname"]):
        return doc | {"ok": False, "error": "device missing"}
    state = backend.read(recorded["ifname"])
    now = time.time_ns()
    names = recorded.get("peers", {})
    doc |= {"ok": True, "publicKey": state.public_key, "listenPort": state.listen_port}
    doc["peers"] = [
        {
            "node": names.get(p.public_key, ""),
            "publicKey": p.public_key,
            "endpoint": p.endpoint,
            "allowedIPs": list(p.allowed_ips),
            "handshakeAgeSeconds": (now - p.last_handshake_ns) // 10**9
            if p.last_handshake_ns
            else None,
            "rxBytes": p.rx_bytes,
            "txBytes": p.tx_bytes,
        }
        for p in state.peers
    ]
    return doc
