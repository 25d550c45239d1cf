"""Service gaps closed, in the kernel (BPF_PROG_TEST_RUN): hairpin (a pod reaching itself
through its own service is masqueraded to its router address and sent back into it, both
translations reversed on the answer) and NodePort source-port allocation (two external clients
with the same source port reaching the same remote backend through one node)."""

import pytest
from kernelenv import compile_to
from svcpackets import NodeMaps, checksums_ok, fields, run, verdict_count
from svcspecs import SPEC

from netcc.loader.libbpf import map_update
from netcc.loader.testrun import TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT, ipv4_packet
from netcc.semantics.lb import nat_ports

VIP = "10.96.0.10"
WEB1 = "10.244.1.20"  # web-1, on node-1: a backend of VIP:80 (TCP 8080) and VIP:53 (UDP 5353)
ROUTER1 = "10.244.1.1"  # node-1's router address, the pod's gateway
NODE1 = "192.168.50.11"


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return compile_to(SPEC, tmp_path_factory.mktemp("gaps") / "out")


def hairpin_port(out, proto: int, port: int) -> int:
    """A client port whose flow from web-1 to VIP:port picks web-1 itself."""
    maps = NodeMaps(out, "node-1")
    return next(
        s for s in range(46000, 47000) if maps.expected(VIP, port, proto, 0, WEB1, s)[0] == WEB1
    )


def tuple_of(pkt: bytes) -> tuple:
    f = fields(pkt)
    return (f["src"], f["sport"], f["dst"], f["dport"])


@pytest.mark.parametrize(("proto", "vport", "tport"), [("tcp", 80, 8080), ("udp", 53, 5353)])
def test_kernel_hairpin_is_masqueraded_and_answered(k, out, proto, vport, tport):
    sport = hairpin_port(out, 6 if proto == "tcp" else 17, vport)
    first = "S" if proto == "tcp" else ""
    pkt = ipv4_packet(WEB1, VIP, proto, sport, vport, first, payload=b"ping")
    r = run(k, "node-1", "netcc_from_container", pkt)
    # back into the pod through its own veth, from the router address, to the pod itself
    assert r.retval == TC_ACT_REDIRECT
    assert tuple_of(r.data_out) == (ROUTER1, sport, WEB1, tport)
    assert checksums_ok(r.data_out)
    assert r.data_out[:6] == pkt[6:12] and r.data_out[6:12] == pkt[:6]  # MACs swapped
    # the pod's ingress sees its node (ALLOW_FROM_HOST) and lets it in untouched
    before = verdict_count(k, "node-1", "ALLOW_FROM_HOST", out)
    r2 = run(k, "node-1", "netcc_to_container", r.data_out)
    assert r2.retval == TC_ACT_OK and r2.data_out == r.data_out
    assert verdict_count(k, "node-1", "ALLOW_FROM_HOST", out) > before
    # the pod answers its router address: back to itself, into the pod again ...
    answer = ipv4_packet(WEB1, ROUTER1, proto, tport, sport, "SA" if first else "", b"pong")
    r3 = run(k, "node-1", "netcc_from_container", answer)
    assert r3.retval == TC_ACT_REDIRECT
    assert tuple_of(r3.data_out) == (WEB1, tport, WEB1, sport)
    assert checksums_ok(r3.data_out)
    # ... where it comes from the service address
    r4 = run(k, "node-1", "netcc_to_container", r3.data_out)
    assert r4.retval == TC_ACT_OK
    assert tuple_of(r4.data_out) == (VIP, vport, WEB1, sport)
    assert checksums_ok(r4.data_out)
    assert r4.data_out.endswith(b"pong")
    # the next packet of the flow takes the same way (its conntrack entries)
    again = ipv4_packet(WEB1, VIP, proto, sport, vport, "A" if first else "", b"more")
    r5 = run(k, "node-1", "netcc_from_container", again)
    assert r5.retval == TC_ACT_REDIRECT
    assert tuple_of(r5.data_out) == (ROUTER1, sport, WEB1, tport)
    assert checksums_ok(r5.data_out)
    assert verdict_count(k, "node-1", "DROP_SERVICE_HAIRPIN", out) == 0


def test_kernel_other_clients_of_the_pod_are_not_hairpinned(k, out):
    sport = next(
        s
        for s in range(46000, 47000)
        if NodeMaps(out, "node-1").expected(VIP, 80, 6, 0, WEB1, s)[0] != WEB1
    )
    r = run(k, "node-1", "netcc_from_container", ipv4_packet(WEB1, VIP, "tcp", sport, 80, "S"))
    assert r.retval == TC_ACT_OK
    assert fields(r.data_out)["src"] == WEB1


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
