"""Compile side of services over workload classes: which classes may back each port, their
target ports, the rows, the room left for runtime backends, and `services.json`."""

import json

from dynspecs import SPEC

from netcc.contract import services as dyn
from netcc.frontend import parse_spec
from netcc.plan.planner import plan
from netcc.resolve.resolution import resolve


def _plan():
    cluster = parse_spec(SPEC.encode(), "dyn.yaml")[0]
    return plan(resolve(cluster))


def _ports(p):
    return {(x.service, x.port_name, x.protocol): x for x in p.dynamic.ports}


def test_classes_back_ports_by_selector_namespace_and_named_target_port():
    ports = _ports(_plan())
    web = ports[("app/web", "http", "TCP")]
    # both classes the selector matches, each on its own container port named http; the
    # class of another namespace with the same labels is no backend
    assert [(c.key, c.target_port) for c in web.classes] == [
        ("app/canary", 9090),
        ("app/web", 8080),
    ]
    # the UDP port named dns: only the class that has a UDP port of that name
    dns = ports[("app/web", "dns", "UDP")]
    assert [(c.key, c.target_port) for c in dns.classes] == [("app/web", 5353)]
    # the static workload stays a build-time backend of the port
    assert [(str(b.ip), b.port, b.node) for b in web.static] == [("10.244.2.200", 8081, "n2")]
    # a service over static workloads only is not dynamic
    assert not any(s == "app/fixed" for s, _, _ in ports)


def test_local_rows_for_either_traffic_policy():
    p = _plan()
    ports = _ports(p)
    web, api = ports[("app/web", "http", "TCP")], ports[("app/api", "http", "TCP")]
    assert web.local_row and api.local_row
    assert ports[("app/web", "dns", "UDP")].local_row is None  # no nodePort: Cluster applies
    for node in p.nodes:
        entries = {
            (e.key.vip, e.key.port, e.key.scope): e.value.row
            for e in node.maps["netcc_lb_services"]
        }
        # internalTrafficPolicy Local: pods' cluster IP traffic uses the node's own row
        assert entries[("10.96.0.11", 7000, 0)] == api.local_row
        # externalTrafficPolicy Local: the uplink's NodePort entry too, pods' stays Cluster
        assert entries[("10.96.0.10", 80, 0)] == web.cluster_row
        assert entries[("0.0.0.0", 30080, 2)] == web.cluster_row
        address = {"n1": "192.168.90.11", "n2": "192.168.90.12", "n3": "192.168.90.13"}
        assert entries[(address[node.name], 30080, 1)] == web.local_row


def test_rows_hold_static_backends_filled_as_the_daemon_fills_them():
    p = _plan()
    web = _ports(p)[("app/web", "http", "TCP")]
    for node in p.nodes:
        rows = {e.key.id: e.value.backends for e in node.maps["netcc_lb_maglev"]}
        assert rows[web.cluster_row] == tuple([1] * p.dynamic.maglev_size)
        if node.name == "n2":
            assert rows[web.local_row] == tuple([1] * p.dynamic.maglev_size)
        else:
            assert web.local_row not in rows  # no local backend: no row, the entry drops
        counts = {(e.key.vip, e.key.scope): e.value.count for e in node.maps["netcc_lb_services"]}
        assert counts[("10.96.0.11", 0)] == 0  # no runtime pod yet: DROP_NO_BACKEND


def test_room_for_every_address_of_the_classes_blocks():
    p = _plan()
    # (class, target port) pairs: web 8080, web 5353, canary 9090, api 7000, on 3 nodes
    need = 3 * (16 + 16 + 8 + 8)
    assert p.capacities["NETCC_MAX_LB_BACKENDS"] >= need + 1
    assert p.capacities["NETCC_MAX_LB_MEMBERS"] >= 3 * (8 + 24 + 16) + 8 + 24
    assert p.dynamic.maglev_size >= 10 * (3 * 24 + 1)  # the biggest port's bound, 10 slots each


def test_backend_numbers_are_a_function_of_address_and_port():
    d = _plan().dynamic
    from ipaddress import IPv4Address

    a = d.backend_id(IPv4Address("10.244.1.33"), 8080, "TCP")
    b = d.backend_id(IPv4Address("10.244.2.33"), 8080, "TCP")
    c = d.backend_id(IPv4Address("10.244.1.33"), 5353, "UDP")
    assert len({a, b, c}) == 3 and min(a, b, c) >= d.backend_base
    numbers = {
        d.backend_id(IPv4Address(int(n.pod_cidr.network_address) + i), tp, proto)
        for n in d.nodes
        for i in range(256)
        for tp, proto in d.target_ports
    }
    assert len(numbers) == 3 * 256 * len(d.target_ports)  # never one number twice


def test_services_json_round_trips_and_holds_no_more_than_the_plan(tmp_path):
    d = _plan().dynamic
    data = dyn.dump(d)
    assert dyn.load(data) == d
    doc = json.loads(data)
    assert doc["servicesVersion"] == dyn.SERVICES_VERSION
    assert dyn.dump(dyn.load(data)) == data


def test_review_lists_classes_per_port():
    from netcc.review.report import build_report
    from netcc.review.source import Spec

    cluster, sources = parse_spec(SPEC.encode(), "dyn.yaml")[:2]
    doc = build_report(Spec(SPEC.encode(), "dyn.yaml", cluster, sources))
    web = next(e for e in doc["services"] if e["port"].startswith("app/web port http"))
    assert web["classes"] == [
        {"class": "app/canary", "targetPort": 9090},
        {"class": "app/web", "targetPort": 8080},
    ]
    api = next(e for e in doc["services"] if e["port"].startswith("app/api"))
    assert api["internalTrafficPolicy"] == "Local"
