"""Flow records without a kernel: the verdict phrasing against `netcc why`'s own words, the
record and its JSON, the text line, the filters (hubble's semantics) and the request line.
"""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path

import pytest

from netcc.contract import flows
from netcc.contract.verdicts import RESERVED_VERDICTS, VERDICTS_PATH, phrase, reason_of, rule_name
from netcc.frontend import parse_spec
from netcc.pipeline import compile_spec
from netcc.review.why import format_text, question, to_json, why

REPO = Path(__file__).resolve().parents[2]
T0 = 1733608201123456789  # 2024-12-07T21:50:01.123456789Z


def entry(**fields):
    return {"number": 40, "name": "RULE_40", "action": "allow", "doc": "...", **fields}


RULE = entry(
    policy="shop/frontend-ingress",
    direction="ingress",
    index=0,
    path="spec.policies[1].spec.ingress[0]",
)
DENY = {
    "number": 47,
    "name": "DENY_47",
    "action": "drop",
    "doc": "...",
    "direction": "egress",
    "path": "spec.workloads[0]",
    "pod": "shop/frontend",
}
RESERVED = {
    v.name: {"number": v.number, "name": v.name, "action": v.action, "doc": v.doc}
    for v in RESERVED_VERDICTS
}


# --- the phrasing is why's --------------------------------------------------------------------


# (spec, from, to, port, protocol): every reason a side can have, rules and denies of pods and
# classes, on both directions.
QUESTIONS = [
    ("shop.yaml", "shop/frontend", "shop/cache", 6379, "TCP"),
    ("shop.yaml", "192.0.2.7", "shop/frontend", 8080, "TCP"),
    ("shop.yaml", "shop/frontend", "shop/frontend", 8080, "TCP"),
    ("shop.yaml", "192.168.77.11", "shop/frontend", 8080, "TCP"),
    ("shop.yaml", "shop/frontend", "shop/cart", 7000, "TCP"),
    ("shop.yaml", "monitoring/prometheus", "shop/frontend", 9090, "TCP"),
    ("pods.yaml", "shop/web", "shop/api@node-2", 8080, "TCP"),
    ("pods.yaml", "shop/web", "shop/api@node-2", 9000, "TCP"),
    ("pods.yaml", "monitoring/prometheus@node-3", "shop/web", 8080, "TCP"),
    ("pods.yaml", "monitoring/prometheus", "shop/web", 8080, "UDP"),
    ("pods.yaml", "shop/api", "shop/db", 5432, "TCP"),
]


@pytest.fixture(scope="module")
def compiled() -> dict[str, tuple]:
    """Each example's cluster and the verdicts.json its compile writes."""
    found = {}
    for name in ("shop.yaml", "pods.yaml"):
        spec = (REPO / "examples" / name).read_bytes()
        table = json.loads(compile_spec(spec, name)[VERDICTS_PATH])["verdicts"]
        found[name] = (parse_spec(spec, name)[0], table)
    return found


def _entry_for(side: dict, direction: str, table: list[dict]) -> list[dict]:
    """The verdicts the datapath counts a side of `why` under."""
    reason = side["reason"]
    if reason == "rule":
        keys = {(r["policy"], r["direction"], r["index"]) for r in side["rules"]}
        return [v for v in table if (v.get("policy"), v.get("direction"), v.get("index")) in keys]
    if reason == "default-deny":
        return [
            v
            for v in table
            if v.get("pod") == side["pod"] and v["direction"] == direction and v["action"] == "drop"
        ]
    name = {"self": "ALLOW_SELF", "host": "ALLOW_FROM_HOST"}.get(reason)
    return [RESERVED[name or f"ALLOW_UNISOLATED_{direction.upper()}"]]


@pytest.mark.parametrize("q", QUESTIONS, ids=lambda q: f"{q[0]}:{q[1]}->{q[2]}:{q[3]}/{q[4]}")
def test_phrase_is_why_s_words(q, compiled):
    spec, src, dst, port, proto = q
    cluster, table = compiled[spec]
    doc = to_json(cluster, why(cluster, question(cluster, src, dst, port, proto)))
    text = format_text(doc, spec).splitlines()
    checked = 0
    for direction in ("egress", "ingress"):
        side = doc[direction]
        if side["reason"] == "not-a-pod":
            continue
        at = next(i for i, line in enumerate(text) if line.startswith(f"  {direction} of "))
        words = text[at].split(": ", 1)[1].split(", ", 1)[1]  # after "pass, " or "DROP, "
        entries = _entry_for(side, direction, table)
        assert entries, (direction, side)
        said = {phrase(e, side["pod"]) for e in entries}
        if side["reason"] == "rule":
            # why: "allowed by", then a line per rule; an event names its one rule
            named = [line.split(" at ", 1)[0].strip() for line in text[at + 1 :]]
            assert said == {f"{words} {n}" for n in named[: len(entries)]}, (said, text)
        else:
            assert said == {words}, (said, text)
        checked += 1
    assert checked


