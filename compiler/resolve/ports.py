"""Named ports: what number a port name stands for on each set of container ports.

A NetworkPolicyPort may name a port (`port: http`); it means, on each destination pod, that
pod's container port of that name and protocol, and nothing on a pod without one. Pods with
the same container ports resolve every name alike, so names are resolved once per distinct
set of container ports (a profile's or a peer class's), for every name a rule uses.
"""

from __future__ import annotations

from dataclasses import dataclass

from netcc.model.types import Cluster, ContainerPort
from netcc.resolve.peers import sorted_ports

Ports = tuple[ContainerPort, ...]  # container ports in `sorted_ports` order


@dataclass(frozen=True)
class NamedPorts:
    """(name, protocol, container ports) -> the port number; a pair absent from a port set
    has no entry (the pod has no such port)."""

    numbers: dict[tuple[str, str, Ports], int]

    def number(self, name: str, protocol: str, ports: Ports) -> int | None:
        """The number `name` stands for on pods with `ports` (sorted), or None."""
        return self.numbers.get((name, protocol, ports))


def named_ports(cluster: Cluster) -> NamedPorts:
    """Every port name of the policies resolved on every set of container ports."""
    names = {
        (pp.port, pp.protocol)
        for p in cluster.policies
        for r in p.ingress + p.egress
        for pp in r.ports
        if isinstance(pp.port, str)
    }
    numbers: dict[tuple[str, str, Ports], int] = {}
    subjects = (*cluster.workloads, *cluster.classes)
    for ports in {sorted_ports(w.ports) for w in subjects}:
        by_name = {(cp.name, cp.protocol): cp.port for cp in reversed(ports) if cp.name}
        for name, protocol in names:
            number = by_name.get((name, protocol))
            if number is not None:
                numbers[(name, protocol, ports)] = number
    return NamedPorts(numbers)
