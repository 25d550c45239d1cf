"""NodePort source ports, in the kernel (BPF_PROG_TEST_RUN): two external clients with the
same source port reaching the same remote backend through one node get a translation each (a
port of 61000-65535 chosen by a hash of the flow), a taken port is probed past, and a flow
whose every candidate port is held is dropped and counted."""

import pytest
from kernelenv import compile_to
from svcpackets import NodeMaps, checksums_ok, fields, run, verdict_count
from svcspecs import SPEC

from netcc.loader.libbpf import map_update
from netcc.loader.testrun import TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT, ipv4_packet
from netcc.semantics.lb import nat_ports

NODE1 = "192.168.50.11"


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return compile_to(SPEC, tmp_path_factory.mktemp("nodeport-ports") / "out")


def tuple_of(pkt: bytes) -> tuple:
    f = fields(pkt)
    return (f["src"], f["sport"], f["dst"], f["dport"])


def two_clients_one_backend(out) -> tuple[str, str, int, tuple[str, int]]:
    """Two external clients whose flows from the same source port to node-1's NodePort 30081
    (externalTrafficPolicy Cluster) pick the same backend on node-2."""
    maps = NodeMaps(out, "node-1")
    sport = 7000
    by_backend: dict = {}
    for i in range(1, 250):
        client = f"198.51.100.{i}"
        b = maps.expected(NODE1, 30081, 6, 1, client, sport)
        if b[0].startswith("10.244.2."):
            by_backend.setdefault(b, []).append(client)
            if len(by_backend[b]) == 2:
                return *by_backend[b], sport, b
    raise AssertionError("no two clients share a backend")


def test_kernel_nodeport_allocates_a_source_port_per_client(k, out):
    a, b, sport, backend = two_clients_one_backend(out)
    seen = {}
    for client in (a, b):
        pkt = ipv4_packet(client, NODE1, "tcp", sport, 30081, "S", payload=client.encode())
        r = run(k, "node-1", "netcc_from_uplink", pkt)
        assert r.retval in (TC_ACT_OK, TC_ACT_REDIRECT)
        f = fields(r.data_out)
        assert (f["src"], f["dst"], f["dport"]) == (NODE1, *backend)
        assert 61000 <= f["sport"] <= 65535
        assert f["sport"] in nat_ports(client, sport, 30081, backend[0])
        assert checksums_ok(r.data_out)
        seen[client] = f["sport"]
    assert seen[a] != seen[b]  # two translations, not one shared
    # each reply returns to its own client, from the nodePort
    for client in (a, b):
        reply = ipv4_packet(backend[0], NODE1, "tcp", backend[1], seen[client], "SA", b"hi")
        r = run(k, "node-1", "netcc_from_uplink", reply)
        assert tuple_of(r.data_out) == (NODE1, 30081, client, sport)
        assert checksums_ok(r.data_out)
    # the flows keep their ports
    for client in (a, b):
        pkt = ipv4_packet(client, NODE1, "tcp", sport, 30081, "A")
        assert fields(run(k, "node-1", "netcc_from_uplink", pkt).data_out)["sport"] == seen[client]


def test_kernel_nodeport_probes_past_a_taken_port_and_drops_when_all_are(k, out):
    a, _, sport, backend = two_clients_one_backend(out)
    dp = k.nodes["node-1"]
    fd = dp.obj.map_fd("netcc_lb_nat")
    ports = nat_ports(a, sport, 30081, backend[0])

    def hold(port: int) -> None:  # a live reverse entry of some other flow on `port`
        key = {"local": backend[0], "remote": NODE1, "lport": backend[1], "rport": port}
        key["proto"] = 6
        value = {"expires": 2**63, "saddr": NODE1, "daddr": "203.0.113.9", "sport": 30081}
        value |= {"dport": 9, "flags": 1}
        map_update(fd, dp.layout.pack("ct_key", key), dp.layout.pack("lb_nat", value))

    hold(ports[0])
    hold(ports[1])
    pkt = ipv4_packet(a, NODE1, "tcp", sport, 30081, "S")
    assert fields(run(k, "node-1", "netcc_from_uplink", pkt).data_out)["sport"] == ports[2]
    # a new flow whose every probed port is held: dropped, counted
    maps = NodeMaps(out, "node-1")
    s2 = next(
        s
        for s in range(sport + 1, sport + 500)
        if maps.expected(NODE1, 30081, 6, 1, a, s) == backend
    )
    for port in nat_ports(a, s2, 30081, backend[0]):
        hold(port)
    before = verdict_count(k, "node-1", "DROP_NODEPORT_NO_PORT", out)
    r = run(k, "node-1", "netcc_from_uplink", ipv4_packet(a, NODE1, "tcp", s2, 30081, "S"))
    assert r.retval == TC_ACT_SHOT
    assert verdict_count(k, "node-1", "DROP_NODEPORT_NO_PORT", out) == before + 1