def test_the_questions_cover_every_reason(compiled):
    seen = set()
    for spec, src, dst, port, proto in QUESTIONS:
        cluster = compiled[spec][0]
        doc = to_json(cluster, why(cluster, question(cluster, src, dst, port, proto)))
        seen |= {doc[d]["reason"] for d in ("egress", "ingress")}
    assert seen >= {"self", "host", "unisolated", "rule", "default-deny"}


def test_phrase_of_every_reserved_verdict():
    assert phrase(RULE) == "allowed by shop/frontend-ingress ingress[0]"
    assert phrase(DENY) == "default deny: shop/frontend is isolated for egress and no rule matches"
    assert phrase(RESERVED["ALLOW_SELF"]) == "a pod may always reach itself"
    assert phrase(RESERVED["ALLOW_FROM_HOST"]) == "a pod's own node may always reach it"
    assert (
        phrase(RESERVED["ALLOW_UNISOLATED_INGRESS"], "shop/web")
        == "not isolated: no policy selects shop/web for ingress"
    )
    assert (
        phrase(RESERVED["ALLOW_UNISOLATED_EGRESS"], "shop/web")
        == "not isolated: no policy selects shop/web for egress"
    )
    for name, e in RESERVED.items():  # the others: their doc
        if name not in ("ALLOW_SELF", "ALLOW_FROM_HOST") and "UNISOLATED" not in name:
            assert reason_of(e) is None and phrase(e) == e["doc"]
    assert rule_name("a/b", "egress", 3) == "a/b egress[3]"


# --- records ------------------------------------------------------------------------------------


def event(**fields):
    base = dict(
        time_ns=0,
        verdict=40,
        ifindex=7,
        saddr="192.0.2.7",
        daddr="10.244.1.10",
        sport=41234,
        dport=8080,
        svc_addr="0.0.0.0",
        svc_port=0,
        proto=6,
        dir=1,
        kind=1,
        tcp_flags=0x02,
        len=60,
    )
    return base | fields


FRONTEND = flows.endpoint(
    "10.244.1.10", 8080, "workload", workload="shop/frontend", namespace="shop", node="node-1"
)
WORLD = flows.endpoint("192.0.2.7", 41234, "world")


def test_a_forwarded_record_names_its_rule():
    r = flows.flow_record(T0, "node-1", event(), WORLD, FRONTEND, RULE)
    assert r == {
        "type": "flow",
        "time": "2024-12-07T21:50:01.123456789Z",
        "node": "node-1",
        "kind": "new",
        "verdict": "forwarded",
        "verdictNumber": 40,
        "verdictName": "RULE_40",
        "direction": "ingress",
        "protocol": "TCP",
        "tcpFlags": "SYN",
        "length": 60,
        "ifindex": 7,
        "source": {"ip": "192.0.2.7", "port": 41234, "kind": "world"},
        "destination": {
            "ip": "10.244.1.10",
            "port": 8080,
            "kind": "workload",
            "workload": "shop/frontend",
            "namespace": "shop",
            "node": "node-1",
        },
        "policy": {
            "policy": "shop/frontend-ingress",
            "direction": "ingress",
            "index": 0,
            "path": "spec.policies[1].spec.ingress[0]",
        },
        "reason": "allowed by shop/frontend-ingress ingress[0]",
    }
    assert json.loads(flows.dumps(r)) == r and "\n" not in flows.dumps(r)
    assert flows.format_line(r, UTC) == (
        "Dec  7 21:50:01.123: world (192.0.2.7):41234 -> shop/frontend (10.244.1.10):8080 TCP "
        "ingress FORWARDED (allowed by shop/frontend-ingress ingress[0] at "
        "spec.policies[1].spec.ingress[0]) node-1"
    )


def test_a_dropped_record_names_the_default_deny_and_both_pods():
    web = flows.endpoint(
        "10.244.1.10",
        41234,
        "pod",
        "shop/frontend",
        pod="shop/frontend-6c9",
        namespace="shop",
        node="node-1",
    )
    cache = flows.endpoint(
        "10.244.2.11",
        6379,
        "pod",
        "shop/cache",
        pod="shop/cache-0",
        namespace="shop",
        node="node-2",
    )
    r = flows.flow_record(T0, "node-1", event(verdict=47, dir=2, kind=2), web, cache, DENY)
    assert r["verdict"] == "dropped" and r["kind"] == "drop" and r["direction"] == "egress"
    assert r["deny"] == {"pod": "shop/frontend", "direction": "egress", "path": "spec.workloads[0]"}
    assert "policy" not in r and "reserved" not in r
    assert flows.format_line(r, UTC) == (
        "Dec  7 21:50:01.123: shop/frontend-6c9 (10.244.1.10):41234 -> shop/cache-0 "
        "(10.244.2.11):6379 TCP egress DROPPED (default deny: shop/frontend is isolated for "
        "egress and no rule matches) node-1"
    )


