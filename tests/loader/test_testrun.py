"""netcc.loader.testrun: crafted packets are well formed (no kernel needed; `run_tc` is
test_libbpf.py's)."""

from __future__ import annotations

import struct

import pytest

from netcc.loader import testrun
from netcc.loader.testrun import (
    arp_packet,
    ipv4_packet,
    ipv6_packet,
)

ETH = 14


def pseudo_sum_ok(src: bytes, dst: bytes, proto: int, seg: bytes) -> bool:
    """The L4 checksum verifies: the sum over pseudo-header and segment is 0."""
    return testrun._csum(src + dst + bytes([0, proto]) + struct.pack("!H", len(seg)) + seg) == 0


def test_checksum_vectors() -> None:
    hdr = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    assert testrun._csum(hdr) == 0xB861  # RFC 1071 example header
    assert testrun._crc32c(b"123456789") == 0xE3069283  # CRC-32C check value


@pytest.mark.parametrize(("proto", "number", "l4_len"), [("tcp", 6, 20), ("udp", 17, 8)])
def test_ipv4_tcp_udp(proto: str, number: int, l4_len: int) -> None:
    pkt = ipv4_packet("10.0.0.1", "10.0.0.2", proto, 1234, 80, payload=b"hello")
    assert struct.unpack("!H", pkt[12:14])[0] == 0x0800
    ip = pkt[ETH : ETH + 20]
    assert ip[0] == 0x45 and ip[9] == number and testrun._csum(ip) == 0
    assert struct.unpack("!H", ip[2:4])[0] == 20 + l4_len + 5 == len(pkt) - ETH
    seg = pkt[ETH + 20 :]
    assert struct.unpack("!HH", seg[:4]) == (1234, 80)
    assert pseudo_sum_ok(ip[12:16], ip[16:20], number, seg)
    assert seg.endswith(b"hello")


def test_tcp_flags() -> None:
    flags = lambda f: ipv4_packet("1.1.1.1", "2.2.2.2", "tcp", 1, 2, tcp_flags=f)[ETH + 33]  # noqa: E731
    assert flags("S") == 0x02 and flags("SA") == 0x12 and flags("FA") == 0x11 and flags("") == 0
    assert flags("r") == 0x04
    with pytest.raises(ValueError, match="bad TCP flags"):
        flags("X")


def test_icmp_sctp_other() -> None:
    icmp = ipv4_packet("10.0.0.1", "10.0.0.2", "icmp", icmp_type=0)
    assert icmp[ETH + 9] == 1 and icmp[ETH + 20] == 0 and testrun._csum(icmp[ETH + 20 :]) == 0
    sctp = ipv4_packet("10.0.0.1", "10.0.0.2", "sctp", 5000, 6000)
    seg = sctp[ETH + 20 :]
    assert sctp[ETH + 9] == 132 and len(seg) == 12
    assert struct.unpack("<I", seg[8:12])[0] == testrun._crc32c(seg[:8] + bytes(4))
    gre = ipv4_packet("10.0.0.1", "10.0.0.2", 47, payload=b"xyz")
    assert gre[ETH + 9] == 47 and gre[ETH + 20 :] == b"xyz"
    with pytest.raises(ValueError, match="unknown protocol"):
        ipv4_packet("10.0.0.1", "10.0.0.2", "quic")


def test_fragments() -> None:
    first = ipv4_packet("10.0.0.1", "10.0.0.2", "udp", 1, 2, more_fragments=True)
    assert struct.unpack("!H", first[ETH + 6 : ETH + 8])[0] == 0x2000
    later = ipv4_packet("10.0.0.1", "10.0.0.2", "udp", 1, 2, payload=b"a" * 8, frag_offset=3)
    assert struct.unpack("!H", later[ETH + 6 : ETH + 8])[0] == 3
    assert later[ETH + 20 :] == b"a" * 8  # no UDP header in a non-first fragment
    assert testrun._csum(later[ETH : ETH + 20]) == 0


def test_ipv6_and_arp() -> None:
    pkt = ipv6_packet("fd00::1", "fd00::2", "tcp", 1, 443)
    assert struct.unpack("!H", pkt[12:14])[0] == 0x86DD
    ip6 = pkt[ETH : ETH + 40]
    assert ip6[0] >> 4 == 6 and ip6[6] == 6 and struct.unpack("!H", ip6[4:6])[0] == 20
    assert pseudo_sum_ok(ip6[8:24], ip6[24:40], 6, pkt[ETH + 40 :])
    icmp6 = ipv6_packet("fd00::1", "fd00::2", "icmp")
    assert icmp6[ETH + 6] == 58 and icmp6[ETH + 40] == 128
    assert pseudo_sum_ok(icmp6[ETH + 8 : ETH + 24], icmp6[ETH + 24 : ETH + 40], 58, icmp6[54:])
    arp = arp_packet("10.0.0.1", "10.0.0.2")
    assert len(arp) == ETH + 28 and struct.unpack("!H", arp[12:14])[0] == 0x0806
