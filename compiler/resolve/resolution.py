"""The resolve stage's result: what every name and selector of the spec stands for.

`resolve(cluster)` computes it once; the planner reads it and decides nothing of this kind
itself, it only lays out map entries:
- identities: the security identity of every workload and workload class (`identity`);
- workload numbers: every static workload's number, for the datapath's self check (a class's
  pods have none: the datapath compares their addresses);
- peer classes: the classes of remote addresses, the class of every address and region, and
  of every class's blocks (`peers`, `class_addresses`);
- selection: the policies that select each pod and each class, per direction (podSelectors);
- rule targets: the classes each rule's peers match (peer selectors and ipBlocks);
- named ports: the number each port name stands for on each set of container ports (`ports`);
- service backends: the workloads behind each service port, target ports resolved
  (`backends`), and the workload classes whose runtime pods may back it, each with its
  target port (`port_classes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netcc.model.types import Cluster, IPBlock, NetworkPolicy, Rule
from netcc.resolve.backends import Backend, port_backends, port_classes
from netcc.resolve.identity import Identity, workload_identities
from netcc.resolve.peers import (
    PeerClass,
    PeerClasses,
    RuleKey,
    RulePeers,
    ipv4_blocks,
    peer_classes,
)
from netcc.resolve.ports import NamedPorts, named_ports
from netcc.semantics.policy import policies_selecting

DIRECTIONS = ("ingress", "egress")


@dataclass(frozen=True)
class Resolution:
    """What the spec's names and selectors stand for (see the module's doc)."""

    cluster: Cluster
    identities: dict[str, Identity]  # workload or class key -> identity
    notes: tuple[str, ...]  # identity hash collisions resolved
    workload_numbers: dict[str, int]  # workload key -> number (from 1, by key)
    blocks: list[IPBlock]  # the policies' IPv4 ipBlocks; a peer class's `blocks` index them
    peers: PeerClasses
    # (workload or class key, direction) -> the policies selecting its pods and isolating them
    selecting: dict[tuple[str, str], tuple[NetworkPolicy, ...]]
    # (policy key, direction, rule index) -> class numbers its peers match (None: any peer),
    # for the rules of each policy in a direction where it selects some pod (only those
    # make entries)
    targets: dict[RuleKey, tuple[int, ...] | None]
    named_ports: NamedPorts
    # (service key, index of the port in the service) -> its backends
    backends: dict[tuple[str, int], tuple[Backend, ...]]
    # (service key, port index) -> (class key, target port) of every class that may back it
    port_classes: dict[tuple[str, int], tuple[tuple[str, int], ...]] = field(default_factory=dict)

    @property
    def classes(self) -> tuple[PeerClass, ...]:
        return self.peers.classes

    def policies_selecting(self, workload_key: str, direction: str) -> tuple[NetworkPolicy, ...]:
        return self.selecting[(workload_key, direction)]

    def rule_targets(self, policy: NetworkPolicy, rule: Rule) -> tuple[int, ...] | None:
        return self.targets[(policy.key, rule.direction, rule.index)]


def resolve(cluster: Cluster) -> Resolution:
    """Resolve every name and selector of a valid cluster model."""
    identities, notes = workload_identities(cluster)
    workload_numbers = {
        w.key: i for i, w in enumerate(sorted(cluster.workloads, key=lambda w: w.key), start=1)
    }
    blocks = ipv4_blocks(cluster)
    peers = peer_classes(cluster, identities, blocks)
    selecting = {
        (w.key, d): tuple(policies_selecting(cluster, w, d))  # type: ignore[arg-type]
        for w in (*cluster.workloads, *cluster.classes)  # a class is selected by its labels
        for d in DIRECTIONS
    }
    rule_peers = RulePeers(cluster, peers.classes, blocks)
    targets: dict[RuleKey, tuple[int, ...] | None] = {}
    seen: set[tuple[str, str]] = set()
    for (_, d), policies in selecting.items():
        for p in policies:
            if (p.key, d) not in seen:
                seen.add((p.key, d))
                for r in p.rules(d):
                    targets[(p.key, d, r.index)] = rule_peers.targets(p, r)
    backends = {
        (s.key, i): port_backends(cluster, s, port)
        for s in cluster.services
        for i, port in enumerate(s.ports)
    }
    return Resolution(
        cluster,
        identities,
        tuple(notes),
        workload_numbers,
        blocks,
        peers,
        selecting,
        targets,
        named_ports(cluster),
        backends,
        {
            (s.key, i): tuple((c.key, n) for c, n in port_classes(cluster, s, port))
            for s in cluster.services
            for i, port in enumerate(s.ports)
        },
    )