def test_reserved_verdicts_service_and_unknown_numbers():
    web = flows.endpoint(
        "10.244.1.32", 8080, "class", "shop/web", namespace="shop", node="node-2"
    )  # a pod of another node, known by its class
    client = flows.endpoint("10.244.1.5", 40000, "workload", workload="shop/client")
    svc = {"name": "shop/web", "ip": "10.96.0.10", "port": 80}
    unisolated = RESERVED["ALLOW_UNISOLATED_EGRESS"]
    r = flows.flow_record(T0, "node-1", event(verdict=2, dir=2), client, web, unisolated, svc)
    assert r["reserved"] == {"name": "ALLOW_UNISOLATED_EGRESS", "doc": unisolated["doc"]}
    assert r["reason"] == "not isolated: no policy selects shop/client for egress"
    assert r["service"] == svc
    assert flows.format_line(r, UTC) == (
        "Dec  7 21:50:01.123: shop/client (10.244.1.5):40000 -> shop/web@node-2 (10.244.1.32):8080"
        " via shop/web (10.96.0.10):80 TCP egress FORWARDED (not isolated: no policy selects "
        "shop/client for egress) node-1"
    )
    gone = flows.flow_record(T0, "node-1", event(verdict=99), WORLD, FRONTEND, None)
    assert "verdictName" not in gone and "99" in gone["reason"]
    udp = flows.flow_record(T0, "n", event(proto=17), WORLD, FRONTEND, RULE)
    assert "tcpFlags" not in udp and udp["protocol"] == "UDP"
    icmp = flows.flow_record(
        T0, "n", event(proto=1), flows.endpoint("192.0.2.7", 0, "world"), FRONTEND, RULE
    )
    assert " ICMP " in flows.format_line(icmp, UTC) and "):" not in flows.format_line(icmp, UTC)
    v6 = flows.flow_record(
        T0,
        "n",
        event(proto=0, verdict=20, kind=2),
        flows.endpoint("0.0.0.0", 0, "unknown"),
        flows.endpoint("0.0.0.0", 0, "unknown"),
        RESERVED["DROP_IPV6"],
    )
    assert v6["protocol"] == "IPv6"
    assert flows.format_line(v6, UTC).startswith("Dec  7 21:50:01.123: ? -> ? IPv6 ingress DROP")


def test_lost_record_and_its_line():
    r = flows.lost_record(T0, "node-1", budget=1234)
    assert r == {
        "type": "lost",
        "time": "2024-12-07T21:50:01.123456789Z",
        "node": "node-1",
        "lostBudget": 1234,
        "lostRing": 0,
        "lostQueue": 0,
    }
    assert flows.format_line(r) == "EVENTS LOST: node-1 budget 1234 ring 0"
    assert flows.format_line(flows.lost_record(T0, "n", queue=5)) == (
        "EVENTS LOST: n budget 0 ring 0 queue 5"
    )


def test_times_sort_as_text_and_read_back():
    times = [T0, T0 + 1, T0 + 999_999_999, T0 + 10**9, 10**9]
    texts = [flows.rfc3339(t) for t in times]
    assert sorted(texts) == [flows.rfc3339(t) for t in sorted(times)]
    assert all(len(t) == len(texts[0]) for t in texts)
    assert flows.parse_time(texts[0]).microsecond == 123456


def test_names_in_the_line_are_escaped():
    evil = flows.endpoint("10.244.1.9", 1, "pod", pod="shop/x\nDec  7 fake line")
    r = flows.flow_record(T0, "node-1", event(), evil, FRONTEND, RULE)
    assert "\n" not in flows.format_line(r, UTC)


def test_complete_names_class_ends_from_pod_tables():
    remote = flows.endpoint(
        "10.244.2.33", 9000, "class", "shop/api", namespace="shop", node="node-2"
    )
    r = flows.flow_record(T0, "node-1", event(), remote, FRONTEND, RULE)
    pods = {"10.244.2.33": {"pod": "shop/api-5d8", "class": "shop/api", "node": "node-2"}}
    done = flows.complete(dict(r), pods)
    assert done["source"]["kind"] == "pod" and done["source"]["pod"] == "shop/api-5d8"
    # another class, or another node, holding that address: left as it is
    for other in ({"class": "shop/web", "node": "node-2"}, {"class": "shop/api", "node": "n9"}):
        stale = {"10.244.2.33": {"pod": "shop/x", **other}}
        assert flows.complete(dict(r), stale)["source"]["kind"] == "class"


# --- filters --------------------------------------------------------------------------------------


