"""NetworkPolicy applies to the backend after translation: a client the backends' ingress policy
denies cannot reach the service; allowed clients can, also one whose egress policy names only
the backends (never the VIP)."""

from __future__ import annotations

import pytest
from svclab_specs import API, API_VIP

from netcc.lab.services import spread


def test_client_denied_by_policy_cannot_reach_the_service(svclab):
    answers = svclab.connect("shop/blocked", API_VIP, 80, 10, timeout=1.0)
    assert not any(a.ok for a in answers), spread(answers)


@pytest.mark.parametrize("client", ["shop/client-3", "shop/client-1", "shop/limited"])
def test_allowed_client_reaches_every_backend(svclab, client):
    # client-3 shares node-3 with `blocked`; limited's egress allows only the backends' pods
    answers = svclab.connect(client, API_VIP, 80, 40)
    assert all(a.ok for a in answers), sorted({a.detail for a in answers if not a.ok})
    assert set(spread(answers)) == set(API)


def test_denied_client_is_denied_at_the_backend_directly_too(svclab):
    """The control: the backends' policy itself denies `blocked` (not some service glitch)."""
    answers = svclab.connect("shop/blocked", svclab.ip(API[0]), 8080, 3, timeout=1.0)
    assert not any(a.ok for a in answers)
