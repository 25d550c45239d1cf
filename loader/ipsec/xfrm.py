"""A small NETLINK_XFRM client: the kernel's IPsec states (SAD) and policies (SPD).

pyroute2 0.9 has no XFRM family, so this speaks it directly: a raw `AF_NETLINK` socket of
protocol NETLINK_XFRM (6), the structures of `include/uapi/linux/xfrm.h` packed with `struct`
as x86_64 (and every LP64 ABI) lays them out, checked against the header in the tests:

    struct xfrm_selector         56   daddr, saddr, ports and masks, family, prefixes, proto,
                                      ifindex, user
    struct xfrm_id               24   daddr, spi (network order), proto
    struct xfrm_usersa_info     224   sel, id, saddr, lft (8 x u64), curlft (4 x u64),
                                      stats (3 x u32), seq, reqid, family, mode, replay_window,
                                      flags, 7 bytes of padding to the u64 alignment
    struct xfrm_usersa_id        24   daddr, spi, family, proto
    struct xfrm_userpolicy_info 168   sel, lft, curlft, priority, index, dir, action, flags,
                                      share, 4 bytes of padding
    struct xfrm_userpolicy_id    64   sel, index, dir
    struct xfrm_user_tmpl        64   id, family, saddr, reqid, mode, share, optional,
                                      aalgos, ealgos, calgos
    struct xfrm_algo_aead        72+  alg_name[64], key and ICV length in bits, the key
    struct xfrm_replay_state_esn 24+  bmp_len (u32 words), oseq, seq, oseq_hi, seq_hi,
                                      replay_window, the bitmap

Messages: XFRM_MSG_NEWSA / UPDSA (`add_state`), DELSA (`delete_state`), GETSA with NLM_F_DUMP
(`states`); NEWPOLICY / UPDPOLICY (`add_policy`), DELPOLICY (`delete_policy`, by index),
GETPOLICY with NLM_F_DUMP (`policies`). Attributes used: XFRMA_ALG_AEAD, XFRMA_REPLAY_ESN_VAL
(64-bit extended sequence numbers, XFRM_STATE_ESN, with the replay window), XFRMA_TMPL,
XFRMA_SRCADDR, XFRMA_MARK; dumps also read XFRMA_POLICY_TYPE, XFRMA_IF_ID and XFRMA_REPLAY_VAL,
and note which other attributes a state has (`XfrmState.extras`) so that a state carrying
anything this client does not model never compares equal to one it would install.

Keys travel only in XFRM_MSG_NEWSA/UPDSA requests over this socket, never on a command line.
The socket asks for capped acknowledgements (NETLINK_CAP_ACK): the kernel's error replies do
not echo a request, so no key comes back in one. A state's key, as a dump returns it, is kept
in memory to compare (`AeadAlgo.key`, left out of repr) and written nowhere; `XfrmError`
messages name the operation, the SA or policy and the kernel's reason, never a key.

Everything works in the network namespace of the thread that opens the socket (`XfrmSocket`),
as the kernel ties a netlink socket to its creator's namespace. The error counters of that
namespace are `/proc/thread-self/net/xfrm_stat` (`xfrm_stats`; `/proc/net` is the main
thread's namespace, which differs after setns(2) in another thread).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

NETLINK_XFRM = 6
SOL_NETLINK = 270
NETLINK_CAP_ACK, NETLINK_EXT_ACK = 10, 11
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_DUMP = 0x300
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200
NLMSGERR_ATTR_MSG = 1

XFRM_MSG_NEWSA, XFRM_MSG_DELSA, XFRM_MSG_GETSA = 0x10, 0x11, 0x12
XFRM_MSG_NEWPOLICY, XFRM_MSG_DELPOLICY, XFRM_MSG_GETPOLICY = 0x13, 0x14, 0x15
XFRM_MSG_UPDPOLICY, XFRM_MSG_UPDSA = 0x19, 0x1A

XFRMA_ALG_AUTH, XFRMA_ALG_CRYPT, XFRMA_ALG_COMP, XFRMA_ENCAP, XFRMA_TMPL = 1, 2, 3, 4, 5
XFRMA_SEC_CTX, XFRMA_REPLAY_VAL = 8, 10
XFRMA_SRCADDR, XFRMA_COADDR, XFRMA_POLICY_TYPE, XFRMA_ALG_AEAD = 13, 14, 16, 18
XFRMA_ALG_AUTH_TRUNC, XFRMA_MARK, XFRMA_TFCPAD, XFRMA_REPLAY_ESN_VAL = 20, 21, 22, 23
XFRMA_OFFLOAD_DEV, XFRMA_SET_MARK, XFRMA_SET_MARK_MASK, XFRMA_IF_ID = 28, 29, 30, 31
# Attributes of a state that change what it does and that this client never sets: a state
# of netcc's that has one of them is not the state netcc would install.
STATE_EXTRAS = (
    XFRMA_ALG_AUTH,
    XFRMA_ALG_CRYPT,
    XFRMA_ALG_COMP,
    XFRMA_ENCAP,
    XFRMA_SEC_CTX,
    XFRMA_COADDR,
    XFRMA_ALG_AUTH_TRUNC,
    XFRMA_TFCPAD,
    XFRMA_OFFLOAD_DEV,
    XFRMA_SET_MARK,
    XFRMA_SET_MARK_MASK,
)

AF_INET, AF_INET6 = socket.AF_INET, socket.AF_INET6
IPPROTO_ESP = 50
XFRM_MODE_TRANSPORT, XFRM_MODE_TUNNEL = 0, 1
XFRM_STATE_ESN = 128
XFRM_POLICY_IN, XFRM_POLICY_OUT, XFRM_POLICY_FWD = 0, 1, 2
XFRM_POLICY_ALLOW, XFRM_POLICY_BLOCK = 0, 1
XFRM_POLICY_TYPE_MAIN = 0
XFRM_INF = (1 << 64) - 1
ALL_ALGOS = 0xFFFFFFFF
REPLAY_ESN_MAX = 4096  # XFRMA_REPLAY_ESN_MAX: bits of the replay bitmap
ALG_NAME_LEN = 64
DIRECTIONS = {"in": XFRM_POLICY_IN, "out": XFRM_POLICY_OUT, "fwd": XFRM_POLICY_FWD}
DIRECTION_NAMES = {v: k for k, v in DIRECTIONS.items()}

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_NLATTR = struct.Struct("=HH")  # len, type
_SELECTOR = struct.Struct("=16s16s8sHBBB3xiI")  # 56: the four be16 ports as 8 bytes
_PORTS = struct.Struct(">4H")  # dport, dport_mask, sport, sport_mask
_ID = struct.Struct("=16s4sB3x")  # 24: daddr, spi (network order), proto
_LFT_CFG = struct.Struct("=8Q")  # 64
_LFT_CUR = struct.Struct("=4Q")  # 32
_STATS = struct.Struct("=3I")  # 12
_SA_TAIL = struct.Struct("=IIHBBB7x")  # 20: seq, reqid, family, mode, replay_window, flags
_USERSA_ID = struct.Struct("=16s4sHBx")  # 24
_POLICY_TAIL = struct.Struct("=IIBBBB4x")  # 16: priority, index, dir, action, flags, share
_POLICY_ID_TAIL = struct.Struct("=IB3x")  # 8: index, dir
_TMPL = struct.Struct("=24sH2x16sIBBBxIII")  # 64
_AEAD_HEAD = struct.Struct("=64sII")  # 72: name, key bits, ICV bits
_REPLAY_ESN = struct.Struct("=6I")  # 24 + the bitmap
_REPLAY = struct.Struct("=3I")  # xfrm_replay_state: oseq, seq, bitmap
_MARK = struct.Struct("=II")
_U32 = struct.Struct("=I")

SELECTOR_SIZE = _SELECTOR.size
USERSA_INFO_SIZE = _SELECTOR.size + _ID.size + 16 + 64 + 32 + 12 + _SA_TAIL.size
USERPOLICY_INFO_SIZE = _SELECTOR.size + 64 + 32 + _POLICY_TAIL.size
USERPOLICY_ID_SIZE = _SELECTOR.size + _POLICY_ID_TAIL.size
assert USERSA_INFO_SIZE == 224 and USERPOLICY_INFO_SIZE == 168 and _TMPL.size == 64
assert USERPOLICY_ID_SIZE == 64 and _USERSA_ID.size == 24 and _AEAD_HEAD.size == 72


class XfrmError(OSError):
    """The kernel refused an XFRM request, or its reply made no sense. `errno` is the
    kernel's; the message names the request and the kernel's reason, never a key."""

    def __str__(self) -> str:
        return str(self.strerror) if self.strerror else super().__str__()


# --- values ----------------------------------------------------------------------------------


def _addr(text: str, family: int) -> bytes:
    """xfrm_address_t: an IPv4 address in the first 4 bytes, an IPv6 one in all 16."""
    if family == AF_INET6:
        return IPv6Address(text).packed
    return IPv4Address(text).packed.ljust(16, b"\0")


def _addr_text(raw: bytes, family: int) -> str:
    if family == AF_INET6:
        return str(IPv6Address(raw[:16]))
    return str(IPv4Address(raw[:4]))


def _prefix(cidr: str) -> tuple[str, int]:
    address, _, length = cidr.partition("/")
    return address, int(length) if length else (128 if ":" in address else 32)


@dataclass(frozen=True)
class Mark:
    value: int
    mask: int


@dataclass(frozen=True)
class Selector:
    """struct xfrm_selector: which inner packets. `src`/`dst` are CIDRs as `ADDRESS/LENGTH`."""

    src: str
    dst: str
    proto: int = 0  # any
    sport: int = 0
    sport_mask: int = 0
    dport: int = 0
    dport_mask: int = 0
    family: int = AF_INET
    ifindex: int = 0
    user: int = 0

    def pack(self) -> bytes:
        (saddr, plen_s), (daddr, plen_d) = _prefix(self.src), _prefix(self.dst)
        fam = self.family
        ports = _PORTS.pack(self.dport, self.dport_mask, self.sport, self.sport_mask)
        return _SELECTOR.pack(
            _addr(daddr, fam),
            _addr(saddr, fam),
            ports,
            fam,
            plen_d,
            plen_s,
            self.proto,
            self.ifindex,
            self.user,
        )

    @classmethod
    def unpack(cls, raw: bytes) -> Selector:
        daddr, saddr, ports, fam, plen_d, plen_s, proto, ifindex, user = _SELECTOR.unpack(
            raw[: _SELECTOR.size]
        )
        dport, dmask, sport, smask = _PORTS.unpack(ports)
        return cls(
            src=f"{_addr_text(saddr, fam)}/{plen_s}",
            dst=f"{_addr_text(daddr, fam)}/{plen_d}",
            proto=proto,
            sport=sport,
            sport_mask=smask,
            dport=dport,
            dport_mask=dmask,
            family=fam,
            ifindex=ifindex,
            user=user,
        )


@dataclass(frozen=True)
class AeadAlgo:
    """XFRMA_ALG_AEAD. `key` is the key material (AES key and salt for rfc4106): in memory
    only, never in repr, never in a message."""

    name: str
    icv_bits: int
    key: bytes = field(repr=False)

    def pack(self) -> bytes:
        name = self.name.encode()
        if len(name) >= ALG_NAME_LEN:
            raise XfrmError(errno.EINVAL, f"algorithm name {self.name!r} too long")
        return _AEAD_HEAD.pack(name, len(self.key) * 8, self.icv_bits) + self.key

    @classmethod
    def unpack(cls, raw: bytes) -> AeadAlgo:
        name, key_bits, icv_bits = _AEAD_HEAD.unpack(raw[: _AEAD_HEAD.size])
        key = raw[_AEAD_HEAD.size : _AEAD_HEAD.size + (key_bits + 7) // 8]
        return cls(name.split(b"\0", 1)[0].decode(errors="replace"), icv_bits, key)


@dataclass(frozen=True)
class StateCounters:
    """What a dump says a state did: its lifetime's current counters, the sequence numbers
    (64-bit with ESN: `oseq_hi << 32 | oseq`), and its error statistics."""

    bytes: int = 0
    packets: int = 0
    add_time: int = 0
    use_time: int = 0
    oseq: int = 0  # last sequence number sent (64-bit with ESN)
    seq: int = 0  # highest sequence number received (64-bit with ESN)
    replay_window_errors: int = 0  # stats.replay_window: packets outside the window
    replay_errors: int = 0  # stats.replay: replayed packets
    integrity_failed: int = 0  # stats.integrity_failed: ICV check failed

    def to_json(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class XfrmState:
    """One security association (struct xfrm_usersa_info and its attributes).

    Equality compares what the state does (addresses, SPI, selector, algorithm and key,
    replay window, flags, mark, extras), not its counters."""

    src: str  # outer addresses
    dst: str
    spi: int
    reqid: int
    selector: Selector
    aead: AeadAlgo | None
    replay_window: int  # the ESN window with XFRM_STATE_ESN, else usersa_info.replay_window
    flags: int = XFRM_STATE_ESN
    proto: int = IPPROTO_ESP
    mode: int = XFRM_MODE_TUNNEL
    family: int = AF_INET
    mark: Mark | None = None
    if_id: int = 0
    extras: tuple[int, ...] = ()  # attribute types of STATE_EXTRAS the state has
    counters: StateCounters | None = field(default=None, compare=False)

    def name(self) -> str:
        """`192.168.77.11 -> 192.168.77.12 spi 0x01000100`: no key."""
        return f"{self.src} -> {self.dst} spi 0x{self.spi:08x}"


@dataclass(frozen=True)
class Template:
    """struct xfrm_user_tmpl: the state a policy's packets go through (`spi` 0: any)."""

    src: str
    dst: str
    spi: int
    reqid: int
    optional: int = 0  # 1: "level use", the packet may also come without this transform
    proto: int = IPPROTO_ESP
    mode: int = XFRM_MODE_TUNNEL
    family: int = AF_INET
    share: int = 0
    aalgos: int = ALL_ALGOS
    ealgos: int = ALL_ALGOS
    calgos: int = ALL_ALGOS

    def pack(self) -> bytes:
        ident = _ID.pack(_addr(self.dst, self.family), self.spi.to_bytes(4, "big"), self.proto)
        return _TMPL.pack(
            ident,
            self.family,
            _addr(self.src, self.family),
            self.reqid,
            self.mode,
            self.share,
            self.optional,
            self.aalgos,
            self.ealgos,
            self.calgos,
        )

    @classmethod
    def unpack(cls, raw: bytes) -> Template:
        ident, fam, saddr, reqid, mode, share, optional, aalgos, ealgos, calgos = _TMPL.unpack(
            raw[: _TMPL.size]
        )
        daddr, spi, proto = _ID.unpack(ident)
        return cls(
            src=_addr_text(saddr, fam),
            dst=_addr_text(daddr, fam),
            spi=int.from_bytes(spi, "big"),
            reqid=reqid,
            optional=optional,
            proto=proto,
            mode=mode,
            family=fam,
            share=share,
            aalgos=aalgos,
            ealgos=ealgos,
            calgos=calgos,
        )


