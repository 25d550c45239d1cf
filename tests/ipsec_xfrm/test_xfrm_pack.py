"""The NETLINK_XFRM client's packing, byte for byte against include/uapi/linux/xfrm.h.

REFERENCE holds what a C program (REFERENCE_C, below) prints for the same values with the
kernel's own structures on x86_64; where a C compiler and the header are here, the test
compiles and runs that program too, so the bytes are checked against this machine's header and
not only against a copy. Pure: no root, no kernel, no namespace.
"""

from __future__ import annotations

import errno
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from netcc.loader.ipsec import xfrm as x

SEL = x.Selector(
    src="10.244.1.0/25",
    dst="10.244.2.0/24",
    proto=6,
    dport=443,
    dport_mask=0xFFFF,
    ifindex=3,
    user=7,
)
KEY = bytes([0xAB]) * 20

REFERENCE = {
    "usersa_info": (
        "0af402000000000000000000000000000af4010000000000000000000000000001bbffff0000000002001819"
        "060000000300000007000000c0a84d0c0000000000000000000000000100010032000000c0a84d0b00000000"
        "0000000000000000ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff00000000"
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000636e00000200010080000000"
        "00000000"
    ),
    "userpolicy_info": (
        "0af402000000000000000000000000000af4010000000000000000000000000001bbffff0000000002001819"
        "060000000300000007000000ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000636e0000000000000200000000000000"
    ),
    "user_tmpl": (
        "c0a84d0b000000000000000000000000000000003200000002000000c0a84d0c000000000000000000000000"
        "636e000001000100ffffffffffffffffffffffff"
    ),
    "usersa_id": ("c0a84d0b0000000000000000000000000200020002003200"),
    "userpolicy_id": (
        "0af402000000000000000000000000000af4010000000000000000000000000001bbffff0000000002001819"
        "0600000003000000070000003412000001000000"
    ),
    "algo_aead": (
        "726663343130362867636d286165732929000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000a000000080000000abababababababababababababababab"
        "abababab"
    ),
    "replay_esn": (
        "2000000000000000000000000000000000000000000400000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000"
    ),
}

REFERENCE_C = r"""#include <arpa/inet.h>
#include <linux/xfrm.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static void hex(const char *name, const void *p, size_t len)
{
	const unsigned char *c = p;
	printf("%s ", name);
	for (size_t i = 0; i < len; i++)
		printf("%02x", c[i]);
	printf("\n");
}

static void sel(struct xfrm_selector *s)
{
	inet_pton(AF_INET, "10.244.2.0", &s->daddr.a4);
	inet_pton(AF_INET, "10.244.1.0", &s->saddr.a4);
	s->dport = htons(443);
	s->dport_mask = htons(0xffff);
	s->family = AF_INET;
	s->prefixlen_d = 24;
	s->prefixlen_s = 25;
	s->proto = 6;
	s->ifindex = 3;
	s->user = 7;
}

int main(void)
{
	struct xfrm_usersa_info sa;
	memset(&sa, 0, sizeof sa);
	sel(&sa.sel);
	inet_pton(AF_INET, "192.168.77.12", &sa.id.daddr.a4);
	sa.id.spi = htonl(0x01000100);
	sa.id.proto = IPPROTO_ESP;
	inet_pton(AF_INET, "192.168.77.11", &sa.saddr.a4);
	/* no limits, as ip-xfrm sets them: bytes and packets XFRM_INF, times 0 (never) */
	sa.lft.soft_byte_limit = sa.lft.hard_byte_limit = XFRM_INF;
	sa.lft.soft_packet_limit = sa.lft.hard_packet_limit = XFRM_INF;
	sa.reqid = 0x6e63;
	sa.family = AF_INET;
	sa.mode = XFRM_MODE_TUNNEL;
	sa.flags = XFRM_STATE_ESN; /* replay_window 0: the ESN window is an attribute */
	hex("usersa_info", &sa, sizeof sa);

	struct xfrm_userpolicy_info pol;
	memset(&pol, 0, sizeof pol);
	sel(&pol.sel);
	pol.lft = sa.lft;
	pol.priority = 0x6e63;
	pol.dir = XFRM_POLICY_FWD;
	pol.action = XFRM_POLICY_ALLOW;
	hex("userpolicy_info", &pol, sizeof pol);

	struct xfrm_user_tmpl t;
	memset(&t, 0, sizeof t);
	inet_pton(AF_INET, "192.168.77.11", &t.id.daddr.a4);
	t.id.proto = IPPROTO_ESP;
	t.family = AF_INET;
	inet_pton(AF_INET, "192.168.77.12", &t.saddr.a4);
	t.reqid = 0x6e63;
	t.mode = XFRM_MODE_TUNNEL;
	t.optional = 1;
	t.aalgos = t.ealgos = t.calgos = ~0u;
	hex("user_tmpl", &t, sizeof t);

	struct xfrm_usersa_id id;
	memset(&id, 0, sizeof id);
	inet_pton(AF_INET, "192.168.77.11", &id.daddr.a4);
	id.spi = htonl(0x02000200);
	id.family = AF_INET;
	id.proto = IPPROTO_ESP;
	hex("usersa_id", &id, sizeof id);

	struct xfrm_userpolicy_id pid;
	memset(&pid, 0, sizeof pid);
	sel(&pid.sel);
	pid.index = 0x1234;
	pid.dir = XFRM_POLICY_OUT;
	hex("userpolicy_id", &pid, sizeof pid);

	unsigned char aead[sizeof(struct xfrm_algo_aead) + 20];
	struct xfrm_algo_aead *a = (struct xfrm_algo_aead *)aead;
	memset(aead, 0, sizeof aead);
	strcpy(a->alg_name, "rfc4106(gcm(aes))");
	a->alg_key_len = 160;
	a->alg_icv_len = 128;
	memset(a->alg_key, 0xab, 20);
	hex("algo_aead", aead, sizeof aead);

	unsigned char esn[sizeof(struct xfrm_replay_state_esn) + 32 * 4];
	struct xfrm_replay_state_esn *r = (struct xfrm_replay_state_esn *)esn;
	memset(esn, 0, sizeof esn);
	r->bmp_len = 32;
	r->replay_window = 1024;
	hex("replay_esn", esn, sizeof esn);
	return 0;
}
"""


