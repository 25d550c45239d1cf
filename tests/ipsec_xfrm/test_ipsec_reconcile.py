"""The IPsec reconciler against a kernel SAD/SPD kept in memory (xfrmfake.FakeXfrm): what it
installs and in which order, idempotence, a rotation in three phases with the removed key's
grace time across restarts, refusals (keys, conflicts) that change nothing, and no key
material in any message or record. Pure: no root, no kernel."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from xfrmfake import FakeXfrm, key, keys_block, shop_plans, write_keys

from netcc.contract.ipsec import REQID, spi_for
from netcc.contract.ipseckey import key_text
from netcc.loader.ipsec import apply as ipsec_apply
from netcc.loader.ipsec import xfrm as x
from netcc.loader.ipsec.apply import (
    IPsecError,
    Record,
    apply_ipsec,
    format_status,
    ipsec_status,
    read_keys,
    read_record,
    reconcile,
    write_record,
)

NODE = "node-1"
T0 = 1_700_000_000.0


@pytest.fixture
def keydir(tmp_path: Path) -> Path:
    d = tmp_path / "keys"
    write_keys(d, 1, 2)
    return d


def plan(keydir: Path, keys: list[tuple[int, str]], node: str = NODE, **kw):
    return shop_plans(keys_block(keydir, keys, **kw))[node]


def run(p, fake: FakeXfrm, state_dir: Path, now: float = T0):
    """One reconcile as `apply_ipsec` does it: record read, keys checked, record saved."""
    record = read_record(state_dir) or Record(p.node, p.address)
    keys = read_keys(p, record.pinned)
    report = reconcile(p, keys, fake, record, now, lambda r: write_record(state_dir, r))
    write_record(state_dir, record)
    return report


def ours(fake: FakeXfrm):
    return [s for s in fake.states() if s.reqid == REQID]


def test_first_apply_installs_every_state_and_policy_in_order(keydir, tmp_path):
    fake = FakeXfrm()
    p = plan(keydir, [(1, "send")])
    report = run(p, fake, tmp_path / "state")
    assert report.status == "installed"
    kinds = fake.kinds()
    assert kinds == ["newsa"] * 4 + ["newpolicy"] * 6
    states = fake.states()
    # every `in` state before any `out` state; `in`/`fwd` policies before `out` ones
    order = [c[1] for c in fake.calls[:4]]
    assert [o.split(" -> ")[1].split()[0] for o in order[:2]] == ["192.168.77.11"] * 2
    pol_dirs = [c[1].split()[1] for c in fake.calls[4:]]
    assert pol_dirs[-2:] == ["out", "out"] and "out" not in pol_dirs[:4]
    for s in states:
        assert s.flags & x.XFRM_STATE_ESN and s.replay_window == 1024
        assert s.mode == x.XFRM_MODE_TUNNEL and s.proto == x.IPPROTO_ESP
        assert s.aead is not None and s.aead.name == "rfc4106(gcm(aes))"
        assert len(s.aead.key) == 20 and s.aead.icv_bits == 128
    assert {s.spi for s in states} == {0x01000100, 0x01000200, 0x01000300}
    out = [q for q in fake.policies() if q.dir == x.XFRM_POLICY_OUT]
    assert {q.templates[0].spi for q in out} == {0x01000100}
    assert all(q.templates[0].optional == 0 for q in fake.policies())


def test_both_ends_of_an_sa_install_the_same_key(keydir, tmp_path):
    plans = shop_plans(keys_block(keydir, [(1, "send")]))
    a, b = FakeXfrm(), FakeXfrm()
    run(plans["node-1"], a, tmp_path / "a")
    run(plans["node-2"], b, tmp_path / "b")
    a_out = {(s.src, s.dst, s.spi): s.aead.key for s in a.states() if s.src == "192.168.77.11"}
    b_in = {(s.src, s.dst, s.spi): s.aead.key for s in b.states() if s.dst == "192.168.77.12"}
    shared = set(a_out) & set(b_in)
    assert len(shared) == 1
    (sa,) = shared
    assert a_out[sa] == b_in[sa]
    assert len(set(a_out.values()) | set(b_in.values())) == 3  # three SAs, three keys


def test_second_apply_changes_nothing(keydir, tmp_path):
    fake = FakeXfrm()
    p = plan(keydir, [(1, "send")])
    run(p, fake, tmp_path / "state")
    fake.calls.clear()
    again = run(p, fake, tmp_path / "state")
    assert again.status == "unchanged" and again.changes == [] and fake.calls == []


def test_unrelated_objects_survive_and_conflicts_refuse(keydir, tmp_path):
    fake = FakeXfrm()
    theirs = x.XfrmState(
        "192.168.77.11",
        "198.51.100.1",
        0x5000,
        7,
        x.Selector("10.9.0.0/16", "10.8.0.0/16"),
        x.AeadAlgo("rfc4106(gcm(aes))", 128, b"\1" * 20),
        64,
    )
    their_pol = x.XfrmPolicy(
        x.XFRM_POLICY_OUT,
        x.Selector("10.9.0.0/16", "10.8.0.0/16"),
        100,
        (x.Template("192.168.77.11", "198.51.100.1", 0x5000, 7),),
    )
    fake.add_state(theirs)
    fake.add_policy(their_pol)
    p = plan(keydir, [(1, "send")])
    run(p, fake, tmp_path / "state")
    run(replace(p, peers=()), fake, tmp_path / "state")  # every peer gone: all of ours go
    assert fake.states() == [theirs] and fake.policies() == [their_pol]

    # someone else's policy where the plan puts netcc's: refused before anything is sent
    fake = FakeXfrm()
    clash = x.XfrmPolicy(
        x.XFRM_POLICY_FWD,
        x.Selector("10.244.2.0/24", "10.244.1.0/24"),
        5,
        (x.Template("192.168.77.12", "192.168.77.11", 0, 9),),
    )
    fake.add_policy(clash)
    fake.calls.clear()
    with pytest.raises(IPsecError, match="someone else"):
        run(p, fake, tmp_path / "other")
    assert fake.calls == [] and fake.policies() == [clash]


def test_rotation_in_three_phases_with_grace_across_restarts(keydir, tmp_path):
    fake, state = FakeXfrm(), tmp_path / "state"
    run(plan(keydir, [(1, "send")]), fake, state)
    key1 = {s.spi for s in fake.states()}

    # phase 1: key 2 accepted; only new states, nothing sends with them yet
    fake.calls.clear()
    r1 = run(plan(keydir, [(1, "send"), (2, "accept")]), fake, state, T0 + 10)
    assert fake.kinds() == ["newsa"] * 4
    assert [c[1] for c in fake.calls[:2]] == [
        "192.168.77.12 -> 192.168.77.11 spi 0x02000200",
        "192.168.77.13 -> 192.168.77.11 spi 0x02000300",
    ]
    assert r1.status == "updated"
    outs = {q.templates[0].spi for q in fake.policies() if q.dir == x.XFRM_POLICY_OUT}
    assert outs == {0x01000100}

    # phase 2: send with key 2: one atomic policy update per peer, no state touched
    fake.calls.clear()
    run(plan(keydir, [(1, "accept"), (2, "send")]), fake, state, T0 + 20)
    assert fake.kinds() == ["updpolicy", "updpolicy"]
    outs = {q.templates[0].spi for q in fake.policies() if q.dir == x.XFRM_POLICY_OUT}
    assert outs == {spi_for(2, 0x100)}

    # phase 3: key 1 removed: its out states go at once, its in states stay for the grace
    fake.calls.clear()
    p3 = plan(keydir, [(2, "send")], grace=60)
    r3 = run(p3, fake, state, T0 + 30)
    assert fake.kinds() == ["delsa", "delsa"]
    assert all(c[1].startswith("192.168.77.11 -> ") for c in fake.calls)  # out states
    assert {s.spi for s in fake.states()} & key1 == {0x01000200, 0x01000300}
    assert len(r3.kept) == 2 and r3.recheck == pytest.approx(60)
    assert json.loads((state / "ipsec.json").read_text())["removed"] == {"1": T0 + 30}

    # a restart (a new process: the record read again) 50 s later: still kept
    fake.calls.clear()
    r = run(p3, fake, state, T0 + 80)
    assert fake.calls == [] and r.status == "unchanged" and r.recheck == pytest.approx(10)
    # after the grace: gone, and the record forgets the key
    r = run(p3, fake, state, T0 + 91)
    assert fake.kinds() == ["delsa", "delsa"] and r.kept == [] and r.recheck is None
    assert {s.spi >> 24 for s in fake.states()} == {2}
    assert read_record(state).removed == {}


def test_lost_record_restarts_the_grace(keydir, tmp_path):
    fake, state = FakeXfrm(), tmp_path / "state"
    run(plan(keydir, [(1, "accept"), (2, "send")]), fake, state)
    (state / "ipsec.json").unlink()
    p3 = plan(keydir, [(2, "send")], grace=60)
    r = run(p3, fake, state, T0 + 1000)
    assert len(r.kept) == 2 and r.recheck == pytest.approx(60)


def test_a_state_with_another_key_is_replaced(keydir, tmp_path):
    fake = FakeXfrm()
    p = plan(keydir, [(1, "send")])
    run(p, fake, tmp_path / "state")
    s = next(s for s in fake.states() if s.spi == 0x01000200)
    fake.delete_state(s)
    fake.add_state(replace(s, aead=replace(s.aead, key=b"\0" * 20)))
    fake.calls.clear()
    r = run(p, fake, tmp_path / "state")
    assert fake.kinds() == ["delsa", "newsa"]
    assert r.changes == ["state in node-2 key 1 spi 0x01000200 replaced (key differed)"]


def test_keys_are_checked_and_never_shown(keydir, tmp_path):
    p = plan(keydir, [(1, "send")])
    # a changed key under the same id: refused, nothing sent
    (keydir / "key-1").write_text(key_text(replace(key(1), secret=b"\x42" * 32)))
    fake = FakeXfrm()
    with pytest.raises(IPsecError, match="changed key under the same id") as e:
        run(p, fake, tmp_path / "state")
    assert fake.calls == []
    secrets = [b"\x42" * 32, key(1).secret]
    for secret in secrets:
        for form in (secret.hex(), __import__("base64").b64encode(secret).decode()):
            assert form not in str(e.value)
    # a missing key file
    (keydir / "key-1").unlink()
    with pytest.raises(IPsecError, match=r"key 1: .*cannot read"):
        run(p, fake, tmp_path / "state")


def test_a_key_without_fingerprint_is_pinned(keydir, tmp_path):
    block = keys_block(keydir, [(1, "send")]).replace(
        keys_block(keydir, [(1, "send")]).splitlines()[-1], "keys: [{id: 1, state: send}]"
    )
    p = shop_plans(block)[NODE]
    assert p.keys[0].fingerprint is None
    fake, state = FakeXfrm(), tmp_path / "state"
    run(p, fake, state)
    assert read_record(state).pinned == {1: key(1).fingerprint}
    (keydir / "key-1").write_text(key_text(replace(key(1), secret=b"\x43" * 32)))
    with pytest.raises(IPsecError, match="this node installed key 1 with fingerprint"):
        run(p, fake, state)


def test_apply_ipsec_and_remove_through_out(keydir, tmp_path, monkeypatch):
    """apply_ipsec reads the plan as the lock lists it; an OUT without IPsec removes ours."""
    fake = FakeXfrm()
    monkeypatch.setattr(ipsec_apply, "XfrmSocket", lambda: fake)
    p = plan(keydir, [(1, "send")])
    out = tmp_path / "out"
    rel = f"nodes/{NODE}/ipsec.json"
    (out / "nodes" / NODE).mkdir(parents=True)
    from netcc.contract.ipsec import dumps, to_doc

    data = dumps(to_doc(p))
    (out / rel).write_bytes(data)
    import hashlib

    lock = {"artifacts": {rel: hashlib.sha256(data).hexdigest()}}
    state = tmp_path / "state"
    r = apply_ipsec(out, lock, NODE, state)
    assert r is not None and r.status == "installed" and len(ours(fake)) == 4
    assert apply_ipsec(out, lock, NODE, state).status == "unchanged"

    status = ipsec_status(state)
    assert status is not None and len(status["sas"]) == 4 and len(status["policies"]) == 6
    sa = next(s for s in status["sas"] if s["dir"] == "out" and s["peer"] == "node-2")
    assert sa["spi"] == "0x01000100" and sa["key"] == 1 and sa["oseq"] == 0
    lines = format_status(status)
    assert lines[0].startswith("  ipsec 192.168.77.11: 4 SA(s), 6 policies")
    record_text = (state / "ipsec.json").read_text()
    blob = json.dumps(status) + "\n".join(lines) + record_text + json.dumps(r.to_json())
    for k in (1, 2):
        assert key(k).secret.hex() not in blob
    for s in fake.states():
        assert s.aead.key.hex() not in blob

    (out / rel).write_bytes(data + b" ")
    with pytest.raises(IPsecError, match="changed after the lock"):
        apply_ipsec(out, lock, NODE, state)
    removed = apply_ipsec(out, {"artifacts": {}}, NODE, state)
    assert removed is not None and removed.status == "removed"
    assert fake.states() == [] and fake.policies() == [] and not (state / "ipsec.json").exists()
    assert apply_ipsec(out, {"artifacts": {}}, NODE, state) is None


def test_a_state_of_netcc_with_a_mark_is_not_the_planned_one(keydir, tmp_path):
    """Same destination and SPI but a mark: another state to the kernel; it goes, the planned
    one (no mark) stays."""
    fake = FakeXfrm()
    p = plan(keydir, [(1, "send")])
    run(p, fake, tmp_path / "state")
    s = next(s for s in fake.states() if s.spi == 0x01000200)
    fake.add_state(replace(s, mark=x.Mark(1, 0xFF)))
    fake.calls.clear()
    r = run(p, fake, tmp_path / "state")
    assert fake.kinds() == ["delsa"] and r.changes == [
        "state in node-2 key 1 spi 0x01000200 removed"
    ]
    assert [q.mark for q in fake.states() if q.spi == 0x01000200] == [None]