@dataclass(frozen=True)
class XfrmPolicy:
    """One policy (struct xfrm_userpolicy_info and its templates). Equality leaves out the
    kernel's index, which names it, and its counters."""

    dir: int  # XFRM_POLICY_IN / OUT / FWD
    selector: Selector
    priority: int
    templates: tuple[Template, ...]
    action: int = XFRM_POLICY_ALLOW
    flags: int = 0
    ptype: int = XFRM_POLICY_TYPE_MAIN
    mark: Mark | None = None
    if_id: int = 0
    index: int = field(default=0, compare=False)
    use_time: int = field(default=0, compare=False)

    def name(self) -> str:
        d = DIRECTION_NAMES.get(self.dir, str(self.dir))
        return f"policy {d} {self.selector.src} -> {self.selector.dst}"


# --- packing messages ------------------------------------------------------------------------


def _attr(kind: int, payload: bytes) -> bytes:
    length = _NLATTR.size + len(payload)
    return _NLATTR.pack(length, kind) + payload + b"\0" * (-length % 4)


def _attrs(raw: bytes) -> Iterator[tuple[int, bytes]]:
    """The (type, payload) of each netlink attribute in `raw` (flags bits cleared)."""
    offset = 0
    while offset + _NLATTR.size <= len(raw):
        length, kind = _NLATTR.unpack_from(raw, offset)
        if length < _NLATTR.size or offset + length > len(raw):
            raise XfrmError(errno.EBADMSG, "XFRM reply: a malformed attribute")
        yield kind & 0x3FFF, raw[offset + _NLATTR.size : offset + length]
        offset += (length + 3) & ~3


