"""Compiler side of services: backends, Maglev tables, the reference choice, the LB plan."""

import collections
import random

import pytest
from svcspecs import SPEC

from netcc.frontend import parse_spec
from netcc.plan import maglev
from netcc.plan.planner import plan
from netcc.resolve.backends import port_backends
from netcc.resolve.resolution import resolve
from netcc.semantics.lb import flow_hash, mix, pick

NAMES = [f"10.0.{i // 250}.{i % 250}:8080/TCP" for i in range(40)]


def _cluster():
    return parse_spec(SPEC.encode(), "svc.yaml")[0]


def _service(cluster, name):
    return next(s for s in cluster.services if s.name == name)


def test_backends_follow_selector_namespace_and_named_port():
    cluster = _cluster()
    web = _service(cluster, "web")
    http = {(b.workload, b.port) for b in port_backends(cluster, web, web.ports[0])}
    assert http == {("app/web-1", 8080), ("app/web-2", 8080), ("app/web-3", 9090)}
    dns = {(b.workload, b.port) for b in port_backends(cluster, web, web.ports[1])}
    assert dns == {("app/web-1", 5353), ("app/web-2", 5353)}  # only pods with a UDP "dns"
    sticky = _service(cluster, "sticky")  # targetPort by number: every selected pod
    assert len(port_backends(cluster, sticky, sticky.ports[0])) == 4
    empty = _service(cluster, "empty")
    assert port_backends(cluster, empty, empty.ports[0]) == ()


def test_maglev_table_is_deterministic_and_balanced():
    size = 1021
    t = maglev.table(NAMES[:10], size)
    assert t == maglev.table(list(NAMES[:10]), size)
    counts = collections.Counter(t)
    assert set(counts) == set(range(10))
    assert max(counts.values()) - min(counts.values()) <= 1  # M/N each, +-1


def test_maglev_removing_a_backend_moves_little():
    size, n = 4093, 20
    before = [NAMES[i] for i in maglev.table(NAMES[:n], size)]
    removed = NAMES[7]
    rest = [x for x in NAMES[:n] if x != removed]
    after = [rest[i] for i in maglev.table(rest, size)]
    moved = sum(1 for a, b in zip(before, after, strict=True) if a != b and a != removed)
    own = sum(1 for a in before if a == removed)
    assert own == pytest.approx(size / n, abs=1)
    # the removed backend's slots move, and only a few percent of the others'
    assert moved <= 0.05 * size, moved


def test_maglev_adding_a_backend_moves_little():
    size, n = 4093, 20
    before = [NAMES[i] for i in maglev.table(NAMES[:n], size)]
    after = [NAMES[: n + 1][i] for i in maglev.table(NAMES[: n + 1], size)]
    taken = sum(1 for b in after if b == NAMES[n])
    moved = sum(1 for a, b in zip(before, after, strict=True) if a != b and b != NAMES[n])
    assert taken == pytest.approx(size / (n + 1), abs=1)
    assert moved <= 0.05 * size, moved


def test_table_size_is_prime_and_memory_conscious():
    assert maglev.table_size(3, 10) == 251
    assert maglev.table_size(100, 10) == 1021
    # 10,000 small services stay small: 10,000 rows of 251 slots are 10 MB
    assert maglev.table_size(10, 10_000) == 251
    # a big service among many: the largest prime the budget allows, above its backend count
    assert maglev.table_size(1000, 2000) == 8191  # below 10 N: the budget's largest prime
    with pytest.raises(maglev.TableSizeError):
        maglev.table_size(5000, 10_000)  # 10,000 rows of 8191 slots exceed 64 MiB
    with pytest.raises(maglev.TableSizeError):
        maglev.table_size(70_000, 1)


def test_reference_hash_matches_known_values():
    # pinned: the C side (lib/lb.h) is tested against these through the kernel tests
    assert mix(0, 0, 0) == 0
    assert flow_hash("10.0.0.1", 1234, 80, 6) == flow_hash("10.0.0.1", 1234, 80, 6)
    assert flow_hash("10.0.0.1", 1234, 80, 6) != flow_hash("10.0.0.1", 1235, 80, 6)
    assert flow_hash("10.0.0.1", 1, 2, 6, affinity=True) == flow_hash("10.0.0.1", 9, 9, 17, True)
    rng = random.Random(1)
    row = [rng.randrange(1, 5) for _ in range(251)]
    h = flow_hash("10.0.0.2", 40000, 80, 6)
    assert pick(row, h) == row[h % 251]


def test_plan_per_node_entries():
    p = plan(resolve(_cluster()))
    assert p.capacities["NETCC_LB_MAGLEV_SIZE"] == 251
    node1, node2 = p.nodes
    svc1 = {(e.key.vip, e.key.port, e.key.scope): e for e in node1.maps["netcc_lb_services"]}
    assert svc1[("10.96.0.12", 80, 0)].value.count == 0  # no backend: drops
    local1 = svc1[("192.168.50.11", 30080, 1)].value
    local2 = {(e.key.vip, e.key.port): e for e in node2.maps["netcc_lb_services"]}[
        ("192.168.50.12", 30080)
    ].value
    assert local1.count == 1 and local2.count == 2  # externalTrafficPolicy Local
    assert local1.row == local2.row  # the same row number, node-specific contents
    cluster1 = svc1[("192.168.50.11", 30081, 1)].value
    assert cluster1.count == 3 and cluster1.row == svc1[("10.96.0.14", 80, 0)].value.row
    assert svc1[("10.96.0.11", 80, 0)].value.timeout == 60
    back1 = {e.value.ip: e.value.flags for e in node1.maps["netcc_lb_backends"]}
    assert back1["10.244.1.20"] == 1 and back1["10.244.2.20"] == 0
    rows1 = {e.key.id: e.value.backends for e in node1.maps["netcc_lb_maglev"]}
    ids1 = {e.key.id: e.value.ip for e in node1.maps["netcc_lb_backends"]}
    assert {ids1[i] for i in rows1[local1.row]} == {"10.244.1.20"}
    assert all(len(r) == 251 for r in rows1.values())
    assert any("port http" in c for c in p.services)


def test_ten_thousand_services_fit():
    lines = [
        "apiVersion: netcc.io/v1alpha1",
        "kind: ClusterNetwork",
        "metadata: {name: many}",
        "spec:",
        "  podCIDR: 10.244.0.0/16",
        "  serviceCIDR: 10.96.0.0/12",
        "  nodes: [{name: n1, address: 192.168.0.1, podCIDR: 10.244.1.0/24}]",
        "  namespaces: [{name: a}]",
        "  workloads:",
    ]
    for i in range(3):
        lines.append(
            f"    - {{name: w{i}, namespace: a, node: n1, labels: {{app: w}}, "
            f"ips: [10.244.1.{10 + i}]}}"
        )
    lines.append("  services:")
    for i in range(10_000):
        ip = f"10.96.{i // 250}.{i % 250 + 1}"
        lines.append(
            f"    - {{name: s{i}, namespace: a, type: ClusterIP, clusterIP: {ip}, "
            f"selector: {{app: w}}, ports: [{{port: 80, targetPort: 8080}}]}}"
        )
    cluster = parse_spec("\n".join(lines).encode(), "many.yaml")[0]
    p = plan(resolve(cluster))
    size = p.capacities["NETCC_LB_MAGLEV_SIZE"]
    rows = p.capacities["NETCC_MAX_LB_ROWS"]
    assert size == 251
    assert rows * size * 4 <= 64 << 20