def rec(src_pod="", dst_pod="", verdict="forwarded", proto="TCP", sport=1000, dport=80, **kw):
    def end(pod, port):
        if not pod:
            return flows.endpoint("192.0.2.7", port, "world")
        ns = pod.split("/")[0]
        return flows.endpoint("10.0.0.1", port, "pod", pod=pod, namespace=ns)

    return {
        "type": "flow",
        "node": kw.get("node", "node-1"),
        "verdict": verdict,
        "protocol": proto,
        "source": end(src_pod, sport),
        "destination": end(dst_pod, dport),
    }


@pytest.mark.parametrize(
    "flt, record, passes",
    [
        ({}, rec(), True),
        ({"node": ["node-2"]}, rec(), False),
        ({"node": ["node-2", "node-1"]}, rec(), True),
        ({"pod": ["shop/web"]}, rec("shop/web-7c9"), True),  # a prefix, either end
        ({"pod": ["shop/web"]}, rec(dst_pod="shop/web-7c9"), True),
        ({"pod": ["shop/"]}, rec("monitoring/p", "shop/db"), True),
        ({"pod": ["shop/api"]}, rec("shop/web-7c9", "shop/db"), False),
        ({"fromPod": ["shop/web"]}, rec(dst_pod="shop/web-7c9"), False),
        ({"toPod": ["shop/web"]}, rec(dst_pod="shop/web-7c9"), True),
        ({"fromPod": ["shop/a"], "toPod": ["shop/b"]}, rec("shop/a-1", "shop/b-1"), True),
        ({"fromPod": ["shop/a"], "toPod": ["shop/b"]}, rec("shop/b-1", "shop/a-1"), False),
        ({"pod": ["web"]}, rec("default/web-1"), True),  # no namespace: default
        ({"namespace": ["shop"]}, rec("monitoring/p", "shop/db"), True),
        ({"namespace": ["kube-system"]}, rec("monitoring/p", "shop/db"), False),
        ({"verdict": ["dropped"]}, rec(), False),
        ({"verdict": ["allowed"]}, rec(), True),
        ({"verdict": ["DROPPED", "forwarded"]}, rec(verdict="dropped"), True),
        ({"protocol": ["udp"]}, rec(), False),
        ({"protocol": ["6"]}, rec(), True),
        ({"port": [80]}, rec(), True),
        ({"port": ["1000"]}, rec(), True),  # either end's
        ({"port": [443]}, rec(), False),
        ({"pod": ["shop/"], "verdict": ["dropped"]}, rec("shop/a", verdict="dropped"), True),
        ({"pod": ["shop/"], "verdict": ["dropped"]}, rec("shop/a"), False),  # keys: all
        ({"pod": ["x/"], "node": ["node-1"]}, flows.lost_record(T0, "node-1", 1), True),
        ({"node": ["node-2"]}, flows.lost_record(T0, "node-1", 1), False),
    ],
)
def test_filters(flt, record, passes):
    assert flows.matches(record, flows.parse_filter(flt)) is passes


def test_class_and_workload_ends_match_pod_filters():
    r = {
        "type": "flow",
        "node": "n",
        "verdict": "dropped",
        "protocol": "TCP",
        "source": flows.endpoint("10.0.0.2", 1, "class", "shop/web", namespace="shop"),
        "destination": flows.endpoint("10.0.0.3", 2, "workload", workload="shop/db"),
    }
    assert flows.matches(r, flows.parse_filter({"fromPod": ["shop/web"]}))
    assert flows.matches(r, flows.parse_filter({"toPod": ["shop/db"]}))


@pytest.mark.parametrize(
    "bad",
    [
        {"verdict": ["maybe"]},
        {"protocol": ["tcpp"]},
        {"protocol": ["256"]},
        {"port": ["http"]},
        {"port": [70000]},
        {"colour": ["red"]},
        {"pod": [{"a": 1}]},
        ["pod"],
    ],
)
def test_bad_filters_are_refused(bad):
    with pytest.raises(flows.FlowFormatError):
        flows.parse_filter(bad)


def test_request_lines():
    req = flows.parse_request(b'{"last": 5, "follow": true, "filter": {"verdict": ["allowed"]}}')
    assert req == flows.Request("flows", 5, True, flows.Filter(verdict=("forwarded",)))
    assert flows.parse_request(json.dumps(req.to_json())) == req
    assert flows.parse_request('{"request": "pods"}').request == "pods"
    assert flows.parse_request('{"last": 100000}').last == flows.HISTORY
    for bad in (
        b"not json",
        b"[]",
        b'{"last": -1}',
        b'{"last": true}',
        b'{"follow": "yes"}',
        b'{"request": "stats"}',
        b'{"filter": {"port": ["x"]}}',
    ):
        with pytest.raises(flows.FlowFormatError):
            flows.parse_request(bad)
