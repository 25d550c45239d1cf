"""ClusterIP services with real traffic: spread over every backend from every node, data both
ways, UDP, and ClientIP session affinity."""

from __future__ import annotations

import pytest
from svclab_specs import CLIENTS, STICKY_VIP, WEB, WEB_VIP

from netcc.lab.services import Conversation, spread

PER_CLIENT = 150  # connections from each node's client


def _failures(answers) -> list[str]:
    return sorted({a.detail for a in answers if not a.ok})


@pytest.mark.parametrize("client", CLIENTS)
def test_clusterip_spreads_over_every_backend(svclab, client):
    answers = svclab.connect(client, WEB_VIP, 80, PER_CLIENT)
    assert all(a.ok for a in answers), _failures(answers)
    counts = spread(answers)
    assert set(counts) == set(WEB), counts
    fair = PER_CLIENT / len(WEB)
    for backend, n in counts.items():  # each within ±50% of its fair share
        assert 0.5 * fair <= n <= 1.5 * fair, (backend, counts)


def test_clusterip_carries_data_both_ways_on_one_connection(svclab):
    client = CLIENTS[0]
    with Conversation(svclab.netns(client), svclab.ip(client), WEB_VIP, 80) as conv:
        first = conv.say("x" * 3000)  # more than a segment's worth, both ways
        assert first in WEB
        for i in range(20):
            assert conv.say(f"line {i}") == first  # the flow stays on its backend


def test_udp_service_answers_from_every_backend(svclab):
    answers = svclab.connect(CLIENTS[1], WEB_VIP, 53, 90, proto="UDP")
    assert all(a.ok for a in answers), _failures(answers)  # replies come back from the VIP
    assert set(spread(answers)) == set(WEB)


@pytest.mark.parametrize("client", CLIENTS)
def test_session_affinity_sticks_to_one_backend(svclab, client):
    answers = svclab.connect(client, STICKY_VIP, 80, 40)
    assert all(a.ok for a in answers), _failures(answers)
    assert len({a.sport for a in answers}) > 30  # many different flows...
    assert len(spread(answers)) == 1, spread(answers)  # ...one backend


def test_without_affinity_one_client_reaches_several_backends(svclab):
    """The control for the affinity test: the same client, the same backends, no affinity."""
    assert len(spread(svclab.connect(CLIENTS[2], WEB_VIP, 80, 40))) > 1
