"""The daemon's live backends, from EndpointSlices to LB entries (pure)."""

import json

import pytest
from dynspecs import SPEC

from netcc.contract.entries import as_dicts
from netcc.contract.services import slot_table
from netcc.frontend import parse_spec
from netcc.loader.daemon.lbservices import (
    BACKENDS_MAP,
    MEMBERS_MAP,
    ROWS_MAP,
    SERVICES_MAP,
    Reconciler,
)
from netcc.loader.kube.endpointslices import EndpointSlice, SliceEndpoint, SlicePort
from netcc.plan.planner import plan
from netcc.resolve.resolution import resolve


@pytest.fixture(scope="module")
def compiled():
    p = plan(resolve(parse_spec(SPEC.encode(), "dyn.yaml")[0]))
    entries = {
        n.name: [
            dict(zip(("key", "value"), as_dicts(e), strict=True), note=e.note)
            for e in n.maps["netcc_lb_services"]
        ]
        for n in p.nodes
    }
    return p.dynamic, entries


def _ep(ip, ready=True, serving=None, terminating=False, node=""):
    return SliceEndpoint(ip, ready, ready if serving is None else serving, terminating, node)


def _slice(name, port, eps, svc="web", ns="app", pname="http", proto="TCP"):
    return EndpointSlice(ns, name, svc, "IPv4", (SlicePort(pname, port, proto),), tuple(eps))


def _rec(compiled, node="n1"):
    services, entries = compiled
    return Reconciler(node, services, entries[node])


def _members(rec, row):
    return sorted(
        (e["key"]["ip"], e["key"]["port"])
        for (m, _), e in rec.entries.items()
        if m == MEMBERS_MAP and e["key"]["row"] == row
    )


def _port(compiled, service, name="http"):
    return next(p for p in compiled[0].ports if p.service == service and p.port_name == name)


def test_ready_endpoints_of_the_ports_classes_become_backends(compiled):
    rec = _rec(compiled)
    web = _port(compiled, "app/web")
    change = rec.update(
        "app/web",
        [
            _slice("web-a", 8080, [_ep("10.244.1.17"), _ep("10.244.2.18", ready=False)]),
            _slice("web-b", 9090, [_ep("10.244.3.41")]),  # canary's block, its own port
        ],
    )
    assert change
    assert _members(rec, web.cluster_row) == [
        ("10.244.1.17", 8080),
        ("10.244.2.200", 8081),  # the static backend stays
        ("10.244.3.41", 9090),
    ]
    counts = {k: e["value"]["count"] for (m, k), e in rec.entries.items() if m == SERVICES_MAP}
    assert counts[("10.96.0.10", 80, 6, 0)] == 3


def test_other_classes_outside_addresses_and_wrong_ports_are_rejected(compiled):
    rec = _rec(compiled)
    web = _port(compiled, "app/web")
    rec.update(
        "app/web",
        [
            _slice(
                "web-a",
                8080,
                [
                    _ep("10.244.1.137"),  # app/api's block
                    _ep("10.9.9.9"),  # outside every podCIDR
                    _ep("10.244.3.41"),  # canary's block, but canary serves 9090
                    _ep("10.244.1.20"),  # web's block: accepted
                ],
            )
        ],
    )
    assert _members(rec, web.cluster_row) == [("10.244.1.20", 8080), ("10.244.2.200", 8081)]
    report = next(p for p in rec.report() if p["port"] == web.label)
    assert len(report["rejected"]) == 3
    assert any("targetPort 9090" in r for r in report["rejected"])


def _block_ip(compiled, klass, node, i):
    services = compiled[0]
    pc = next(c for p in services.ports for c in p.classes if c.key == klass)
    n = next(n for n in services.nodes if n.node == node)
    return str(n.pod_cidr.network_address + pc.offset + i)


def test_kep_1669_terminating_serving_only_without_ready(compiled):
    rec = _rec(compiled)
    api = _port(compiled, "app/api")
    a, b = _block_ip(compiled, "app/api", "n1", 1), _block_ip(compiled, "app/api", "n2", 1)
    rec.update("app/api", [_slice("api", 7000, [
        _ep(a, ready=False, serving=True, terminating=True),
        _ep(b),
    ], svc="api")])  # fmt: skip
    assert _members(rec, api.cluster_row) == [(b, 7000)]
    # the local row (internalTrafficPolicy Local) chooses among n1's own: none ready, so the
    # serving one that terminates
    assert _members(rec, api.local_row) == [(a, 7000)]
    rec.update("app/api", [_slice("api", 7000, [
        _ep(a, ready=False, serving=False, terminating=True),
    ], svc="api")])  # fmt: skip
    assert _members(rec, api.cluster_row) == []
    assert _members(rec, api.local_row) == []
    counts = {k: e["value"]["count"] for (m, k), e in rec.entries.items() if m == SERVICES_MAP}
    assert counts[("10.96.0.11", 7000, 6, 0)] == 0  # drops: DROP_NO_BACKEND


