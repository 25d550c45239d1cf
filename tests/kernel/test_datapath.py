"""Datapath behaviour beyond the policy verdict: parsing, spoofing, state, counters, loading."""

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from kernelenv import compile_to

from netcc.loader.kernel_cluster import KernelCluster, ct_verdict
from netcc.loader.testrun import arp_packet, ipv4_packet, ipv6_packet

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shop.yaml"
FRONTEND, CART, CACHE = "10.244.1.10", "10.244.2.10", "10.244.2.11"
PROM = "10.244.3.20"


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return compile_to(EXAMPLE.read_bytes(), tmp_path_factory.mktemp("shop") / "out")


@pytest.fixture
def k(out):
    with KernelCluster(out) as cluster:
        yield cluster


def verdict_names(out: Path) -> dict[str, int]:
    doc = json.loads((out / "verdicts.json").read_text())
    return {v["name"]: v["number"] for v in doc["verdicts"]}


def run(k, node, program, pkt):
    return k.run(node, program, pkt)


def test_every_object_loads_with_bpftool(out):
    pin = Path("/sys/fs/bpf") / f"netcc-test-{uuid.uuid4().hex[:8]}"
    try:
        subprocess.run(
            ["bpftool", "prog", "loadall", str(out / "bpf" / "datapath.o"), str(pin)],
            check=True,
            capture_output=True,
        )
        assert sorted(p.name for p in pin.iterdir()) == [
            "netcc_from_container",
            "netcc_from_uplink",
            "netcc_to_container",
            "netcc_to_uplink",
        ]
    finally:
        shutil.rmtree(pin, ignore_errors=True)


def test_verifier_figures_reported(k):
    for dp in k.nodes.values():
        for name, info in dp.programs().items():
            assert info["verified_insns"] > 0, name


def test_arp_and_neighbour_discovery_pass(k):
    assert run(k, "node-1", "netcc_to_container", arp_packet(CART, FRONTEND))
    nd = ipv6_packet("fe80::1", "ff02::1", "icmp", icmp_type=135)
    assert run(k, "node-1", "netcc_to_container", nd)


def test_ipv6_data_is_dropped(k):
    assert not run(
        k, "node-1", "netcc_to_container", ipv6_packet("fe80::1", "fe80::2", "tcp", dport=80)
    )


# BPF_PROG_TEST_RUN itself refuses frames shorter than an IPv4 header (EINVAL), so the
# truncations tested start after it: no L4 header at all, or part of one.
@pytest.mark.parametrize(("proto", "cut"), [("tcp", 34), ("tcp", 44), ("udp", 37), ("icmp", 38)])
def test_truncated_l4_headers_are_dropped(k, proto, cut):
    pkt = ipv4_packet("192.0.2.7", FRONTEND, proto, sport=1, dport=8080)
    assert run(k, "node-1", "netcc_to_container", pkt) == (proto == "tcp")
    assert not run(k, "node-1", "netcc_to_container", pkt[:cut])


def test_bad_ihl_is_dropped(k):
    pkt = bytearray(ipv4_packet("192.0.2.7", FRONTEND, "tcp", sport=1, dport=8080))
    pkt[14] = 0x44  # ihl 4: shorter than an IPv4 header
    assert not run(k, "node-1", "netcc_to_container", bytes(pkt))


def test_spoofed_source_is_dropped(k, out):
    names = verdict_names(out)
    before = k.nodes["node-1"].stats()
    pkt = ipv4_packet("10.244.1.99", "192.0.2.7", "tcp", sport=1, dport=80)
    assert not run(k, "node-1", "netcc_from_container", pkt)
    after = k.nodes["node-1"].stats()
    spoofed = names["DROP_SPOOFED"]
    assert after[spoofed][0] == before.get(spoofed, (0, 0))[0] + 1


def test_packet_for_a_pod_of_another_node_is_dropped(k):
    pkt = ipv4_packet("192.0.2.7", CART, "tcp", sport=1, dport=7000)
    assert not run(k, "node-1", "netcc_to_container", pkt)


def test_denied_flow_leaves_no_state(k):
    assert not k.allows(FRONTEND, CACHE, 6, 41000, 6379)
    assert ct_verdict(k, "node-1", FRONTEND, CACHE, 41000, 6379, 6) is None
    # and the "reply" direction is judged as a new flow: cache may not open it
    assert not k.allows(CACHE, FRONTEND, 6, 6379, 41000, tcp_flags="SA")


