"""ICMP errors about translated flows and IP fragments of translated datagrams, in the kernel
(BPF_PROG_TEST_RUN): cluster IPs at the pod's veth, NodePort at the uplink."""

import struct
from ipaddress import IPv4Address

import pytest
from kernelenv import compile_to
from svcpackets import checksums_ok, fields, run, verdict_count
from svcspecs import SPEC

from netcc.loader.testrun import TC_ACT_OK, _csum, _ether, ipv4_packet

CLIENT, EXTERNAL = "10.244.1.10", "198.51.100.7"
NODE1, ROUTER = "192.168.50.11", "192.168.50.1"
VIP = "10.96.0.10"
ETH_P_IP = 0x0800
QUOTE = 14 + 20 + 8  # the quoted IP header in an ICMP error


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return compile_to(SPEC, tmp_path_factory.mktemp("svcicmp") / "out")


def _ip(src: str, dst: str, proto: int, body: bytes, frag: int = 0, ident: int = 7) -> bytes:
    """Ethernet + IPv4 header (valid checksum; `frag` is the flags/offset field) + body."""
    s, d = IPv4Address(src).packed, IPv4Address(dst).packed
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), ident, frag, 64, proto, 0, s, d)
    return _ether(ETH_P_IP) + hdr[:10] + struct.pack("!H", _csum(hdr)) + hdr[12:] + body


def icmp_error(src: str, dst: str, offending: bytes, code: int = 4, mtu: int = 1420) -> bytes:
    """Destination unreachable (code 4: fragmentation needed, with the next-hop MTU) quoting
    the IP packet of the Ethernet frame `offending`, as Linux does (all of it, < 576 bytes)."""
    body = struct.pack("!BBHHH", 3, code, 0, 0, mtu) + offending[14:]
    body = body[:2] + struct.pack("!H", _csum(body)) + body[4:]
    return _ip(src, dst, 1, body)


def quote(pkt: bytes) -> dict:
    """The outer addresses and the quoted tuple of an ICMP error, and whether the outer IP,
    ICMP and quoted IP checksums hold."""
    q = QUOTE
    return {
        "src": str(IPv4Address(pkt[26:30])),
        "dst": str(IPv4Address(pkt[30:34])),
        "qsrc": str(IPv4Address(pkt[q + 12 : q + 16])),
        "qdst": str(IPv4Address(pkt[q + 16 : q + 20])),
        "qsport": struct.unpack("!H", pkt[q + 20 : q + 22])[0],
        "qdport": struct.unpack("!H", pkt[q + 22 : q + 24])[0],
        "sums_ok": _csum(pkt[14:34]) == 0 and _csum(pkt[34:]) == 0 and _csum(pkt[q : q + 20]) == 0,
    }


