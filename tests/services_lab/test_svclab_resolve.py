"""The lab's own reading of services (no kernel): backends, target ports, probe targets."""

from __future__ import annotations

import pytest
from svclab_specs import EXTERNAL, NODEPORT_CLUSTER, NODEPORT_LOCAL, ROLL, SPEC_V1, SPEC_V2, WEB

from netcc.frontend import parse_spec
from netcc.lab.plan import plan_lab
from netcc.lab.services import ServiceLabError, listeners_for, resolve_service, service_ports


def _ports(text: str = SPEC_V1):
    cluster, _ = parse_spec(text.encode(), "svclab.yaml")
    plan = plan_lab(cluster, [EXTERNAL])
    return service_ports(cluster, plan), plan


def test_backends_follow_selector_namespace_and_target_port():
    ports, _ = _ports()
    by = {(p.service, p.port, p.protocol): p for p in ports}
    web = by[("shop/web", 80, "TCP")]
    assert [(b.pod, b.port) for b in web.backends] == [(w, 8080) for w in WEB]  # named: http
    assert [b.port for b in by[("shop/web", 53, "UDP")].backends] == [5353] * 3  # by number
    local = by[("shop/web-local", 80, "TCP")]
    assert local.local and [b.node for b in local.backends] == ["node-1"]
    assert by[("shop/web-sticky", 80, "TCP")].affinity
    assert [b.pod for b in by[("guarded/api", 80, "TCP")].backends] == [
        "guarded/api-1",
        "guarded/api-2",
    ]
    v2 = {(p.service, p.port): p for p in _ports(SPEC_V2)[0]}
    assert [b.pod for b in v2[("shop/roll", 80)].backends] == list(ROLL[:2])


def test_probe_targets_resolve_by_name_vip_and_node_port():
    ports, plan = _ports()
    t = resolve_service(ports, plan, "svc:shop/web", 53, "udp")
    assert (str(t.ip), t.port, t.port_plan.protocol, t.node) == ("10.96.0.10", 53, "UDP", None)
    t = resolve_service(ports, plan, "10.96.0.20", 80, "tcp")
    assert t.port_plan.service == "guarded/api"
    t = resolve_service(ports, plan, "node-2", NODEPORT_CLUSTER, "tcp")
    assert (str(t.ip), t.node, t.port_plan.service) == ("192.168.78.12", "node-2", "shop/web-np")
    t = resolve_service(ports, plan, "192.168.78.13", NODEPORT_LOCAL, "tcp")
    assert t.port_plan.service == "shop/web-local"
    assert resolve_service(ports, plan, "shop/web-1", 8080, "tcp") is None  # a pod
    assert resolve_service(ports, plan, "node-1", 9999, "tcp") is None  # no nodePort
    with pytest.raises(ServiceLabError, match="no such service"):
        resolve_service(ports, plan, "svc:shop/nope", 80, "tcp")
    with pytest.raises(ServiceLabError, match="no port 81/tcp"):
        resolve_service(ports, plan, "svc:shop/web", 81, "tcp")
    with pytest.raises(ServiceLabError, match="has no port 53/tcp"):
        resolve_service(ports, plan, "10.96.0.10", 53, "tcp")


def test_one_listener_per_backend_endpoint():
    ports, _ = _ports()
    listeners = listeners_for(ports)
    assert len(listeners) == len(set(listeners))
    # web (TCP 8080 and UDP 5353), roll (8080) and api (8080): every pod once per endpoint
    assert len(listeners) == 3 * 2 + 3 + 2
