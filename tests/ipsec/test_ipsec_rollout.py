"""Whether a change of IPsec keys is safe to roll out node by node, and what comes next: the pure
planner, the deployed OUT read back, `netcc ipsec rotation` and `netcc diff`."""

from __future__ import annotations

import json
from dataclasses import replace
from itertools import pairwise

import pytest
from clirun import run
from ipsecspecs import SHOP, ipsec, shop

from netcc.contract.ipsec import Aead
from netcc.contract.ipsecrollout import (
    OFF,
    KeyState,
    Rollout,
    read_deployed,
    rollout_of_plans,
    rollout_step,
)
from netcc.contract.lock import LockError
from netcc.emit.ipsec import cluster_rollout, plan_ipsec
from netcc.frontend import parse_spec
from netcc.pipeline import compile_spec
from netcc.write.tree import write_tree

FP1, FP1B = "1" * 32, "a" * 32


def r(*keys: tuple[int, str], plaintext: bool = False, fp: dict | None = None) -> Rollout:
    fp = fp or {}
    return Rollout(
        True, tuple(KeyState(i, s, fp.get(i)) for i, s in sorted(keys)), plaintext, Aead(), 300
    )


ROTATION = [
    r((1, "send")),
    r((2, "accept"), (1, "send")),
    r((2, "send"), (1, "accept")),
    r((2, "send")),
]
TURN_ON = [OFF, r((1, "accept"), plaintext=True), r((1, "send"), plaintext=True), r((1, "send"))]


def test_rotation_in_three_safe_steps_each_naming_the_next() -> None:
    steps = [rollout_step(a, b) for a, b in pairwise(ROTATION)]
    assert all(s.safe for s in steps), [s.text() for s in steps]
    assert steps[0].text() == (
        "safe: phase 1 of 3 (rotation to key 2): every node accepts key 2, nodes still send "
        "with key 1; next: switch sending to key 2 (key 2: send, key 1: accept), once every "
        "node runs this plan"
    )
    assert steps[1].phase.startswith("phase 2 of 3 (rotation to key 2)")
    assert steps[1].next == "remove key 1, once every node runs this plan"
    assert steps[2].phase.startswith("phase 3 of 3 (rotation to key 2): key 1 removed")
    assert "300 s" in steps[2].phase and steps[2].next == ""


@pytest.mark.parametrize(
    "deployed,new,problem,first",
    [
        (
            ROTATION[0],
            ROTATION[2],
            "would send with key 2",
            "keys: [{id: 2, state: accept}, {id: 1, state: send}]",
        ),
        (ROTATION[0], ROTATION[3], "would send with key 2", "{id: 2, state: accept}"),
        (
            ROTATION[1],
            ROTATION[3],
            "send with key 1, which nodes on the new plan would not",
            "keys: [{id: 2, state: send}, {id: 1, state: accept}]",
        ),
        (
            OFF,
            TURN_ON[3],
            "would send with key 1",
            "keys: [{id: 1, state: accept}], acceptPlaintext: true",
        ),
        (OFF, TURN_ON[2], "would send with key 1", "acceptPlaintext: true"),
        (
            TURN_ON[1],
            TURN_ON[3],
            "send pod traffic in clear, which nodes on the new plan",
            "acceptPlaintext: true",
        ),
        (
            TURN_ON[3],
            OFF,
            "send with key 1, which nodes on the new plan would not accept",
            "the deployed plan with keys: [{id: 1, state: send}], acceptPlaintext: true",
        ),
        (r((1, "send"), fp={1: FP1}), r((1, "send"), fp={1: FP1B}), "another fingerprint", ""),
    ],
)
def test_unsafe_jumps_are_refused_with_the_step_to_take_first(deployed, new, problem, first):
    step = rollout_step(deployed, new)
    assert not step.safe
    assert problem in step.text()
    assert first in step.next
    assert step.text().startswith("unsafe: ")


def test_turning_ipsec_on_and_off_in_three_steps_each() -> None:
    on = [rollout_step(a, b) for a, b in pairwise(TURN_ON)]
    assert all(s.safe for s in on), [s.text() for s in on]
    assert [s.phase.split(":")[0] for s in on] == [
        "turning IPsec on, phase 1 of 3",
        "turning IPsec on, phase 2 of 3",
        "turning IPsec on, phase 3 of 3",
    ]
    assert on[0].next == "set key 1 to state send, once every node runs this plan"
    off_path = [TURN_ON[3], TURN_ON[2], TURN_ON[1], OFF]
    off = [rollout_step(a, b) for a, b in pairwise(off_path)]
    assert all(s.safe for s in off), [s.text() for s in off]
    assert off[0].phase.startswith("turning IPsec off, phase 1 of 3")
    assert off[1].phase.startswith("turning IPsec off, phase 2 of 3")
    assert off[2].phase.startswith("IPsec off")


def test_nothing_to_order() -> None:
    assert rollout_step(None, ROTATION[2]).safe  # nothing deployed: a fresh cluster
    for x in (ROTATION[0], OFF):
        step = rollout_step(x, x)
        assert step.safe and "nothing to order" in step.phase
    pinned = r((1, "send"), fp={1: FP1})
    assert rollout_step(ROTATION[0], pinned).safe  # pinning a fingerprint changes no key