def _unlimited_lifetime() -> bytes:
    """struct xfrm_lifetime_cfg without limits, as ip-xfrm(8) sets it: byte and packet limits
    XFRM_INF, time limits 0. (A time limit of XFRM_INF is not "never": the kernel reads the
    u64 as a signed number of seconds, -1, and expires the state or policy at its first timer
    tick, a second after it was added.)"""
    return _LFT_CFG.pack(XFRM_INF, XFRM_INF, XFRM_INF, XFRM_INF, 0, 0, 0, 0)


def replay_esn(window: int) -> bytes:
    """XFRMA_REPLAY_ESN_VAL for a new state: the window and an empty bitmap of
    ceil(window / 32) words."""
    if not 0 < window <= REPLAY_ESN_MAX:
        raise XfrmError(errno.EINVAL, f"replay window {window}: expected 1-{REPLAY_ESN_MAX}")
    words = (window + 31) // 32
    return _REPLAY_ESN.pack(words, 0, 0, 0, 0, window) + b"\0" * (4 * words)


def usersa_info(state: XfrmState) -> bytes:
    """struct xfrm_usersa_info of a state to add (224 bytes). With ESN the window goes in
    XFRMA_REPLAY_ESN_VAL and this struct's replay_window must be 0."""
    ident = _ID.pack(_addr(state.dst, state.family), state.spi.to_bytes(4, "big"), state.proto)
    window = 0 if state.flags & XFRM_STATE_ESN else state.replay_window
    return b"".join(
        (
            state.selector.pack(),
            ident,
            _addr(state.src, state.family),
            _unlimited_lifetime(),
            _LFT_CUR.pack(0, 0, 0, 0),
            _STATS.pack(0, 0, 0),
            _SA_TAIL.pack(0, state.reqid, state.family, state.mode, window, state.flags),
        )
    )


