"""A service port's backends: the workloads its selector matches, with the resolved target port."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from netcc.model.types import Cluster, PodsOfOneKind, Service, ServicePort, WorkloadClass


@dataclass(frozen=True, order=True)
class Backend:
    """One endpoint of a service port: a pod address and the port it listens on."""

    ip: IPv4Address
    port: int
    protocol: str
    workload: str  # namespace/name
    node: str

    @property
    def identity(self) -> str:
        """Stable text naming the backend; Maglev hashes it (never Python's hash())."""
        return f"{self.ip}:{self.port}/{self.protocol}"


def selects(service: Service, workload: PodsOfOneKind) -> bool:
    """Whether the service's selector picks the workload. An empty selector picks nothing
    (Kubernetes then expects hand-made endpoints, which a spec cannot give)."""
    if not service.selector or workload.namespace != service.namespace:
        return False
    labels = dict(workload.labels)
    return all(labels.get(k) == v for k, v in service.selector)


def target_port(port: ServicePort, workload: PodsOfOneKind) -> int | None:
    """The port a backend serves `port` on: the number, or the container port named so for
    the same protocol (a pod without that name is no endpoint of the port)."""
    if isinstance(port.target_port, int):
        return port.target_port
    return workload.resolve_port(port.target_port, port.protocol)


def port_backends(cluster: Cluster, service: Service, port: ServicePort) -> tuple[Backend, ...]:
    """Every backend of one service port, sorted by address and port."""
    out = set()
    for w in cluster.workloads:
        if not w.ips or not selects(service, w):
            continue
        number = target_port(port, w)
        if number is not None:
            out.add(Backend(w.ips[0], number, port.protocol, w.key, w.node))
    return tuple(sorted(out))


def port_classes(
    cluster: Cluster, service: Service, port: ServicePort
) -> tuple[tuple[WorkloadClass, int], ...]:
    """The workload classes whose runtime pods may back one service port, each with the port
    its pods serve it on (a class without the named targetPort backs no port of that name),
    sorted by class."""
    out = []
    for c in cluster.classes_in(service.namespace):
        if selects(service, c):
            number = target_port(port, c)
            if number is not None:
                out.append((c, number))
    return tuple(out)


def port_label(service: Service, port: ServicePort) -> str:
    """`ns/name port NAME (TCP 80)`: how generated code and map notes cite a service port."""
    name = port.name if port.name else str(port.port)
    return f"{service.key} port {name} ({port.protocol} {port.port})"