def test_local_rows_are_this_nodes_endpoints_by_address(compiled):
    web = _port(compiled, "app/web")
    ips = [_block_ip(compiled, "app/web", n, 2) for n in ("n1", "n2", "n3")]
    for node, ip in zip(("n1", "n2", "n3"), ips, strict=True):
        rec = _rec(compiled, node)
        # nodeName lies: the address decides the node
        rec.update("app/web", [_slice("w", 8080, [_ep(i, node="n3") for i in ips])])
        local = [m for m in _members(rec, web.local_row) if m[1] == 8080]
        assert local == [(ip, 8080)]


def test_rows_move_only_the_changed_backends_slots(compiled):
    rec = _rec(compiled)
    web = _port(compiled, "app/web")
    ips = [_block_ip(compiled, "app/web", n, i) for n in ("n1", "n2", "n3") for i in range(2, 6)]

    def row():
        return next(
            e["value"]["backends"]
            for (m, k), e in rec.entries.items()
            if m == ROWS_MAP and k == (web.cluster_row,)
        )

    rec.update("app/web", [_slice("w", 8080, [_ep(i) for i in ips])])
    before = row()
    change = rec.update("app/web", [_slice("w", 8080, [_ep(i) for i in ips[1:]])])
    after = row()
    gone = compiled[0].backend_id(__import__("ipaddress").IPv4Address(ips[0]), 8080, "TCP")
    assert any(b == gone for b in before)
    assert all(a in (b, gone) for a, b in zip(before, after, strict=True))
    assert (BACKENDS_MAP, (gone,)) in change.deletes
    assert [(p.service, sorted(g)) for p, g in change.removed] == [("app/web", [(ips[0], 8080)])]
    # the row equals the table of the live set computed from scratch
    idents = [*sorted(f"{i}:8080/TCP" for i in ips[1:]), "10.244.2.200:8081/TCP"]
    ids = {f"{i}:8080/TCP": compiled[0].backend_id(
        __import__("ipaddress").IPv4Address(i), 8080, "TCP") for i in ips[1:]}  # fmt: skip
    ids["10.244.2.200:8081/TCP"] = 1
    assert list(after) == [ids[idents[s]] for s in slot_table(idents, compiled[0].maglev_size)]


def test_a_backend_two_ports_share_stays_while_one_holds_it(compiled):
    rec = _rec(compiled)
    ip = _block_ip(compiled, "app/web", "n1", 3)
    both = [
        _slice("w", 8080, [_ep(ip)]),
        EndpointSlice("app", "d", "web", "IPv4", (SlicePort("dns", 5353, "UDP"),), (_ep(ip),)),
    ]
    rec.update("app/web", both)
    backends = {k for (m, k) in rec.entries if m == BACKENDS_MAP}
    assert len(backends) == 2  # (ip, 8080/TCP) and (ip, 5353/UDP): two numbers
    change = rec.update("app/web", both[1:])
    assert len([k for k in change.deletes if k[0] == BACKENDS_MAP]) == 1
    assert [p.protocol for p, _ in change.removed] == ["TCP"]


def test_overlay_replaces_outs_dynamic_rows(compiled):
    from netcc.loader.desired import ServiceOverlay, with_overlay

    _services, entries = compiled
    rec = _rec(compiled)
    rec.update("app/web", [_slice("w", 8080, [_ep(_block_ip(compiled, "app/web", "n1", 4))])])
    overlay = ServiceOverlay(rec.rows, rec.overlay())
    merged = with_overlay(SERVICES_MAP, entries["n1"], overlay)
    web = _port(compiled, "app/web")
    keys = [json.dumps(e["key"], sort_keys=True) for e in merged]
    assert len(keys) == len(set(keys)) == len(entries["n1"])  # replaced, never doubled
    cip = next(e for e in merged if e["key"]["vip"] == "10.96.0.10" and e["key"]["port"] == 80)
    assert cip["value"]["row"] == web.cluster_row and cip["value"]["count"] == 2