def state_message(state: XfrmState) -> bytes:
    """The payload of XFRM_MSG_NEWSA / UPDSA: usersa_info, the AEAD with its key, the ESN
    replay state, the mark if any."""
    if state.aead is None:
        raise XfrmError(errno.EINVAL, f"{state.name()}: no AEAD algorithm")
    body = usersa_info(state) + _attr(XFRMA_ALG_AEAD, state.aead.pack())
    if state.flags & XFRM_STATE_ESN:
        body += _attr(XFRMA_REPLAY_ESN_VAL, replay_esn(state.replay_window))
    if state.mark is not None:
        body += _attr(XFRMA_MARK, _MARK.pack(state.mark.value, state.mark.mask))
    return body


def usersa_id(dst: str, spi: int, proto: int = IPPROTO_ESP, family: int = AF_INET) -> bytes:
    """struct xfrm_usersa_id (24 bytes): names a state by (daddr, spi, proto)."""
    return _USERSA_ID.pack(_addr(dst, family), spi.to_bytes(4, "big"), family, proto)


def delete_state_message(state: XfrmState) -> bytes:
    body = usersa_id(state.dst, state.spi, state.proto, state.family)
    body += _attr(XFRMA_SRCADDR, _addr(state.src, state.family))
    if state.mark is not None:
        body += _attr(XFRMA_MARK, _MARK.pack(state.mark.value, state.mark.mask))
    return body


