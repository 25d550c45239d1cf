"""A whole cluster's datapath in the kernel, driven with BPF_PROG_TEST_RUN.

Each node's programs are loaded with that node's maps. A packet from a pod first meets its
node's `netcc_from_container` (the sender's egress), then, if it is addressed to a pod, the
destination node's `netcc_to_container` (the receiver's ingress): the path a real packet takes.
Used by `netcc verify`, `netcc trace`, the lab's probes, the differential tests and the
benchmarks. Pods of workload classes, which the compiled maps do not list, are given as
`runtime` (address -> node): each gets the endpoint entry its node daemon would write
(`classpods.class_endpoint`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from netcc.contract.programs import FROM_CONTAINER, TO_CONTAINER
from netcc.loader.classpods import class_endpoint
from netcc.loader.datapath import NodeDatapath, node_names, pod_nodes
from netcc.loader.libbpf import prog_test_run
from netcc.loader.maps import BpfMap
from netcc.loader.testrun import TC_ACT_OK, ipv4_packet

PROTO_NAMES = {6: "tcp", 17: "udp", 132: "sctp", 1: "icmp"}


@dataclass(frozen=True)
class Hop:
    node: str
    program: str
    passed: bool


class KernelCluster:
    def __init__(self, out: Path, runtime: Mapping[str, str] | None = None):
        self.out = Path(out)
        self.pods = pod_nodes(self.out)
        self.nodes: dict[str, NodeDatapath] = {}
        try:
            for name in node_names(self.out):
                self.nodes[name] = NodeDatapath(self.out, name)
            for ip, node in sorted((runtime or {}).items()):
                self.add_class_pod(ip, node)
        except BaseException:
            self.close()
            raise

    def add_class_pod(self, ip: str, node: str) -> bool:
        """Give the class pod at `ip` on `node` its endpoint entry, as its node daemon does;
        False when no class block of the node holds `ip` (nothing is added)."""
        if ip in self.pods or node not in self.nodes:
            return False
        values = class_endpoint(self.out, node, ip)
        if values is None:
            return False
        dp = self.nodes[node]
        endpoints = BpfMap.borrow(dp.obj.map_fd("netcc_endpoints"), "netcc_endpoints", dp.layout)
        endpoints.put(endpoints.pack_key({"ip": ip}), dp.layout.pack("endpoint_info", values))
        self.pods[ip] = node
        return True

    def packet(
        self, src: str, dst: str, proto: int, sport: int, dport: int, tcp_flags: str = "S", **packet
    ) -> bytes:
        """The Ethernet frame a pod (or host) would send for this flow."""
        if proto == 1:
            return ipv4_packet(
                src,
                dst,
                "icmp",
                sport=sport,
                dport=dport,
                icmp_type=packet.pop("icmp_type", 8),
                **packet,
            )
        kind = PROTO_NAMES.get(proto, proto)
        return ipv4_packet(src, dst, kind, sport=sport, dport=dport, tcp_flags=tcp_flags, **packet)

    def path(self, src: str, dst: str) -> list[tuple[str, str]]:
        """(node, program) hops: the sender's egress, then the receiver's ingress."""
        hops = []
        for ip, program in ((src, FROM_CONTAINER.name), (dst, TO_CONTAINER.name)):
            if ip in self.pods:
                hops.append((self.pods[ip], program))
        return hops

    def run(self, node: str, program: str, pkt: bytes) -> bool:
        """One hop; True when the program lets the packet through."""
        return prog_test_run(self.nodes[node].prog_fd(program), pkt).retval == TC_ACT_OK

    def send(
        self, src: str, dst: str, proto: int, sport: int, dport: int, tcp_flags: str = "S", **packet
    ) -> list[Hop]:
        """Run one packet along its path; stops at the first hop that drops it."""
        pkt = self.packet(src, dst, proto, sport, dport, tcp_flags, **packet)
        hops = []
        for node, program in self.path(src, dst):
            hops.append(Hop(node, program, self.run(node, program, pkt)))
            if not hops[-1].passed:
                break
        return hops

    def allows(self, src: str, dst: str, proto: int, sport: int, dport: int, **kw) -> bool:
        return all(h.passed for h in self.send(src, dst, proto, sport, dport, **kw))

    def close(self) -> None:
        for n in self.nodes.values():
            n.close()
        self.nodes.clear()

    def __enter__(self) -> KernelCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ct_verdict(
    k: KernelCluster, node: str, local: str, remote: str, lport: int, rport: int, proto: int
) -> int | None:
    """The verdict stored in a node's conntrack entry for a connection, if tracked."""
    dp = k.nodes[node]
    ct = BpfMap.borrow(dp.obj.map_fd("netcc_ct"), "netcc_ct", dp.layout)
    key = {"local": local, "remote": remote, "lport": lport, "rport": rport, "proto": proto}
    raw = ct.get(ct.pack_key(key))
    return None if raw is None else ct.unpack_value(raw)["verdict"]
