"""Reading and checking the packets the datapath rewrote."""

import json
import struct
from ipaddress import IPv4Address
from pathlib import Path

from netcc.contract.mapfile import load_node_maps
from netcc.loader.testrun import _csum


def fields(pkt: bytes) -> dict:
    """Addresses, ports and protocol of an Ethernet + IPv4 + TCP/UDP frame."""
    ihl = (pkt[14] & 0x0F) * 4
    proto = pkt[23]
    sport, dport = struct.unpack("!HH", pkt[14 + ihl : 18 + ihl])
    return {
        "src": str(IPv4Address(pkt[26:30])),
        "dst": str(IPv4Address(pkt[30:34])),
        "sport": sport,
        "dport": dport,
        "proto": proto,
    }


def checksums_ok(pkt: bytes) -> bool:
    """The IPv4 header checksum and the TCP/UDP checksum (pseudo-header included) hold."""
    ihl = (pkt[14] & 0x0F) * 4
    total = struct.unpack("!H", pkt[16:18])[0]
    if _csum(pkt[14 : 14 + ihl]) != 0:
        return False
    proto = pkt[23]
    seg = pkt[14 + ihl : 14 + total]
    if proto == 17 and seg[6:8] == b"\0\0":
        return True
    pseudo = pkt[26:34] + bytes([0, proto]) + struct.pack("!H", len(seg))
    return _csum(pseudo + seg) == 0


class NodeMaps:
    """A node's LB map data from OUT: services, backends and Maglev rows."""

    def __init__(self, out: Path, node: str):
        maps = load_node_maps(out, node)  # the shared entries with the node's overlay

        def entries(name):
            return maps.get(name, [])

        self.services = {
            (e["key"]["vip"], e["key"]["port"], e["key"]["proto"], e["key"]["scope"]): e["value"]
            for e in entries("netcc_lb_services")
        }
        self.backends = {e["key"]["id"]: e["value"] for e in entries("netcc_lb_backends")}
        self.rows = {e["key"]["id"]: e["value"]["backends"] for e in entries("netcc_lb_maglev")}

    def expected(self, vip, port, proto, scope, client, sport) -> tuple[str, int]:
        """The reference backend (address, port) for a new flow."""
        from netcc.semantics.lb import flow_hash, pick

        svc = self.services[(vip, port, proto, scope)]
        h = flow_hash(client, sport, port, proto, affinity=bool(svc["flags"] & 1))
        b = self.backends[pick(self.rows[svc["row"]], h)]
        return b["ip"], b["port"]


def run(k, node: str, program: str, pkt: bytes):
    """One BPF_PROG_TEST_RUN of `program` on `node` of a KernelCluster."""
    from netcc.loader.libbpf import prog_test_run

    return prog_test_run(k.nodes[node].prog_fd(program), pkt)


def verdict_count(k, node: str, name: str, out) -> int:
    """Packets `node` counted under the verdict called `name`."""
    doc = json.loads((Path(out) / "verdicts.json").read_text())
    number = next(v["number"] for v in doc["verdicts"] if v["name"] == name)
    return k.nodes[node].stats().get(number, (0, 0))[0]