def userpolicy_info(policy: XfrmPolicy) -> bytes:
    """struct xfrm_userpolicy_info of a policy to add (168 bytes; index 0: the kernel's)."""
    return b"".join(
        (
            policy.selector.pack(),
            _unlimited_lifetime(),
            _LFT_CUR.pack(0, 0, 0, 0),
            _POLICY_TAIL.pack(policy.priority, 0, policy.dir, policy.action, policy.flags, 0),
        )
    )


def policy_message(policy: XfrmPolicy) -> bytes:
    """The payload of XFRM_MSG_NEWPOLICY / UPDPOLICY: the policy and its templates."""
    body = userpolicy_info(policy)
    if policy.templates:
        body += _attr(XFRMA_TMPL, b"".join(t.pack() for t in policy.templates))
    if policy.mark is not None:
        body += _attr(XFRMA_MARK, _MARK.pack(policy.mark.value, policy.mark.mask))
    return body


def delete_policy_message(policy: XfrmPolicy) -> bytes:
    """struct xfrm_userpolicy_id naming the policy by its kernel index (and direction)."""
    if not policy.index:
        raise XfrmError(errno.EINVAL, f"{policy.name()}: no kernel index to delete it by")
    body = policy.selector.pack() + _POLICY_ID_TAIL.pack(policy.index, policy.dir)
    if policy.mark is not None:
        body += _attr(XFRMA_MARK, _MARK.pack(policy.mark.value, policy.mark.mask))
    return body


