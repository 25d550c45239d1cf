"""`OUT/nodes/NODE/wireguard.json`: one node's tunnel plan as JSON, both ways.

The compiler writes it (`netcc.emit.tunnels`), the loader reads it back. It names the private key's
file, never the key. Example:

    {"node": "node-1", "ifname": "netcc-wg0", "listenPort": 51871, "mtu": 1420,
     "address": "10.244.1.1", "publicKey": "...", "privateKeyFile": "/etc/netcc/wg/node-1.key",
     "peers": [{"node": "node-2", "publicKey": "...", "endpoint": "192.168.77.12:51871",
                "allowedIPs": ["10.244.2.0/24"], "persistentKeepalive": 25}],
     "routes": [{"dst": "10.244.2.0/24", "via": "node-2"}]}
"""

from __future__ import annotations

import json
from typing import Any

from netcc.loader.wireguard.backend import BackendError, PeerConfig, TunnelPlan, TunnelRoute
from netcc.loader.wireguard.values import check_plan

PLAN_PATH = "nodes/{node}/wireguard.json"  # in OUT, one per node with a tunnel

VERSION = 1


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

    Raises BackendError when the document is malformed or a value is bad."""
    try:
        if doc.get("version") != VERSION:
            raise BackendError(f"wireguard.json version {doc.get('version')!r}, expected {VERSION}")
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
        raise BackendError(f"wireguard.json: malformed ({type(e).__name__}: {e})") from None
    check_plan(plan)
    return plan, names
