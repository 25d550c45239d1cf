"""IPsec keys: HKDF (RFC 5869 vectors, through the function every SA key is derived with), SA
keys equal at both ends and different everywhere else, the key file, fingerprints and the
refusal of a changed key under the same id, and `netcc ipsec keygen` / `fingerprint`."""

from __future__ import annotations

import os
import stat
from itertools import combinations

import pytest
from ipsecspecs import ipsec, key, pods, shop

from netcc.contract.ipsec import Aead, KeyRef
from netcc.contract.ipseckey import (
    MAGIC,
    ClusterKey,
    IPsecKeyError,
    check_key,
    fingerprint,
    generate,
    hkdf_sha256,
    key_text,
    parse_key,
    read_key,
    sa_key,
)
from netcc.emit.ipsec import plan_ipsec
from netcc.frontend import parse_spec

# RFC 5869, appendix A.1-A.3 (SHA-256): IKM, salt, info, L, OKM.
RFC5869 = [
    (
        bytes([0x0B]) * 22,
        bytes(range(0x00, 0x0D)),
        bytes(range(0xF0, 0xFA)),
        42,
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
    ),
    (
        bytes(range(0x00, 0x50)),
        bytes(range(0x60, 0xB0)),
        bytes(range(0xB0, 0x100)),
        82,
        "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
        "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
        "cc30c58179ec3e87c14c01d5c1f3434f1d87",
    ),
    (
        bytes([0x0B]) * 22,
        b"",
        b"",
        42,
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
    ),
]


@pytest.mark.parametrize("ikm,salt,info,length,okm", RFC5869, ids=["A.1", "A.2", "A.3"])
def test_hkdf_rfc5869_vectors(ikm, salt, info, length, okm) -> None:
    assert hkdf_sha256(ikm, salt, info, length).hex() == okm


def _sa_keys(text: str, keys: dict[int, ClusterKey]) -> dict:
    """(sender, receiver, key id, side) -> derived key, for every state of every node."""
    out = {}
    for name, plan in plan_ipsec(parse_spec(text, "spec.yaml")[0]).items():
        for peer in plan.peers:
            for s in peer.states:
                src, dst = (name, peer.node) if s.dir == "out" else (peer.node, name)
                material = sa_key(keys[s.key], plan.aead, s, src, dst)
                out[(src, dst, s.key, s.dir)] = material
    return out


def test_sa_keys_equal_at_both_ends_and_different_everywhere_else() -> None:
    text = pods("{enabled: true, keys: [{id: 2, state: accept}, {id: 1, state: send}]}")
    keys = {1: key(1, 1), 2: key(2, 2)}
    derived = _sa_keys(text, keys)
    sas = {(a, b, k) for a, b, k, _ in derived}
    assert len(sas) == 3 * 2 * 2  # ordered pairs x keys
    for a, b, k in sas:
        assert derived[(a, b, k, "out")] == derived[(a, b, k, "in")]  # sender == receiver
        assert len(derived[(a, b, k, "out")]) == 20  # AES-128 key + 4-byte salt
    distinct = {derived[(a, b, k, "out")] for a, b, k in sas}
    assert len(distinct) == len(sas)  # no two SAs share a key: across tunnels, directions, ids
    # The same cluster secret under another id gives other keys.
    same_secret = {1: key(1, 1), 2: ClusterKey(2, keys[1].secret)}
    again = _sa_keys(text, same_secret)
    for a, b, _ in sas:
        assert again[(a, b, 1, "out")] != again[(a, b, 2, "out")]


def test_key_length_follows_the_cipher_and_binds_it() -> None:
    k = key(1)
    p128 = plan_ipsec(parse_spec(shop(), "spec.yaml")[0])["node-1"]
    p256 = plan_ipsec(parse_spec(shop("{enabled: true, keyBits: 256}"), "spec.yaml")[0])["node-1"]
    s128, s256 = p128.peers[0].states[0], p256.peers[0].states[0]
    assert s128 == s256  # same SA ...
    a = sa_key(k, p128.aead, s128, "node-1", "node-2")
    b = sa_key(k, p256.aead, s256, "node-1", "node-2")
    assert (len(a), len(b)) == (20, 36) and b[:20] != a  # ... other cipher, other key
    icv = sa_key(k, Aead(icv_bits=96), s128, "node-1", "node-2")
    assert icv != a
    with pytest.raises(IPsecKeyError):
        sa_key(key(2), p128.aead, s128, "node-1", "node-2")  # not the state's key id


def test_key_file_round_trip_and_strict_parsing() -> None:
    k = generate(7)
    text = key_text(k)
    assert text.startswith(f"{MAGIC} 7 ") and text.endswith("\n") and text.count("\n") == 1
    assert parse_key(text.encode()) == k
    assert parse_key(text.rstrip("\n").encode()) == k
    good = text.split()
    for bad in (
        b"",
        b"garbage",
        text.encode() + b"extra\n",
        f"netcc-ipsec-v2 7 {good[2]}\n".encode(),
        f"{MAGIC} 0 {good[2]}\n".encode(),
        f"{MAGIC} 256 {good[2]}\n".encode(),
        f"{MAGIC} 07 {good[2]}\n".encode(),
        f"{MAGIC} 7 {good[2][:-4]}\n".encode(),
        f"{MAGIC}  7 {good[2]}\n".encode(),
        f"{MAGIC} 7 {k.secret.hex()}\n".encode(),
        b"\xff\xfe",
    ):
        with pytest.raises(IPsecKeyError) as e:
            parse_key(bad, "/etc/netcc/ipsec/key-7")
        assert good[2] not in str(e.value) and k.secret.hex() not in str(e.value)
        assert "/etc/netcc/ipsec/key-7" in str(e.value)