# --- unpacking dumps -------------------------------------------------------------------------


def parse_state(raw: bytes) -> XfrmState:
    """A state from the payload of an XFRM_MSG_NEWSA message (a dump's entry)."""
    if len(raw) < USERSA_INFO_SIZE:
        raise XfrmError(errno.EBADMSG, "XFRM reply: a state shorter than xfrm_usersa_info")
    o = 0
    sel = Selector.unpack(raw[o : o + _SELECTOR.size])
    o += _SELECTOR.size
    daddr, spi, proto = _ID.unpack_from(raw, o)
    o += _ID.size
    saddr = raw[o : o + 16]
    o += 16 + _LFT_CFG.size
    cur_bytes, cur_packets, add_time, use_time = _LFT_CUR.unpack_from(raw, o)
    o += _LFT_CUR.size
    st_window, st_replay, st_integrity = _STATS.unpack_from(raw, o)
    o += _STATS.size
    _seq, reqid, family, mode, window, flags = _SA_TAIL.unpack_from(raw, o)
    aead, mark, if_id, extras = None, None, 0, set()
    oseq = seq = 0
    for kind, payload in _attrs(raw[USERSA_INFO_SIZE:]):
        if kind == XFRMA_ALG_AEAD:
            aead = AeadAlgo.unpack(payload)
        elif kind == XFRMA_REPLAY_ESN_VAL:
            _bmp, lo_out, lo_in, hi_out, hi_in, esn_window = _REPLAY_ESN.unpack_from(payload)
            oseq, seq = hi_out << 32 | lo_out, hi_in << 32 | lo_in
            if flags & XFRM_STATE_ESN:
                window = esn_window
        elif kind == XFRMA_REPLAY_VAL:
            oseq, seq, _bitmap = _REPLAY.unpack_from(payload)
        elif kind == XFRMA_MARK:
            mark = Mark(*_MARK.unpack_from(payload))
        elif kind == XFRMA_IF_ID:
            (if_id,) = _U32.unpack_from(payload)
        elif kind in STATE_EXTRAS:
            extras.add(kind)
    return XfrmState(
        src=_addr_text(saddr, family),
        dst=_addr_text(daddr, family),
        spi=int.from_bytes(spi, "big"),
        reqid=reqid,
        selector=sel,
        aead=aead,
        replay_window=window,
        flags=flags,
        proto=proto,
        mode=mode,
        family=family,
        mark=mark if mark is not None and (mark.value or mark.mask) else None,
        if_id=if_id,
        extras=tuple(sorted(extras)),
        counters=StateCounters(
            cur_bytes,
            cur_packets,
            add_time,
            use_time,
            oseq,
            seq,
            st_window,
            st_replay,
            st_integrity,
        ),
    )