def test_the_rule_holds_for_every_pair_of_small_plans() -> None:
    """Safe exactly when each plan accepts what the other sends (brute force over 2 keys)."""
    plans = [OFF]
    for k1 in (None, "send", "accept"):
        for k2 in (None, "send", "accept"):
            for pt in (False, True):
                keys = [(i, s) for i, s in ((1, k1), (2, k2)) if s]
                if not keys or [s for _, s in keys].count("send") > 1:
                    continue
                x = r(*keys, plaintext=pt)
                if x.send is None and not pt:
                    continue  # the spec refuses it
                plans.append(x)
    for a in plans:
        for b in plans:
            step = rollout_step(a, b)
            assert step.safe == (a.sends in b.accepts and b.sends in a.accepts), (a, b)


def test_a_cipher_change_under_a_kept_key_is_unsafe() -> None:
    step = rollout_step(ROTATION[0], replace(ROTATION[0], aead=Aead(key_bits=256)))
    assert not step.safe and "derive different keys" in step.text()


def test_the_cluster_and_its_plans_agree() -> None:
    text = shop("{enabled: true, keys: [{id: 2, state: accept}, {id: 1, state: send}]}")
    cluster = parse_spec(text, "spec.yaml")[0]
    assert rollout_of_plans(plan_ipsec(cluster).values()) == cluster_rollout(cluster)
    assert cluster_rollout(cluster).text() == "key 2 accept, key 1 send"
    assert cluster_rollout(parse_spec(SHOP.read_text(), "spec.yaml")[0]) == OFF


def _out(tmp_path, name: str, text: str):
    out = tmp_path / name
    write_tree(compile_spec(text.encode(), "spec.yaml"), out, [])
    return out


def test_rotation_command_on_a_deployed_out_and_specs(tmp_path) -> None:
    deployed = _out(tmp_path, "deployed", shop())
    assert read_deployed(deployed) == cluster_rollout(parse_spec(shop(), "s")[0])
    phase1 = tmp_path / "phase1.yaml"
    phase1.write_text(shop("{enabled: true, keys: [{id: 2, state: accept}, {id: 1, state: send}]}"))
    jump = tmp_path / "jump.yaml"
    jump.write_text(shop("{enabled: true, keys: [{id: 2, state: send}]}"))
    ok = ipsec("rotation", deployed, phase1)
    assert ok.code == 0, ok.stderr
    assert ok.stdout.splitlines() == [
        "deployed: key 1 send",
        "new:      key 2 accept, key 1 send",
        rollout_step(ROTATION[0], ROTATION[1]).text(),
    ]
    bad = ipsec("rotation", deployed, jump, "--json")
    assert bad.code == 1
    doc = json.loads(bad.stdout)
    assert doc["safe"] is False and doc["deployed"] == "key 1 send" and doc["problems"]
    assert ipsec("rotation", tmp_path / "missing.yaml", jump).code == 2
    plain = _out(tmp_path, "plain", SHOP.read_text())
    assert read_deployed(plain) == OFF
    assert ipsec("rotation", plain, jump).code == 1


def test_a_tampered_deployed_plan_is_an_error(tmp_path) -> None:
    out = _out(tmp_path, "out", shop())
    plan = out / "nodes/node-2/ipsec.json"
    plan.write_text(plan.read_text().replace('"send"', '"accept"'))
    with pytest.raises(LockError, match=r"not what netcc\.lock\.json lists"):
        read_deployed(out)
    r = ipsec("rotation", out, out)
    assert r.code == 2 and "netcc: error:" in r.stderr


def test_diff_shows_the_rollout(tmp_path) -> None:
    old = tmp_path / "old.yaml"
    old.write_text(shop())
    new = tmp_path / "new.yaml"
    new.write_text(shop("{enabled: true, keys: [{id: 2, state: accept}, {id: 1, state: send}]}"))
    res = run("diff", old, new)
    assert res.code == 1, res.stderr
    assert "~ ipsec keys: key 1 send -> key 2 accept, key 1 send" in res.stdout
    assert "~ ipsec rollout: safe: phase 1 of 3 (rotation to key 2)" in res.stdout
    doc = json.loads(run("diff", old, new, "--json").stdout)
    assert doc["encryption"]["rollout"]["safe"] is True
    assert doc["added"] == doc["removed"] == []
    same = run("diff", old, old)
    assert (same.code, same.stdout.strip()) == (0, "connectivity unchanged")


def test_rotation_note_for_check(tmp_path) -> None:
    from netcc.cli.ipsec import rotation_note

    deployed = _out(tmp_path, "deployed", shop())
    same = compile_spec(shop().encode(), "spec.yaml")
    assert rotation_note(same, deployed) is None
    text = shop("{enabled: true, keys: [{id: 2, state: accept}, {id: 1, state: send}]}")
    note = rotation_note(compile_spec(text.encode(), "spec.yaml"), deployed)
    assert note is not None and note.startswith("safe: phase 1 of 3")
    jump = shop("{enabled: true, keys: [{id: 2, state: send}]}")
    assert rotation_note(compile_spec(jump.encode(), "spec.yaml"), deployed).startswith("unsafe:")
    assert rotation_note(same, tmp_path / "nowhere") is None
