"""Removing a backend in a new OUT applied to the running lab: established connections to the
other backends live on and carry data; new connections never pick the removed one."""

from __future__ import annotations

from svclab_specs import CLIENTS, ROLL, ROLL_VIP

from netcc.lab.services import Conversation, spread
from netcc.lab.update import apply_update

REMOVED = ROLL[2]  # roll-3 leaves the selector in SPEC_V2


def test_removing_a_backend_keeps_established_connections(svclab):
    convs = []
    try:
        for client in CLIENTS:
            for _ in range(4):
                conv = Conversation(svclab.netns(client), svclab.ip(client), ROLL_VIP, 80)
                convs.append(conv)
                conv.say("before")
        before = {id(c): c.backend for c in convs}
        assert set(before.values()) == set(ROLL), before  # 12 connections reach all three
        apply_update(svclab.outs["v2"], svclab.specs["v2"])
        kept = [c for c in convs if before[id(c)] != REMOVED]
        assert kept
        for c in kept:
            for i in range(3):
                assert c.say(f"after {i}") == before[id(c)]
        for client in CLIENTS:
            answers = svclab.connect(client, ROLL_VIP, 80, 60)
            assert all(a.ok for a in answers), sorted({a.detail for a in answers if not a.ok})
            assert set(spread(answers)) == set(ROLL[:2]), spread(answers)
    finally:
        for c in convs:
            c.close()
        apply_update(svclab.outs["v1"], svclab.specs["v1"])  # the other tests' lab again