def ref(name: str) -> bytes:
    return bytes.fromhex("".join(REFERENCE[name]))


def state(**kw) -> x.XfrmState:
    base = dict(
        src="192.168.77.11",
        dst="192.168.77.12",
        spi=0x01000100,
        reqid=0x6E63,
        selector=SEL,
        aead=x.AeadAlgo("rfc4106(gcm(aes))", 128, KEY),
        replay_window=1024,
    )
    return x.XfrmState(**(base | kw))


def policy(**kw) -> x.XfrmPolicy:
    tmpl = x.Template("192.168.77.12", "192.168.77.11", 0, 0x6E63, optional=1)
    base = dict(dir=x.XFRM_POLICY_FWD, selector=SEL, priority=0x6E63, templates=(tmpl,))
    return x.XfrmPolicy(**(base | kw))


def test_sizes_are_the_kernels():
    assert x.SELECTOR_SIZE == 56
    assert x.USERSA_INFO_SIZE == 224
    assert x.USERPOLICY_INFO_SIZE == 168
    assert x.USERPOLICY_ID_SIZE == 64
    assert len(x.usersa_id("192.168.77.11", 1)) == 24
    assert len(policy().templates[0].pack()) == 64


def test_usersa_info_bytes():
    assert x.usersa_info(state()) == ref("usersa_info")


def test_userpolicy_info_bytes():
    assert x.userpolicy_info(policy()) == ref("userpolicy_info")


def test_user_tmpl_bytes():
    assert policy().templates[0].pack() == ref("user_tmpl")


def test_usersa_id_bytes():
    assert x.usersa_id("192.168.77.11", 0x02000200) == ref("usersa_id")


def test_userpolicy_id_bytes():
    p = policy(dir=x.XFRM_POLICY_OUT, index=0x1234)
    assert x.delete_policy_message(p) == ref("userpolicy_id")


def test_aead_and_replay_esn_bytes():
    assert x.AeadAlgo("rfc4106(gcm(aes))", 128, KEY).pack() == ref("algo_aead")
    assert x.replay_esn(1024) == ref("replay_esn")
    assert len(x.replay_esn(1000)) == 24 + 4 * 32  # rounded up to whole words
    with pytest.raises(x.XfrmError):
        x.replay_esn(4097)


@pytest.mark.skipif(shutil.which("clang") is None, reason="no clang to compile the reference")
def test_reference_matches_this_machines_header(tmp_path: Path):
    if not Path("/usr/include/linux/xfrm.h").exists():
        pytest.skip("no kernel headers (linux-libc-dev)")
    src = tmp_path / "ref.c"
    src.write_text(REFERENCE_C)
    subprocess.run(
        ["clang", "-w", "-o", str(tmp_path / "ref"), str(src)], check=True, capture_output=True
    )
    out = subprocess.run([str(tmp_path / "ref")], check=True, capture_output=True, text=True)
    got = dict(line.split() for line in out.stdout.splitlines())
    assert got == {k: "".join(v) for k, v in REFERENCE.items()}


