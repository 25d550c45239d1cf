"""Hairpin, in the kernel (BPF_PROG_TEST_RUN): a pod reaching itself through its own service
is masqueraded to its router address and sent back into it, both translations reversed on the
answer; its other flows to the service are not."""

import pytest
from kernelenv import compile_to
from svcpackets import NodeMaps, checksums_ok, fields, run, verdict_count
from svcspecs import SPEC

from netcc.loader.testrun import TC_ACT_OK, TC_ACT_REDIRECT, ipv4_packet

VIP = "10.96.0.10"
WEB1 = "10.244.1.20"  # web-1, on node-1: a backend of VIP:80 (TCP 8080) and VIP:53 (UDP 5353)
ROUTER1 = "10.244.1.1"  # node-1's router address, the pod's gateway


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return compile_to(SPEC, tmp_path_factory.mktemp("hairpin") / "out")


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
