"""A tuple changing hands: a pod closes a connection straight to a backend and opens one with
the same ports through the service, which DNAT turns into the same tuple. The replies of the new
connection must come back from the service address, even though the per-CPU flow cache still
holds a shortcut for the old connection (found by bench/lb_socket_vs_tc.py: reused client ports
stalled connections to same-node backends)."""

import os

import pytest
from kernelenv import compile_to
from svcpackets import fields, run
from svcspecs import SPEC

from netcc.loader.testrun import TC_ACT_OK, ipv4_packet

CLIENT, VIP = "10.244.1.10", "10.96.0.10"


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return compile_to(SPEC, tmp_path_factory.mktemp("flowcache") / "out")


@pytest.fixture
def one_cpu():
    """The flow cache is per CPU: every test run on one CPU, as a pod's packets often are."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _backend_of(k, sport: int) -> tuple[str, int]:
    """Where the service sends a new connection from CLIENT:sport (opens it, then resets it)."""
    syn = ipv4_packet(CLIENT, VIP, "tcp", sport, 80, "S")
    fwd = fields(run(k, "node-1", "netcc_from_container", syn).data_out)
    rst = ipv4_packet(CLIENT, VIP, "tcp", sport, 80, "R")
    assert run(k, "node-1", "netcc_from_container", rst).retval == TC_ACT_OK
    return fwd["dst"], fwd["dport"]


def _plain_connection(k, backend: str, bport: int, sport: int) -> None:
    """CLIENT:sport straight to the backend: handshake, data both ways (the replies fill the
    flow cache), and close."""

    def out_(flags: str, payload: bytes = b"") -> None:
        pkt = ipv4_packet(CLIENT, backend, "tcp", sport, bport, flags, payload=payload)
        assert run(k, "node-1", "netcc_from_container", pkt).retval == TC_ACT_OK

    def in_(flags: str, payload: bytes = b"") -> bytes:
        pkt = ipv4_packet(backend, CLIENT, "tcp", bport, sport, flags, payload=payload)
        r = run(k, "node-1", "netcc_to_container", pkt)
        assert r.retval == TC_ACT_OK
        return r.data_out

    out_("S")
    in_("SA")
    out_("A", b"ping")
    for _ in range(3):
        assert fields(in_("A", b"pong"))["src"] == backend
    out_("FA")
    in_("FA")
    out_("A")


@pytest.mark.parametrize("sport", [47001, 47002, 47003])
def test_kernel_service_reply_after_a_plain_connection_on_the_same_tuple(k, out, one_cpu, sport):
    backend, bport = _backend_of(k, sport)  # the backend the service picks for this port
    _plain_connection(k, backend, bport, sport)
    syn = ipv4_packet(CLIENT, VIP, "tcp", sport, 80, "S")
    assert run(k, "node-1", "netcc_from_container", syn).retval == TC_ACT_OK
    synack = ipv4_packet(backend, CLIENT, "tcp", bport, sport, "SA")
    assert fields(run(k, "node-1", "netcc_to_container", synack).data_out)["src"] == VIP
    for _ in range(3):  # plain ACKs with data: the packets a stale shortcut would let through
        reply = ipv4_packet(backend, CLIENT, "tcp", bport, sport, "A", payload=b"pong")
        r = run(k, "node-1", "netcc_to_container", reply)
        assert r.retval == TC_ACT_OK
        back = fields(r.data_out)
        assert (back["src"], back["sport"]) == (VIP, 80), "the reply skipped reverse translation"


def test_kernel_plain_flow_after_a_service_flow_on_the_same_tuple(k, out):
    """The other way round: a pod asks the service over UDP, then the backend straight from the
    same port while the service flow's entry lives. Replies to the direct flow come from the
    backend, not the service address (the client's connected socket would drop them)."""
    sport = 47100
    ask = ipv4_packet(CLIENT, VIP, "udp", sport, 53, payload=b"q1")
    fwd = fields(run(k, "node-1", "netcc_from_container", ask).data_out)
    backend, bport = fwd["dst"], fwd["dport"]
    answer = ipv4_packet(backend, CLIENT, "udp", bport, sport, payload=b"a1")
    assert fields(run(k, "node-1", "netcc_to_container", answer).data_out)["src"] == VIP
    direct = ipv4_packet(CLIENT, backend, "udp", sport, bport, payload=b"q2")
    r = run(k, "node-1", "netcc_from_container", direct)
    assert r.retval == TC_ACT_OK and fields(r.data_out)["dst"] == backend
    r = run(k, "node-1", "netcc_to_container", answer)
    assert r.retval == TC_ACT_OK
    assert (fields(r.data_out)["src"], fields(r.data_out)["sport"]) == (backend, bport)