def parse_policy(raw: bytes) -> XfrmPolicy:
    """A policy from the payload of an XFRM_MSG_NEWPOLICY message (a dump's entry)."""
    if len(raw) < USERPOLICY_INFO_SIZE:
        raise XfrmError(errno.EBADMSG, "XFRM reply: a policy shorter than xfrm_userpolicy_info")
    sel = Selector.unpack(raw[: _SELECTOR.size])
    o = _SELECTOR.size + _LFT_CFG.size
    _bytes, _packets, _add, use_time = _LFT_CUR.unpack_from(raw, o)
    priority, index, direction, action, flags, _share = _POLICY_TAIL.unpack_from(
        raw, o + _LFT_CUR.size
    )
    templates: list[Template] = []
    ptype, mark, if_id = XFRM_POLICY_TYPE_MAIN, None, 0
    for kind, payload in _attrs(raw[USERPOLICY_INFO_SIZE:]):
        if kind == XFRMA_TMPL:
            for i in range(0, len(payload) - _TMPL.size + 1, _TMPL.size):
                templates.append(Template.unpack(payload[i : i + _TMPL.size]))
        elif kind == XFRMA_POLICY_TYPE:
            ptype = payload[0]
        elif kind == XFRMA_MARK:
            mark = Mark(*_MARK.unpack_from(payload))
        elif kind == XFRMA_IF_ID:
            (if_id,) = _U32.unpack_from(payload)
    return XfrmPolicy(
        dir=direction,
        selector=sel,
        priority=priority,
        templates=tuple(templates),
        action=action,
        flags=flags,
        ptype=ptype,
        mark=mark if mark is not None and (mark.value or mark.mask) else None,
        if_id=if_id,
        index=index,
        use_time=use_time,
    )


# --- the socket ------------------------------------------------------------------------------


class XfrmSocket:
    """A NETLINK_XFRM socket in the calling thread's network namespace."""

    RECV = 1 << 20

    def __init__(self) -> None:
        try:
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_XFRM)
        except OSError as e:
            raise XfrmError(
                e.errno,
                f"cannot open a NETLINK_XFRM socket ({e.strerror}): the kernel has no XFRM "
                "netlink interface (module xfrm_user)",
            ) from None
        try:
            for option in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):
                self.sock.setsockopt(SOL_NETLINK, option, 1)
            self.sock.bind((0, 0))
        except OSError:
            self.sock.close()
            raise
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> XfrmSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, kind: int, flags: int, body: bytes) -> int:
        self.seq += 1
        header = _NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind, flags, self.seq, 0)
        self.sock.send(header + body)
        return self.seq

    def _replies(self, seq: int) -> Iterator[tuple[int, int, bytes]]:
        """(type, flags, payload) of the replies to request `seq`, until DONE or an ack."""
        while True:
            data = self.sock.recv(self.RECV)
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, kind, flags, got_seq, _pid = _NLMSGHDR.unpack_from(data, offset)
                if length < _NLMSGHDR.size or offset + length > len(data):
                    raise XfrmError(errno.EBADMSG, "XFRM reply: a truncated message")
                payload = data[offset + _NLMSGHDR.size : offset + length]
                offset += (length + 3) & ~3
                if got_seq != seq:
                    continue  # a late reply to an earlier request
                yield kind, flags, payload
                if kind in (NLMSG_DONE, NLMSG_ERROR):
                    return

    def _request(self, kind: int, body: bytes, what: str) -> None:
        """Send one request and wait for its acknowledgement; XfrmError if refused."""
        seq = self._send(kind, NLM_F_REQUEST | NLM_F_ACK, body)
        for rkind, rflags, payload in self._replies(seq):
            if rkind == NLMSG_ERROR:
                _raise_for(payload, rflags, what)
                return
        raise XfrmError(errno.EBADMSG, f"{what}: no acknowledgement")

    def _dump(self, kind: int, what: str) -> list[bytes]:
        for _attempt in range(5):
            seq = self._send(kind, NLM_F_REQUEST | NLM_F_DUMP, b"")
            found, interrupted = [], False
            for rkind, rflags, payload in self._replies(seq):
                if rkind == NLMSG_ERROR:
                    _raise_for(payload, rflags, what)
                elif rkind != NLMSG_DONE:
                    found.append(payload)
                interrupted |= bool(rflags & NLM_F_DUMP_INTR)
            if not interrupted:
                return found
        raise XfrmError(errno.EINTR, f"{what}: the table kept changing during the dump")

    # -- the SAD

    def states(self) -> list[XfrmState]:
        """Every state of the namespace (XFRM_MSG_GETSA dump)."""
        return [parse_state(p) for p in self._dump(XFRM_MSG_GETSA, "dumping XFRM states")]

    def add_state(self, state: XfrmState, update: bool = False) -> None:
        """XFRM_MSG_NEWSA (EEXIST if the SPI is taken), or UPDSA with `update` (which changes
        only lifetimes, mark and encapsulation of an existing state, not its key)."""
        kind, verb = (XFRM_MSG_UPDSA, "updating") if update else (XFRM_MSG_NEWSA, "adding")
        self._request(kind, state_message(state), f"{verb} state {state.name()}")

    def delete_state(self, state: XfrmState) -> None:
        self._request(XFRM_MSG_DELSA, delete_state_message(state), f"deleting {state.name()}")

    # -- the SPD

    def policies(self) -> list[XfrmPolicy]:
        """Every policy of the namespace (XFRM_MSG_GETPOLICY dump; socket policies are not
        in it)."""
        return [parse_policy(p) for p in self._dump(XFRM_MSG_GETPOLICY, "dumping policies")]

    def add_policy(self, policy: XfrmPolicy, update: bool = False) -> None:
        """XFRM_MSG_NEWPOLICY (EEXIST if one with the same selector, direction and mark
        exists), or UPDPOLICY with `update`: that one replaced in one step."""
        kind, verb = (XFRM_MSG_UPDPOLICY, "updating") if update else (XFRM_MSG_NEWPOLICY, "adding")
        self._request(kind, policy_message(policy), f"{verb} {policy.name()}")

    def delete_policy(self, policy: XfrmPolicy) -> None:
        """XFRM_MSG_DELPOLICY of the policy with `policy.index` (from a dump)."""
        self._request(
            XFRM_MSG_DELPOLICY, delete_policy_message(policy), f"deleting {policy.name()}"
        )


