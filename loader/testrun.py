"""Crafted packets and BPF_PROG_TEST_RUN of tc programs."""

from __future__ import annotations

import ipaddress
import struct

from .libbpf import TestRun, prog_test_run

__all__ = [
    "TC_ACT_OK",
    "TC_ACT_REDIRECT",
    "TC_ACT_SHOT",
    "TC_ACT_UNSPEC",
    "TestRun",
    "arp_packet",
    "ipv4_packet",
    "ipv6_packet",
    "run_tc",
]

TC_ACT_UNSPEC = -1
TC_ACT_OK = 0
TC_ACT_SHOT = 2
TC_ACT_REDIRECT = 7

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
PROTOCOLS = {"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58, "sctp": 132}
TCP_FLAGS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20, "E": 0x40}
TCP_FLAGS["C"] = 0x80
SRC_MAC = bytes.fromhex("020000000001")
DST_MAC = bytes.fromhex("020000000002")


def _ether(ethertype: int, src: bytes = SRC_MAC, dst: bytes = DST_MAC) -> bytes:
    return dst + src + struct.pack("!H", ethertype)


def _csum(data: bytes) -> int:
    """Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _crc32c(data: bytes) -> int:
    """CRC32c (Castagnoli), the SCTP checksum."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return ~crc & 0xFFFFFFFF


def _proto_number(proto: int | str) -> int:
    if isinstance(proto, int):
        return proto
    try:
        return PROTOCOLS[proto.lower()]
    except KeyError:
        raise ValueError(f"unknown protocol {proto!r}; use one of {list(PROTOCOLS)}") from None


def _tcp_flags(flags: str) -> int:
    try:
        return sum(TCP_FLAGS[c] for c in set(flags.upper()))
    except KeyError:
        raise ValueError(f"bad TCP flags {flags!r}; letters from {''.join(TCP_FLAGS)}") from None


def _l4(
    proto: int,
    sport: int,
    dport: int,
    tcp_flags: str,
    payload: bytes,
    icmp_type: int,
    pseudo: bytes,
) -> bytes:
    """L4 header + payload with its checksum; `pseudo` is the IP pseudo-header without the
    length, which is appended here."""
    if proto == 6:
        hdr = struct.pack(
            "!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, _tcp_flags(tcp_flags), 65535, 0, 0
        )
        seg = hdr + payload
        ck = _csum(pseudo + struct.pack("!H", len(seg)) + seg)
        return seg[:16] + struct.pack("!H", ck) + seg[18:]
    if proto == 17:
        seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
        ck = _csum(pseudo + struct.pack("!H", len(seg)) + seg) or 0xFFFF
        return seg[:6] + struct.pack("!H", ck) + seg[8:]
    if proto == 132:
        seg = struct.pack("!HHII", sport, dport, 0, 0) + payload
        return seg[:8] + struct.pack("<I", _crc32c(seg)) + seg[12:]
    if proto in (1, 58):  # echo: identifier = sport, sequence = dport
        seg = struct.pack("!BBHHH", icmp_type, 0, 0, sport, dport) + payload
        ck = _csum((pseudo + struct.pack("!H", len(seg)) if proto == 58 else b"") + seg)
        return seg[:2] + struct.pack("!H", ck) + seg[4:]
    return payload


def ipv4_packet(
    src: str,
    dst: str,
    proto: int | str,
    sport: int = 0,
    dport: int = 0,
    tcp_flags: str = "S",
    payload: bytes = b"",
    frag_offset: int = 0,
    more_fragments: bool = False,
    icmp_type: int = 8,
    *,
    ttl: int = 64,
    ident: int = 1,
) -> bytes:
    """Ethernet + IPv4 (valid checksum) + TCP/UDP/SCTP/ICMP header with checksum + payload.

    `proto` is a number or tcp/udp/sctp/icmp; other numbers carry `payload` alone.
    `frag_offset` is the IP header field, in 8-byte units; a non-first fragment
    (frag_offset > 0) carries `payload` alone, as on the wire. For ICMP, `sport` and `dport`
    are the echo identifier and sequence number.
    """
    p = _proto_number(proto)
    s, d = ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed
    if frag_offset:
        body = payload
    else:
        body = _l4(p, sport, dport, tcp_flags, payload, icmp_type, s + d + bytes([0, p]))
    frag = (0x2000 if more_fragments else 0) | (frag_offset & 0x1FFF)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), ident, frag, ttl, p, 0, s, d)
    hdr = hdr[:10] + struct.pack("!H", _csum(hdr)) + hdr[12:]
    return _ether(ETH_P_IP) + hdr + body


def ipv6_packet(
    src: str,
    dst: str,
    proto: int | str,
    sport: int = 0,
    dport: int = 0,
    tcp_flags: str = "S",
    payload: bytes = b"",
    icmp_type: int = 128,
    *,
    hop_limit: int = 64,
) -> bytes:
    """Ethernet + IPv6 + TCP/UDP/SCTP/ICMPv6 ("icmp" means ICMPv6 here) + payload."""
    p = 58 if proto in ("icmp", "ICMP", 1) else _proto_number(proto)
    s, d = ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed
    # The ones' complement sum does not depend on word order, so the IPv6 pseudo-header
    # (32-bit length, 3 zeros, next header) sums like the IPv4 one.
    body = _l4(p, sport, dport, tcp_flags, payload, icmp_type, s + d + bytes([0, p]))
    hdr = struct.pack("!IHBB16s16s", 6 << 28, len(body), p, hop_limit, s, d)
    return _ether(ETH_P_IPV6) + hdr + body


def arp_packet(sender_ip: str = "10.0.0.1", target_ip: str = "10.0.0.2", op: int = 1) -> bytes:
    """Ethernet + ARP request (op 1) or reply (op 2)."""
    s, t = ipaddress.IPv4Address(sender_ip).packed, ipaddress.IPv4Address(target_ip).packed
    arp = struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, op, SRC_MAC, s, bytes(6), t)
    return _ether(ETH_P_ARP, dst=b"\xff" * 6) + arp


def run_tc(fd: int, pkt: bytes, repeat: int = 1) -> TestRun:
    """Run a tc (SCHED_CLS) program on a packet; `retval` is a TC_ACT_* verdict."""
    return prog_test_run(fd, pkt, repeat=repeat)