def fragments(pkt: bytes, sizes=(24, 24)) -> list[bytes]:
    """The Ethernet + IPv4 frame `pkt` split into len(sizes) + 1 fragments (sizes: multiples
    of 8 bytes of its IP payload), all with one IP identification."""
    src, dst, proto = str(IPv4Address(pkt[26:30])), str(IPv4Address(pkt[30:34])), pkt[23]
    payload, frags, at = pkt[34:], [], 0
    for size in (*sizes, len(payload) - sum(sizes)):
        more = 0x2000 if at + size < len(payload) else 0
        frags.append(_ip(src, dst, proto, payload[at : at + size], more | at // 8, ident=99))
        at += size
    return frags


def reassembled(frags: list[bytes]) -> bytes:
    """The datagram the fragments make, as one frame (header of the first)."""
    first = frags[0]
    body = b"".join(f[34:] for f in frags)
    return _ip(str(IPv4Address(first[26:30])), str(IPv4Address(first[30:34])), first[23], body)


def test_kernel_frag_needed_about_a_cluster_ip_flow_quotes_the_service(k, out):
    syn = ipv4_packet(CLIENT, VIP, "tcp", 46000, 80, "S", payload=b"x" * 40)
    fwd = run(k, "node-1", "netcc_from_container", syn).data_out
    backend = fields(fwd)
    related = verdict_count(k, "node-1", "ALLOW_RELATED", out)
    err = icmp_error(ROUTER, CLIENT, fwd)
    r = run(k, "node-1", "netcc_to_container", err)
    assert r.retval == TC_ACT_OK
    q = quote(r.data_out)
    # the client's socket knows client -> VIP:80; the router stays the sender
    assert (q["src"], q["dst"]) == (ROUTER, CLIENT)
    assert (q["qsrc"], q["qsport"], q["qdst"], q["qdport"]) == (CLIENT, 46000, VIP, 80)
    assert q["sums_ok"]
    # the quoted TCP checksum stays (nobody verifies it), as does the rest of the quote
    tcp_sum = slice(QUOTE + 20 + 16, QUOTE + 20 + 18)
    assert r.data_out[tcp_sum] == err[tcp_sum] and r.data_out[tcp_sum.stop :] == err[tcp_sum.stop :]
    assert verdict_count(k, "node-1", "ALLOW_RELATED", out) == related + 1
    # the MTU the router reported is left as is
    assert r.data_out[38:42] == err[38:42]
    assert backend["dst"] != VIP


def test_kernel_port_unreachable_from_a_udp_backend_comes_from_the_service(k, out):
    dgram = ipv4_packet(CLIENT, VIP, "udp", 5100, 53, payload=b"query")
    fwd = run(k, "node-1", "netcc_from_container", dgram).data_out
    backend = fields(fwd)
    assert (backend["dport"], backend["dst"] != VIP) == (5353, True)
    r = run(k, "node-1", "netcc_to_container", icmp_error(backend["dst"], CLIENT, fwd, code=3))
    assert r.retval == TC_ACT_OK
    q = quote(r.data_out)
    assert (q["src"], q["dst"]) == (VIP, CLIENT)
    assert (q["qsrc"], q["qsport"], q["qdst"], q["qdport"]) == (CLIENT, 5100, VIP, 53)
    assert q["sums_ok"]


def test_kernel_pod_reporting_a_service_reply_reaches_the_backend(k, out):
    dgram = ipv4_packet(CLIENT, VIP, "udp", 5101, 53)
    backend = fields(run(k, "node-1", "netcc_from_container", dgram).data_out)
    reply = ipv4_packet(backend["dst"], CLIENT, "udp", 5353, 5101, payload=b"answer")
    seen = run(k, "node-1", "netcc_to_container", reply).data_out
    assert fields(seen)["src"] == VIP
    # the client's socket is gone: it reports the reply it got, from VIP:53
    r = run(k, "node-1", "netcc_from_container", icmp_error(CLIENT, VIP, seen, code=3))
    assert r.retval == TC_ACT_OK
    q = quote(r.data_out)
    assert (q["src"], q["dst"]) == (CLIENT, backend["dst"])
    assert (q["qsrc"], q["qsport"], q["qdst"], q["qdport"]) == (backend["dst"], 5353, CLIENT, 5101)
    assert q["sums_ok"]


def test_kernel_icmp_errors_about_other_flows_are_untouched(k, out):
    direct = ipv4_packet(CLIENT, "10.244.2.20", "tcp", 46100, 8080, "S")
    assert run(k, "node-1", "netcc_from_container", direct).retval == TC_ACT_OK
    err = icmp_error(ROUTER, CLIENT, direct)
    r = run(k, "node-1", "netcc_to_container", err)
    assert r.retval == TC_ACT_OK and r.data_out == err
    # about a flow nobody sent: judged by policy as before (client's ingress: unisolated)
    stray = icmp_error(ROUTER, CLIENT, ipv4_packet(CLIENT, VIP, "tcp", 46101, 80, "S"))
    r = run(k, "node-1", "netcc_to_container", stray)
    assert r.data_out == stray


def test_kernel_fragments_of_a_datagram_to_a_cluster_ip_all_reach_the_backend(k, out):
    dgram = ipv4_packet(CLIENT, VIP, "udp", 5200, 53, payload=bytes(range(60)))
    sent = []
    for frag in fragments(dgram):
        r = run(k, "node-1", "netcc_from_container", frag)
        assert r.retval == TC_ACT_OK
        assert _csum(r.data_out[14:34]) == 0
        sent.append(r.data_out)
    backend = fields(sent[0])
    assert (backend["dport"], backend["sport"]) == (5353, 5200)
    assert {str(IPv4Address(f[30:34])) for f in sent} == {backend["dst"]}
    # later fragments: only the IP header changed; the datagram's checksum holds
    assert all(s[34:] == f[34:] for s, f in zip(sent[1:], fragments(dgram)[1:], strict=True))
    assert checksums_ok(reassembled(sent))
    # a fragmented reply: every fragment comes from the service again
    reply = ipv4_packet(backend["dst"], CLIENT, "udp", 5353, 5200, payload=bytes(range(50)))
    back = [run(k, "node-1", "netcc_to_container", f).data_out for f in fragments(reply)]
    assert {str(IPv4Address(f[26:30])) for f in back} == {VIP}
    assert fields(back[0])["sport"] == 53 and checksums_ok(reassembled(back))


def test_kernel_nodeport_fragments_are_translated_both_ways(k, out):
    seg = ipv4_packet(EXTERNAL, NODE1, "tcp", 5300, 30080, "S", payload=bytes(range(40)))
    sent = [run(k, "node-1", "netcc_from_uplink", f).data_out for f in fragments(seg)]
    assert {str(IPv4Address(f[30:34])) for f in sent} == {"10.244.1.20"}
    assert fields(sent[0])["dport"] == 8080 and checksums_ok(reassembled(sent))
    reply = ipv4_packet("10.244.1.20", EXTERNAL, "tcp", 8080, 5300, "SA", payload=bytes(50))
    back = [run(k, "node-1", "netcc_to_uplink", f).data_out for f in fragments(reply)]
    assert {str(IPv4Address(f[26:30])) for f in back} == {NODE1}
    assert fields(back[0])["sport"] == 30080 and checksums_ok(reassembled(back))


def test_kernel_nodeport_icmp_errors_quote_what_each_side_sent(k, out):
    syn = ipv4_packet(EXTERNAL, NODE1, "tcp", 5400, 30080, "S")
    assert fields(run(k, "node-1", "netcc_from_uplink", syn).data_out)["dst"] == "10.244.1.20"
    reply = ipv4_packet("10.244.1.20", EXTERNAL, "tcp", 8080, 5400, "SA", payload=b"y" * 30)
    left = run(k, "node-1", "netcc_to_uplink", reply).data_out
    # a router on the way to the client: fragmentation needed about node:30080 -> client
    r = run(k, "node-1", "netcc_from_uplink", icmp_error(ROUTER, NODE1, left))
    assert r.retval == TC_ACT_OK
    q = quote(r.data_out)
    assert (q["src"], q["dst"]) == (ROUTER, "10.244.1.20")
    assert (q["qsrc"], q["qsport"], q["qdst"], q["qdport"]) == ("10.244.1.20", 8080, EXTERNAL, 5400)
    assert q["sums_ok"]
    # the backend reporting the client's packet: from the node, about client -> node:30080
    translated = run(k, "node-1", "netcc_from_uplink", syn).data_out
    r = run(k, "node-1", "netcc_to_uplink", icmp_error("10.244.1.20", EXTERNAL, translated, 3))
    q = quote(r.data_out)
    assert (q["src"], q["dst"]) == (NODE1, EXTERNAL)
    assert (q["qsrc"], q["qsport"], q["qdst"], q["qdport"]) == (EXTERNAL, 5400, NODE1, 30080)
    assert q["sums_ok"]