def test_state_message_layout():
    msg = x.state_message(state())
    assert msg[:224] == ref("usersa_info")
    attrs = dict(x._attrs(msg[224:]))
    assert attrs[x.XFRMA_ALG_AEAD] == ref("algo_aead")
    assert attrs[x.XFRMA_REPLAY_ESN_VAL] == ref("replay_esn")
    assert set(attrs) == {x.XFRMA_ALG_AEAD, x.XFRMA_REPLAY_ESN_VAL}


def test_state_round_trip_through_a_dump_entry():
    s = state(mark=x.Mark(5, 0xFF))
    back = x.parse_state(x.state_message(s))
    assert back == s
    assert back.counters == x.StateCounters()
    assert back.aead is not None and back.aead.key == KEY


def test_state_dump_counters_and_extras():
    s = state()
    info = bytearray(x.usersa_info(s))
    struct.pack_into("=4Q", info, 160, 1000, 10, 1700000000, 1700000005)  # curlft
    struct.pack_into("=3I", info, 192, 1, 2, 3)  # stats
    esn = struct.pack("=6I", 32, 7, 9, 1, 2, 1024) + bytes(128)
    raw = bytes(info) + x._attr(x.XFRMA_ALG_AEAD, s.aead.pack())
    raw += x._attr(x.XFRMA_REPLAY_ESN_VAL, esn) + x._attr(x.XFRMA_ALG_AUTH, b"\0" * 72)
    got = x.parse_state(raw)
    c = got.counters
    assert (c.bytes, c.packets, c.add_time, c.use_time) == (1000, 10, 1700000000, 1700000005)
    assert (c.replay_window_errors, c.replay_errors, c.integrity_failed) == (1, 2, 3)
    assert (c.oseq, c.seq) == (1 << 32 | 7, 2 << 32 | 9)
    assert got.replay_window == 1024
    assert got.extras == (x.XFRMA_ALG_AUTH,)
    assert got != s  # an extra attribute: not the state netcc installs


def test_policy_round_trip_through_a_dump_entry():
    p = policy()
    raw = bytearray(x.policy_message(p))
    struct.pack_into("=I", raw, 156, 0x2A)  # the kernel's index
    got = x.parse_policy(bytes(raw))
    assert got == p and got.index == 0x2A
    assert x.parse_policy(bytes(raw) + x._attr(x.XFRMA_POLICY_TYPE, b"\1\0\0\0")).ptype == 1


def test_ipv6_addresses_parse():
    s = x.Selector("fd00::/64", "fd00:1::/64", family=x.AF_INET6)
    assert x.Selector.unpack(s.pack()) == s


def test_error_replies():
    hdr = struct.pack("=IHHII", 300, x.XFRM_MSG_NEWSA, 5, 1, 0)
    ack = struct.pack("=i", 0) + hdr
    x._raise_for(ack, x.NLM_F_CAPPED, "adding")  # no error
    msg = x._attr(x.NLMSGERR_ATTR_MSG, b"Requested AEAD algorithm not found\0")
    err = struct.pack("=i", -errno.ENOSYS) + hdr + msg
    with pytest.raises(x.XfrmError) as e:
        x._raise_for(err, x.NLM_F_CAPPED | x.NLM_F_ACK_TLVS, "adding state a -> b spi 0x01000100")
    assert e.value.errno == errno.ENOSYS
    assert "Requested AEAD algorithm not found" in str(e.value)
    assert str(e.value).startswith("adding state a -> b spi 0x01000100: ")


def test_no_key_in_repr_or_messages():
    s = state()
    for text in (repr(s), str(s), repr(s.aead), s.name()):
        assert KEY.hex() not in text and "abababab" not in text and "\\xab" not in text
    with pytest.raises(x.XfrmError) as e:
        x.state_message(state(aead=None))
    assert "abab" not in str(e.value)


def test_xfrm_stat_parse():
    text = "XfrmInError             \t0\nXfrmInNoStates          \t3\nXfrmOutPolBlock \t1\n"
    assert x.parse_xfrm_stat(text) == {"XfrmInError": 0, "XfrmInNoStates": 3, "XfrmOutPolBlock": 1}
    assert x.xfrm_stats("/nonexistent/xfrm_stat") == {}