def _raise_for(payload: bytes, flags: int, what: str) -> None:
    """Nothing for an ack (error 0); XfrmError with the kernel's errno and extended ack
    message otherwise. Only the (capped) header of the request is echoed, so no key."""
    if len(payload) < 4:
        raise XfrmError(errno.EBADMSG, f"{what}: a short error reply")
    (code,) = struct.unpack_from("=i", payload)
    if code == 0:
        return
    reason = ""
    if flags & NLM_F_ACK_TLVS and len(payload) >= 4 + _NLMSGHDR.size:
        echoed = _NLMSGHDR.size
        if not flags & NLM_F_CAPPED:
            (echoed,) = struct.unpack_from("=I", payload, 4)
        for kind, value in _attrs(payload[4 + ((echoed + 3) & ~3) :]):
            if kind == NLMSGERR_ATTR_MSG:
                reason = value.split(b"\0", 1)[0].decode(errors="replace")
    text = os.strerror(-code) + (f" ({reason})" if reason else "")
    raise XfrmError(-code, f"{what}: {text}")


# --- error counters --------------------------------------------------------------------------

STAT_PATH = "/proc/thread-self/net/xfrm_stat"


def parse_xfrm_stat(text: str) -> dict[str, int]:
    """`/proc/net/xfrm_stat` as {counter: value} (`XfrmInNoStates` ...), in file order."""
    counters: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counters[parts[0]] = int(parts[1])
    return counters


def xfrm_stats(path: str = STAT_PATH) -> dict[str, int]:
    """The XFRM error counters of the calling thread's network namespace (every one counts
    a dropped packet); {} when the kernel keeps none (CONFIG_XFRM_STATISTICS off)."""
    try:
        with open(path) as f:
            return parse_xfrm_stat(f.read())
    except FileNotFoundError:
        return {}