def test_reply_passes_only_for_its_connection(k):
    assert k.allows(FRONTEND, CART, 6, 41001, 7000)
    assert k.allows(CART, FRONTEND, 6, 7000, 41001, tcp_flags="SA")
    assert not k.allows(CART, FRONTEND, 6, 7000, 41002, tcp_flags="SA")  # another port


def test_syn_after_close_is_judged_again(k, out):
    assert k.allows(FRONTEND, CART, 6, 41003, 7000)
    assert k.allows(FRONTEND, CART, 6, 41003, 7000, tcp_flags="R")
    # A fresh SYN on the closing connection is a new connection: policy is asked again and
    # conntrack is rewritten with the rule's verdict (not left as an established entry).
    assert k.allows(FRONTEND, CART, 6, 41003, 7000)
    assert ct_verdict(k, "node-1", FRONTEND, CART, 41003, 7000, 6) == verdict_names(out)["RULE_39"]


def test_udp_reply_and_icmp_echo(k):
    # prometheus' egress is open, so a UDP and an ICMP flow to the cart's ingress decide
    assert not k.allows(PROM, CART, 17, 5000, 9100)
    assert k.allows(PROM, CART, 6, 5001, 9100)
    assert k.allows(CART, PROM, 6, 9100, 5001, tcp_flags="A")


def test_fragments_follow_their_first_fragment(k):
    # Only the first fragment carries ports; the datapath remembers them per datagram, so the
    # rest of an allowed datagram passes and the rest of a denied one does not.
    ok_first = ipv4_packet(
        "192.0.2.7", FRONTEND, "tcp", sport=7, dport=8080, ident=77, more_fragments=True
    )
    ok_later = ipv4_packet("192.0.2.7", FRONTEND, "tcp", payload=b"x" * 16, frag_offset=3, ident=77)
    bad_first = ipv4_packet(
        "192.0.2.7", FRONTEND, "udp", sport=7, dport=8080, ident=78, more_fragments=True
    )
    bad_later = ipv4_packet(
        "192.0.2.7", FRONTEND, "udp", payload=b"x" * 16, frag_offset=3, ident=78
    )
    orphan = ipv4_packet("192.0.2.7", FRONTEND, "tcp", payload=b"x" * 16, frag_offset=3, ident=79)
    assert run(k, "node-1", "netcc_to_container", ok_first)
    assert run(k, "node-1", "netcc_to_container", ok_later)
    assert not run(k, "node-1", "netcc_to_container", bad_first)  # UDP/8080 is not allowed
    assert not run(k, "node-1", "netcc_to_container", bad_later)
    assert not run(k, "node-1", "netcc_to_container", orphan)


def _icmp_error(router: str, to: str, quoted: bytes) -> bytes:
    """Destination unreachable (fragmentation needed) quoting `quoted`'s IP header + 8 bytes."""
    return ipv4_packet(router, to, "icmp", icmp_type=3, payload=quoted[14 : 14 + 28])


def test_icmp_errors_about_tracked_connections_pass(k, out):
    related = verdict_names(out)["ALLOW_RELATED"]
    # frontend's ingress admits only TCP/http, so ICMP is normally denied ...
    assert not k.allows("192.0.2.1", FRONTEND, 1, 0, 0)
    sent = ipv4_packet(FRONTEND, CART, "tcp", sport=41100, dport=7000)
    error = _icmp_error("192.0.2.1", FRONTEND, sent)
    assert not run(k, "node-1", "netcc_to_container", error)  # no connection yet
    # ... but an error about frontend's own allowed connection is related to it.
    assert k.allows(FRONTEND, CART, 6, 41100, 7000)
    before = k.nodes["node-1"].stats().get(related, (0, 0))[0]
    assert run(k, "node-1", "netcc_to_container", error)
    assert k.nodes["node-1"].stats()[related][0] == before + 1
    # An error quoting some other connection stays denied.
    other = ipv4_packet(FRONTEND, CART, "tcp", sport=41101, dport=7000)
    assert not run(k, "node-1", "netcc_to_container", _icmp_error("192.0.2.1", FRONTEND, other))


def test_counters_count_bytes(k, out):
    rule = verdict_names(out)["RULE_40"]
    before = k.nodes["node-1"].stats().get(rule, (0, 0))
    pkt = ipv4_packet("192.0.2.8", FRONTEND, "tcp", sport=2, dport=8080)
    assert run(k, "node-1", "netcc_to_container", pkt)
    after = k.nodes["node-1"].stats()[rule]
    assert after == (before[0] + 1, before[1] + len(pkt))
