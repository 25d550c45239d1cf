"""`netcc_endpoints`: the pods of one node, by address, and how each one's traffic is judged.

Each local pod address gets its workload number (the self check), its profile and that
profile's flags (isolation, PEER_ANY and range entries per direction), its identity, its
default-deny verdicts, and its gateway (the node's router address, the hairpin source). The
interface is the loader's to fill in (`ifindex` 0 here).
"""

from __future__ import annotations

from ipaddress import IPv4Address

from netcc.contract.entries import EndpointInfo, EndpointKey, Entry
from netcc.model.types import Node, Workload
from netcc.plan.policy import NodePolicy
from netcc.plan.verdicts import Verdicts
from netcc.resolve.resolution import Resolution

UNBOUND = 0  # ifindex until the loader binds the address to its interface


def endpoint_entries(
    r: Resolution, node: Node, local: list[Workload], policy: NodePolicy, verdicts: Verdicts
) -> tuple[Entry, ...]:
    """The node's endpoint entries, sorted by address."""
    profile_of = policy.profile_of()
    router = str(node.router_ip)
    rows: list[tuple[int, Entry]] = []
    for w in local:
        profile = profile_of[w.key]
        for ip in w.ips:
            value = EndpointInfo(
                workload=r.workload_numbers[w.key],
                profile=profile.number,
                identity=r.identities[w.key].number,
                ifindex=UNBOUND,
                flags=profile.flags,
                ingress_deny=verdicts.deny.get((w.key, "ingress"), 0),
                egress_deny=verdicts.deny.get((w.key, "egress"), 0),
                router=router,
            )
            rows.append((int(IPv4Address(ip)), Entry(EndpointKey(str(ip)), value, w.key)))
    rows.sort(key=lambda row: row[0])
    return tuple(e for _, e in rows)
