"""Hairpin with real traffic: a backend pod reaching its own service lands on
itself for about a third of its flows (hairpin, masqueraded to its router address) and gets
its own answer, over TCP and UDP."""

from __future__ import annotations

import pytest
from svclab_specs import WEB, WEB_VIP

from netcc.lab.services import spread


@pytest.mark.parametrize(("proto", "port"), [("TCP", 80), ("UDP", 53)])
def test_a_pod_reaches_itself_through_its_service(svclab, proto, port):
    pod = WEB[0]
    answers = svclab.connect(pod, WEB_VIP, port, 60, proto=proto)
    assert all(a.ok for a in answers), sorted({a.detail for a in answers if not a.ok})
    counts = spread(answers)
    assert counts.get(pod, 0) >= 5, counts  # its own flows hairpin, and are answered
    assert set(counts) == set(WEB), counts