def test_read_key_refuses_links_fifos_and_large_files(tmp_path) -> None:
    k = generate(3)
    f = tmp_path / "key-3"
    f.write_text(key_text(k))
    assert read_key(f) == k
    link = tmp_path / "link"
    link.symlink_to(f)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big"
    big.write_bytes(b"x" * 10000)
    for path in (link, fifo, big, tmp_path / "missing", tmp_path):
        with pytest.raises(IPsecKeyError):
            read_key(path)


def test_fingerprint_names_the_key_without_revealing_it() -> None:
    a, b = generate(1), generate(1)
    assert len(fingerprint(a)) == 32 and int(fingerprint(a), 16) >= 0
    assert fingerprint(a) != fingerprint(b)
    assert fingerprint(ClusterKey(2, a.secret)) != fingerprint(a)  # bound to the id
    assert fingerprint(a) not in a.secret.hex()
    assert a.secret.hex() not in repr(a) and fingerprint(a) in repr(a)


def test_a_changed_key_under_the_same_id_is_refused() -> None:
    old, new = generate(4), generate(4)
    ref = KeyRef(4, "send", "/etc/netcc/ipsec/key-4", fingerprint(old))
    assert check_key(ref, old) == fingerprint(old)
    with pytest.raises(IPsecKeyError) as e:
        check_key(ref, new)
    message = str(e.value)
    assert "changed key under the same id is refused" in message
    assert fingerprint(new) in message and fingerprint(old) in message
    assert new.secret.hex() not in message and key_text(new).split()[2] not in message
    with pytest.raises(IPsecKeyError, match="holds key 5"):
        check_key(ref, generate(5))
    unpinned = KeyRef(4, "send", "/etc/netcc/ipsec/key-4", None)
    assert check_key(unpinned, new) == fingerprint(new)  # the caller may pin it


def test_keygen_writes_0600_exclusively_and_never_prints_the_key(tmp_path) -> None:
    old_umask = os.umask(0)  # even with no umask, the file is 0600 from its creation
    try:
        target = tmp_path / "key-2"
        r = ipsec("keygen", target, "--key-id", "2")
    finally:
        os.umask(old_umask)
    assert r.code == 0, r.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    k = read_key(target)
    assert k.id == 2
    assert f"key 2 fingerprint {k.fingerprint}" in r.stdout
    assert f'- {{id: 2, state: send, fingerprint: "{k.fingerprint}"}}' in r.stdout
    for text in (r.stdout, r.stderr):
        assert k.secret.hex() not in text and key_text(k).split()[2] not in text
    # O_EXCL: an existing file is never replaced without --force, and is left as it was.
    before = target.read_bytes()
    r = ipsec("keygen", target, "--key-id", "3")
    assert r.code == 1 and "exists; nothing written" in r.stderr
    assert target.read_bytes() == before
    r = ipsec("keygen", target, "--key-id", "3", "--force")
    assert r.code == 0 and read_key(target).id == 3
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key-2"]  # no temporary file left


def test_keygen_never_writes_through_a_link(tmp_path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    link = tmp_path / "key-1"
    link.symlink_to(victim)
    r = ipsec("keygen", link)
    assert r.code == 1 and victim.read_text() == "keep"
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    r = ipsec("keygen", dangling)
    assert r.code == 1 and not (tmp_path / "nowhere").exists()
    r = ipsec("keygen", link, "--force")  # replaces the link itself, not its target
    assert r.code == 0 and victim.read_text() == "keep" and not link.is_symlink()


@pytest.mark.parametrize(
    "args",
    [
        ("keygen", ""),
        ("keygen", "k", "--key-id", "0"),
        ("keygen", "k", "--key-id", "x"),
        ("fingerprint",),
    ],
)
def test_keygen_bad_arguments(tmp_path, monkeypatch, args) -> None:
    monkeypatch.chdir(tmp_path)
    r = ipsec(*args)
    assert r.code != 0 and "Traceback" not in r.stderr and "invalid choice" not in r.stderr
    assert not (tmp_path / "k").exists()


def test_fingerprint_command(tmp_path) -> None:
    k = generate(9)
    (tmp_path / "key-9").write_text(key_text(k))
    r = ipsec("fingerprint", tmp_path / "key-9")
    assert r.code == 0 and r.stdout.splitlines()[0] == f"key 9 fingerprint {k.fingerprint}"
    assert key_text(k).split()[2] not in r.stdout
    (tmp_path / "bad").write_text("netcc-ipsec-v1 9 " + "A" * 10 + "\n")
    r = ipsec("fingerprint", tmp_path / "bad")
    assert r.code == 1 and "not a netcc IPsec key file" in r.stderr and "AAAAAAAAAA" not in r.stderr


def test_every_pair_of_generated_keys_differs() -> None:
    keys = [generate(1) for _ in range(8)]
    assert all(a.secret != b.secret for a, b in combinations(keys, 2))
