"""What the node daemon reads from OUT besides the datapath: the classes, the node's podCIDR,
router address and pod MTU, checked against the lock like everything the loader reads.

`read_view(out, node)` gives a `NodeView`; its pure helpers place a class's block on this
node (`block`), say which addresses of a block are never handed out (`reserved`), and find
the running pods a new OUT would misplace (`misplaced`), the reason to refuse that OUT.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from netcc.contract import classes as classes_file
from netcc.contract import services as services_file
from netcc.contract.ipsec import PLAN_PATH as IPSEC_PATH
from netcc.contract.lock import LOCK_NAME, LockError, verify_lock
from netcc.contract.tunnel import PLAN_PATH as TUNNEL_PATH
from netcc.loader.cni.ipam import Owner

NODE_PATH = "nodes/{node}/node.json"
DEFAULT_MTU = 1500


class ViewError(Exception):
    """OUT cannot serve pods on this node (tampered, or without what the daemon needs)."""


@dataclass(frozen=True)
class NodeView:
    """The runtime side of OUT for one node. `classes` None: OUT declares no class, so every
    pod is refused (closed world); `pod_cidr`/`router` None: the node has no pod CIDR."""

    out: Path
    node: str
    digest: str  # sha256 of netcc.lock.json, as the loader names an applied version
    classes: classes_file.Classes | None
    pod_cidr: IPv4Network | None
    router: IPv4Address | None
    mtu: int = DEFAULT_MTU
    static: frozenset[IPv4Address] = field(default_factory=frozenset)  # OUT's own pod IPs
    routes: tuple[tuple[IPv4Network, IPv4Address], ...] = ()  # other nodes' podCIDR via
    tunnel: bool = False  # WireGuard routes the other nodes' podCIDRs (not the daemon)
    services: services_file.Services | None = None  # service ports runtime pods may back
    address: str | None = None  # the node's own address

    def block(self, klass: classes_file.ClassInfo) -> IPv4Network:
        """The class's block inside this node's podCIDR; ViewError without a podCIDR."""
        if self.pod_cidr is None or self.router is None:
            raise ViewError(
                f"node {self.node} has no podCIDR and router in OUT (nodes/{self.node}/node.json); "
                f"artifacts {self.digest[:12]} cannot place class pods here"
            )
        return block_of(self.pod_cidr, klass.offset, klass.size)

    def reserved(self, block: IPv4Network) -> list[int]:
        """Offsets inside `block` never handed out: the podCIDR's network, router and
        broadcast addresses and OUT's static pod addresses, where the block covers them."""
        assert self.pod_cidr is not None
        fixed = {self.pod_cidr.network_address, self.pod_cidr.broadcast_address}
        fixed |= {self.router} if self.router else set()
        fixed |= set(self.static)
        base = int(block.network_address)
        return sorted(int(ip) - base for ip in fixed if ip in block)


def block_of(pod_cidr: IPv4Network, offset: int, size: int) -> IPv4Network:
    """The CIDR of `size` addresses at `offset` inside `pod_cidr` (`classes.block_cidr`);
    ViewError when it does not fit."""
    try:
        return classes_file.block_cidr(pod_cidr, offset, size)
    except ValueError as e:
        raise ViewError(str(e)) from None


def misplaced(view: NodeView, allocations: Mapping[IPv4Address, Owner | None]) -> list[str]:
    """The running pods whose address `view` would not place where it is: their class is
    gone, or their address is outside their class's block. Empty: `view` may be applied."""
    found = []
    for ip, owner in sorted(allocations.items()):
        if owner is None:
            continue  # a damaged record: nobody can say whose; it only keeps its address
        who = f"{owner.namespace}/{owner.name}" if owner.name else owner.container_id[:12]
        klass = view.classes.by_key(owner.klass) if view.classes else None
        if klass is None:
            found.append(f"{who} ({ip}): class {owner.klass} is gone")
            continue
        try:
            block = view.block(klass)
        except ViewError as e:
            found.append(f"{who} ({ip}): {e}")
            continue
        if ip not in block:
            found.append(f"{who} ({ip}): outside its class {owner.klass}'s block {block}")
    return found


def _checked(out: Path, lock: Mapping, rel: str) -> bytes | None:
    """A file of OUT as the lock lists it (None when the lock does not list it)."""
    digest = lock["artifacts"].get(rel)
    if digest is None:
        return None
    data = (out / rel).read_bytes()
    if hashlib.sha256(data).hexdigest() != digest:
        raise ViewError(f"refusing {out}: {rel} changed after the lock was checked")
    return data


def read_view(out: str | Path, node: str, static: Iterable[str] = ()) -> NodeView:
    """OUT's classes and this node's placement; ViewError when OUT is unusable."""
    out = Path(out)
    try:
        lock = verify_lock(out)
        raw_lock = (out / LOCK_NAME).read_bytes()
        if json.loads(raw_lock) != lock:
            raise ViewError(f"refusing {out}: {LOCK_NAME} changed while it was read")
        node_doc = _checked(out, lock, NODE_PATH.format(node=node))
        if node_doc is None:
            raise ViewError(f"{out} has no node {node!r}")
        node_info = json.loads(node_doc)
        data = _checked(out, lock, classes_file.CLASSES_FILE)
        classes = classes_file.load(data) if data is not None else None
        tunnel = _checked(out, lock, TUNNEL_PATH.format(node=node))
        ipsec = _checked(out, lock, IPSEC_PATH.format(node=node))
        data = _checked(out, lock, services_file.SERVICES_FILE)
        services = services_file.load(data) if data is not None else None
    except (LockError, OSError, ValueError, KeyError, TypeError) as e:
        raise ViewError(f"refusing {out}: {e}") from None
    pod_cidr = node_info.get("podCIDR")
    router = node_info.get("router")
    try:
        encrypted = tunnel or ipsec  # WireGuard's or ESP's MTU (XFRM keeps the routes)
        mtu = int(json.loads(encrypted)["mtu"]) if encrypted else DEFAULT_MTU
        return NodeView(
            out=out,
            node=node,
            digest=hashlib.sha256(raw_lock).hexdigest(),
            classes=classes,
            pod_cidr=IPv4Network(pod_cidr) if pod_cidr else None,
            router=IPv4Address(router) if router else None,
            mtu=mtu,
            static=frozenset(IPv4Address(s) for s in static),
            routes=tuple(
                (IPv4Network(r["podCIDR"]), IPv4Address(r["via"]))
                for r in node_info.get("routes", [])
            ),
            tunnel=tunnel is not None,
            services=services,
            address=node_info.get("address"),
        )
    except (ValueError, KeyError, TypeError) as e:
        raise ViewError(f"refusing {out}: nodes/{node}/node.json: {e}") from None
