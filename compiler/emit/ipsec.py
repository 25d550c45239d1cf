"""The IPsec plan: per node, the XFRM states and policies to every other node.

Pure and deterministic: a Cluster in, one `nodes/NODE/ipsec.json` per node out (nothing when
IPsec is off). For node N and every other node P (sorted by name), for every key of the spec:
an `out` state N -> P and an `in` state P -> N, each with its SPI (`netcc.contract.ipsec`:
the key id and the sender's podCIDR); the `out` policy N's podCIDR -> P's podCIDR through the
state of the key in state send (none when no key is), and the `in` and `fwd` policies P's
podCIDR -> N's podCIDR (required, or optional with acceptPlaintext). Each peer also lists the
workload classes' blocks its podCIDR holds (`covers`), for reviewers.

Only pod traffic is encrypted, as with WireGuard: what goes between node addresses (the
nodes' own traffic, NodePort traffic forwarded with the node's address as source) and to and
from outside stays as it is, and pods of one node talk without leaving it. Keys are named by
id, file and fingerprint; the key of each SA is derived on the nodes
(`netcc.contract.ipseckey`), so no artifact holds key material.
"""

from __future__ import annotations

from netcc.contract.ipsec import (
    PLAN_PATH,
    Aead,
    Cover,
    IPsecPlan,
    KeyRef,
    PeerSAs,
    SAPolicy,
    SAState,
    Selector,
    Template,
    check_plan,
    dumps,
    esp_mtu,
    key_file,
    spi_for,
    spi_slot,
    to_doc,
)
from netcc.contract.ipsecrollout import OFF, KeyState, Rollout
from netcc.model.types import Cluster, IPsec, Node
from netcc.plan.blocks import layout


def enabled(cluster: Cluster) -> IPsec | None:
    """The spec's IPsec when it is enabled."""
    ipsec = cluster.ipsec
    return ipsec if ipsec is not None and ipsec.enabled else None


def key_refs(ipsec: IPsec) -> tuple[KeyRef, ...]:
    return tuple(
        KeyRef(k.id, k.state, key_file(ipsec.key_directory, k.id), k.fingerprint)
        for k in sorted(ipsec.keys, key=lambda k: k.id)
    )


def _peer(
    cluster: Cluster, me: Node, peer: Node, keys: tuple[KeyRef, ...], level: str, covers: tuple
) -> PeerSAs:
    mine = spi_slot(cluster.pod_cidr, me.pod_cidr)
    theirs = spi_slot(cluster.pod_cidr, peer.pod_cidr)
    a, b = str(me.address), str(peer.address)
    out_sel = Selector(str(me.pod_cidr), str(peer.pod_cidr))
    in_sel = Selector(str(peer.pod_cidr), str(me.pod_cidr))
    states = []
    for k in keys:
        states.append(SAState("out", k.id, spi_for(k.id, mine), a, b, out_sel))
        states.append(SAState("in", k.id, spi_for(k.id, theirs), b, a, in_sel))
    send = next((k.id for k in keys if k.state == "send"), None)
    policies = []
    if send is not None:
        tmpl = Template(a, b, spi_for(send, mine), "required")
        policies.append(SAPolicy("out", out_sel.src, out_sel.dst, tmpl))
    for direction in ("in", "fwd"):
        policies.append(SAPolicy(direction, in_sel.src, in_sel.dst, Template(b, a, 0, level)))
    return PeerSAs(peer.name, b, str(peer.pod_cidr), tuple(states), tuple(policies), covers)


def plan_ipsec(cluster: Cluster) -> dict[str, IPsecPlan]:
    """Each node's IPsec plan, by node name; empty when IPsec is off."""
    ipsec = enabled(cluster)
    if ipsec is None:
        return {}
    keys = key_refs(ipsec)
    level = "use" if ipsec.accept_plaintext else "required"
    blocks = sorted(layout(cluster).items())
    nodes = sorted(cluster.nodes, key=lambda n: n.name)
    covers = {n.name: tuple(Cover(cls, str(b.on(n.pod_cidr))) for cls, b in blocks) for n in nodes}
    aead = Aead(ipsec.cipher, ipsec.key_bits, ipsec.icv_bits)
    plans = {}
    for node in nodes:
        plan = IPsecPlan(
            node=node.name,
            address=str(node.address),
            pod_cidr=str(node.pod_cidr),
            cluster_pod_cidr=str(cluster.pod_cidr),
            aead=aead,
            replay_window=ipsec.replay_window,
            underlay_mtu=ipsec.underlay_mtu,
            mtu=esp_mtu(ipsec.underlay_mtu, ipsec.icv_bits),
            accept_plaintext=ipsec.accept_plaintext,
            removed_key_grace=ipsec.removed_key_grace,
            keys=keys,
            peers=tuple(
                _peer(cluster, node, o, keys, level, covers[o.name])
                for o in nodes
                if o.name != node.name
            ),
        )
        check_plan(plan)  # the compiler writes nothing the nodes would refuse
        plans[node.name] = plan
    return plans


def render_ipsec(cluster: Cluster) -> dict[str, bytes]:
    """`nodes/NODE/ipsec.json` for every node (none when IPsec is off)."""
    return {
        PLAN_PATH.format(node=name): dumps(to_doc(plan))
        for name, plan in plan_ipsec(cluster).items()
    }


def cluster_rollout(cluster: Cluster) -> Rollout:
    """What every node of `cluster` sends and accepts (`netcc.contract.ipsecrollout`): the
    same as `rollout_of` gives for any node's plan."""
    ipsec = enabled(cluster)
    if ipsec is None:
        return OFF
    return Rollout(
        enabled=True,
        keys=tuple(KeyState(k.id, k.state, k.fingerprint) for k in key_refs(ipsec)),
        accept_plaintext=ipsec.accept_plaintext,
        aead=Aead(ipsec.cipher, ipsec.key_bits, ipsec.icv_bits),
        grace=ipsec.removed_key_grace,
    )
