"""The review's account of encryption: which traffic is encrypted between nodes and which is
not, and for `netcc diff` how that changes (and whether a change of IPsec keys is safe to roll
out, `netcc.contract.ipsecrollout`).

WireGuard and IPsec both encrypt pod-to-pod traffic between nodes, and only that: each node's
pod CIDR to every other node's. Pods of one node talk without leaving it; what goes to or from
a node address (a node's own traffic, pods reaching a node, NodePort traffic a node forwards
to a backend on another node, whose source is then the node's address) and what comes from or
goes outside the cluster is not encrypted by netcc. A spec without `spec.encryption` has no
such section (nothing is encrypted); keys appear by id, state and fingerprint only.
"""

from __future__ import annotations

from typing import Any

from netcc.contract.ipsec import esp_mtu, spi_for, spi_slot, spi_text
from netcc.contract.ipsecrollout import rollout_step
from netcc.emit.ipsec import cluster_rollout, enabled, key_refs
from netcc.emit.tunnels import OVERHEAD
from netcc.model.types import Cluster

NOT_ENCRYPTED = (
    ("pod to pod on one node", "never leaves the node"),
    (
        "to and from node addresses: a node's own traffic, pods reaching a node, NodePort "
        "traffic a node forwards to a backend on another node (its source becomes the node's "
        "address)",
        "not pod to pod: only pod CIDRs are tunnelled",
    ),
    ("to and from outside the cluster", "leaves the cluster: encrypt it end to end (TLS)"),
)


def mode(cluster: Cluster) -> str:
    """`ipsec`, `wireguard`, `ipsec (no key sends yet)` or `none`."""
    if enabled(cluster) is not None:
        return "ipsec" if cluster_rollout(cluster).send is not None else "ipsec (no key sends yet)"
    if cluster.wireguard is not None and cluster.wireguard.enabled:
        return "wireguard"
    return "none"


def covered(cluster: Cluster) -> dict[str, str]:
    """Node -> pod CIDR of the nodes whose pod traffic to the other nodes is encrypted."""
    if mode(cluster) not in ("ipsec", "wireguard") or len(cluster.nodes) < 2:
        return {}
    return {n.name: str(n.pod_cidr) for n in sorted(cluster.nodes, key=lambda n: n.name)}


def encryption_report(cluster: Cluster) -> dict[str, Any] | None:
    """The review's encryption section; None for a spec without `spec.encryption`."""
    if cluster.ipsec is None and cluster.wireguard is None:
        return None
    how = mode(cluster)
    nodes = sorted(cluster.nodes, key=lambda n: n.name)
    tunnels: list[dict[str, Any]] = []
    out: dict[str, Any] = {"mode": how}
    ipsec = enabled(cluster)
    if how in ("ipsec", "wireguard"):
        send = cluster_rollout(cluster).send
        for a in nodes:
            for b in nodes:
                if a.name == b.name:
                    continue
                row: dict[str, Any] = {
                    "from": a.name,
                    "to": b.name,
                    "src": str(a.pod_cidr),
                    "dst": str(b.pod_cidr),
                }
                if ipsec is not None and send is not None:
                    spi = spi_for(send, spi_slot(cluster.pod_cidr, a.pod_cidr))
                    row.update({"spi": spi_text(spi), "key": send})
                tunnels.append(row)
    not_encrypted = [{"traffic": t, "why": w} for t, w in NOT_ENCRYPTED]
    if how == "none":
        out["summary"] = "encryption is configured but not enabled: nothing is encrypted"
        not_encrypted.insert(0, {"traffic": "pod to pod between nodes", "why": "not enabled"})
    elif ipsec is not None:
        cipher = f"{ipsec.cipher}, {ipsec.key_bits}-bit keys, {ipsec.icv_bits}-bit ICV"
        out["summary"] = (
            f"pod-to-pod traffic between nodes is encrypted with IPsec ESP ({cipher}), one SA "
            "per node pair and direction"
            if how == "ipsec"
            else "IPsec is being turned on or off: no key is in state send, so pod traffic "
            "between nodes goes in clear"
        )
        if how != "ipsec":
            not_encrypted.insert(0, {"traffic": "pod to pod between nodes", "why": "no key sends"})
        if ipsec.accept_plaintext:
            not_encrypted.append(
                {
                    "traffic": "pod traffic from other nodes' pods arriving in clear",
                    "why": "still accepted (acceptPlaintext: true, a rollout under way)",
                }
            )
        out.update(
            {
                "cipher": ipsec.cipher,
                "keyBits": ipsec.key_bits,
                "icvBits": ipsec.icv_bits,
                "mtu": esp_mtu(ipsec.underlay_mtu, ipsec.icv_bits),
                "acceptPlaintext": ipsec.accept_plaintext,
                "keys": [
                    {"id": k.id, "state": k.state, "fingerprint": k.fingerprint}
                    for k in key_refs(ipsec)
                ],
            }
        )
    else:
        wg = cluster.wireguard
        assert wg is not None
        out["summary"] = "pod-to-pod traffic between nodes is encrypted with WireGuard"
        out["mtu"] = wg.underlay_mtu - OVERHEAD
    out["encrypted"] = tunnels
    out["not_encrypted"] = not_encrypted
    return out


def encryption_diff(old: Cluster, new: Cluster) -> dict[str, Any] | None:
    """How encryption changes from `old` to `new`: `lines` for the text, the rest for JSON;
    None when neither has `spec.encryption`."""
    if all(c.ipsec is None and c.wireguard is None for c in (old, new)):
        return None
    lines: list[str] = []
    before, after = mode(old), mode(new)
    if before != after:
        lines.append(f"encryption: {before} -> {after}")
        if "wireguard" in (before, after) and after != "none" and before != "none":
            lines.append(
                "encryption: nodes on WireGuard and nodes on IPsec cannot reach each other's "
                "pods: the switch drops pod traffic between nodes until every node runs NEW"
            )
    a, b = covered(old), covered(new)
    for node in sorted(b.keys() - a.keys()):
        lines.append(f"encryption: node {node} ({b[node]}) newly encrypted to and from the others")
    for node in sorted(a.keys() - b.keys()):
        lines.append(f"encryption: node {node} ({a[node]}) no longer encrypted")
    for node in sorted(a.keys() & b.keys()):
        if a[node] != b[node]:
            lines.append(f"encryption: node {node} tunnels {a[node]} -> {b[node]}")
    out: dict[str, Any] = {
        "old": before,
        "new": after,
        "covered": {
            "added": sorted(b.keys() - a.keys()),
            "removed": sorted(a.keys() - b.keys()),
        },
    }
    d, n = cluster_rollout(old), cluster_rollout(new)
    if not d.same_keys(n):
        step = rollout_step(d, n)
        lines.append(f"ipsec keys: {d.text()} -> {n.text()}")
        lines.append(f"ipsec rollout: {step.text()}")
        out["keys"] = {"old": d.text(), "new": n.text()}
        out["rollout"] = step.to_json()
    out["lines"] = lines
    return out
