"""The WireGuard tunnel plan: per node, its device, its peers and the routes through it.

Pure and deterministic: a Cluster in, one `nodes/NODE/wireguard.json` per node out (nothing
when encryption is off). For node N:

- device `netcc-wg0`, listening on `listenPort`, its private key read by the loader from
  `privateKeyFile` (a path: no artifact ever holds key material), MTU `underlayMTU - 80`
  (outer IPv6 40 + UDP 8 + WireGuard 32 bytes at worst: 1420 on a 1500 underlay), and N's
  router address (first host of its pod CIDR) as the source of node-originated traffic;
- one peer per other node, sorted by name: its public key, endpoint `ADDRESS:listenPort`,
  allowed IPs exactly the peer's pod CIDR, and the persistent keepalive;
- one route per other node: its pod CIDR through the device.

Only pod traffic is encrypted: node addresses talk over the underlay in clear (as Cilium and
Calico do by default), and WireGuard's own UDP between node addresses is all a capture on the
underlay sees of pod-to-pod traffic. Allowed IPs are only pod CIDRs, so a decrypted packet
carries a remote pod's (or its node's router) address and nothing else: the receiving pod's
programs judge it pod-to-pod by that source address, exactly as on the underlay.
"""

from __future__ import annotations

from netcc.contract.tunnel import PLAN_PATH, PeerConfig, TunnelPlan, TunnelRoute, dumps, to_doc
from netcc.model.types import Cluster

IFNAME = "netcc-wg0"
OVERHEAD = 80  # outer IPv6 header 40 + UDP 8 + WireGuard data header 16 + auth tag 16


def plan_tunnels(cluster: Cluster) -> dict[str, TunnelPlan]:
    """Each node's tunnel, by node name; empty when WireGuard is off."""
    wg = cluster.wireguard
    if wg is None or not wg.enabled:
        return {}
    keys = {n.node: n for n in wg.nodes}
    nodes = sorted(cluster.nodes, key=lambda n: n.name)
    plans = {}
    for node in nodes:
        others = [o for o in nodes if o.name != node.name]
        plans[node.name] = TunnelPlan(
            node=node.name,
            ifname=IFNAME,
            listen_port=wg.listen_port,
            private_key_file=keys[node.name].private_key_file,
            mtu=wg.underlay_mtu - OVERHEAD,
            address=str(node.router_ip),
            peers=tuple(
                PeerConfig(
                    public_key=keys[o.name].public_key,
                    endpoint=f"{o.address}:{wg.listen_port}",
                    allowed_ips=(str(o.pod_cidr),),
                    persistent_keepalive=wg.persistent_keepalive,
                )
                for o in others
            ),
            routes=tuple(TunnelRoute(str(o.pod_cidr), o.name) for o in others),
            public_key=keys[node.name].public_key,
        )
    return plans


def render_tunnels(cluster: Cluster) -> dict[str, bytes]:
    """`nodes/NODE/wireguard.json` for every node (none when WireGuard is off)."""
    out = {}
    for name, plan in plan_tunnels(cluster).items():
        peer_nodes = tuple(r.via_node for r in plan.routes)
        out[PLAN_PATH.format(node=name)] = dumps(to_doc(plan, peer_nodes))
    return out
