"""The node daemon's metrics without a kernel (`netcc.loader.daemon.metrics`): which labels a
verdict gets (bounded: rules by policy and index, default denies summed per direction, reserved
verdicts by name), drops by reason, the collector serving what it could read, the daemon's own
instruments, the HTTP endpoint, and the Grafana dashboard asking only for metrics the daemon
exports. Fake counter readings stand in for the kernel maps (tests/daemon reads real ones)."""

from __future__ import annotations

import json
import re
import urllib.request
from importlib import resources

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from netcc.contract.verdicts import FIRST_RULE_VERDICT, RESERVED_VERDICTS
from netcc.loader import state
from netcc.loader.daemon.metrics import (
    Busy,
    DaemonMetrics,
    Fill,
    Reading,
    drop_reason,
    parse_address,
    serve,
    verdict_labels,
)

PATHS = state.paths_for("node-1", "/nonexistent/pins", "/nonexistent/state")
DIGEST = "ab" * 32


def reserved() -> dict[int, dict]:
    return {
        v.number: {"number": v.number, "name": v.name, "action": v.action}
        for v in RESERVED_VERDICTS
    }


def rule(n: int, policy: str, direction: str, index: int) -> dict:
    return {"number": n, "name": f"RULE_{n}", "action": "allow", "policy": policy,
            "direction": direction, "index": index}  # fmt: skip


def deny(n: int, pod: str, direction: str) -> dict:
    return {"number": n, "name": f"DENY_{n}", "action": "drop", "pod": pod, "direction": direction}


def table(pods: int = 50) -> dict[int, dict]:
    """Two rules, and a default deny per pod and direction for `pods` pods."""
    t = reserved()
    t[32] = rule(32, "shop/web-in", "ingress", 0)
    t[33] = rule(33, "shop/web-in", "ingress", 1)
    n = 34
    for i in range(pods):
        for direction in ("ingress", "egress"):
            t[n] = deny(n, f"shop/pod-{i}", direction)
            n += 1
    return t


def scrape(metrics: DaemonMetrics) -> dict[str, list]:
    """name -> samples of the registry's exposition, parsed as Prometheus would."""
    text = prometheus_client.generate_latest(metrics.registry).decode()
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append(s)
    return out


def value(samples: dict[str, list], name: str, **labels: str) -> float:
    found = [s.value for s in samples.get(name, []) if s.labels == labels]
    assert len(found) == 1, f"{name}{labels}: {found} of {samples.get(name)}"
    return found[0]


def fake(reading: Reading | None, fill: dict | None = None, ready: bool = True) -> DaemonMetrics:
    return DaemonMetrics(
        "node-1", PATHS, lambda: ready, read=lambda p: reading, fill=lambda p: fill or {}
    )


# --- labels -------------------------------------------------------------------------------


def test_a_rule_is_labelled_by_its_policy_and_index() -> None:
    got = verdict_labels(rule(36, "shop/frontend-ingress", "ingress", 0))
    assert got.values() == ["shop/frontend-ingress", "0", "ingress", "allowed"]


def test_a_default_deny_is_labelled_without_its_pod() -> None:
    got = verdict_labels(deny(40, "shop/db", "egress"))
    assert got.values() == ["", "default-deny", "egress", "dropped"]
    assert drop_reason(deny(40, "shop/db", "egress")) == "policy_denied"


def test_reserved_verdicts_are_labelled_by_name_and_drops_by_lower_case_reason() -> None:
    for v in RESERVED_VERDICTS:
        entry = {"number": v.number, "name": v.name, "action": v.action}
        got = verdict_labels(entry)
        assert got.rule == v.name and got.policy == "" and got.direction == ""
        assert got.verdict == ("allowed" if v.action == "allow" else "dropped")
        if v.action == "drop":
            assert drop_reason(entry) == v.name.removeprefix("DROP_").lower()
        else:
            assert drop_reason(entry) is None
    assert drop_reason({"name": "DROP_SPOOFED", "action": "drop"}) == "spoofed"
    assert drop_reason({"name": "DROP_NODEPORT_NO_PORT", "action": "drop"}) == "nodeport_no_port"


def test_labels_stay_bounded_however_many_pods_have_a_default_deny() -> None:
    sizes = []
    for pods in (1, 10, 500):
        t = table(pods)
        reading = Reading(DIGEST, t, {n: (1, 100) for n in t})
        samples = scrape(fake(reading))
        series = samples["netcc_policy_verdict_packets_total"]
        sizes.append(len(series))
        pod_names = {f"shop/pod-{i}" for i in range(pods)}
        assert not pod_names & {v for s in series for v in s.labels.values()}
        # every pod's default deny of a direction is one series: the sum
        for direction in ("ingress", "egress"):
            got = value(samples, "netcc_policy_verdict_packets_total", policy="",
                        rule="default-deny", direction=direction, verdict="dropped")  # fmt: skip
            assert got == pods
        assert value(samples, "netcc_drops_total", reason="policy_denied") == 2 * pods
    assert sizes[0] == sizes[1] == sizes[2] == len(RESERVED_VERDICTS) + 2 + 2


def test_counters_and_bytes_are_reported_per_verdict_label_set() -> None:
    t = table(2)
    counters = {17: (3, 180), 32: (10, 1000), 33: (1, 60), 34: (2, 120), 36: (5, 300)}
    samples = scrape(fake(Reading(DIGEST, t, counters)))
    ingress0 = {"policy": "shop/web-in", "rule": "0", "direction": "ingress", "verdict": "allowed"}
    assert value(samples, "netcc_policy_verdict_packets_total", **ingress0) == 10
    assert value(samples, "netcc_policy_verdict_bytes_total", **ingress0) == 1000
    spoofed = {"policy": "", "rule": "DROP_SPOOFED", "direction": "", "verdict": "dropped"}
    assert value(samples, "netcc_policy_verdict_packets_total", **spoofed) == 3
    assert value(samples, "netcc_drops_total", reason="spoofed") == 3
    deny_in = {"policy": "", "rule": "default-deny", "direction": "ingress", "verdict": "dropped"}
    assert value(samples, "netcc_policy_verdict_packets_total", **deny_in) == 2 + 5
    assert value(samples, "netcc_policy_verdict_bytes_total", **deny_in) == 120 + 300
    assert value(samples, "netcc_drops_total", reason="no_backend") == 0  # every reason, from 0
    assert value(samples, "netcc_artifacts_info", node="node-1", digest=DIGEST) == 1
    assert value(samples, "netcc_daemon_ready") == 1


def test_the_stale_verdict_is_a_named_allow() -> None:
    from netcc.loader import migrate

    t = migrate.verdict_table({"verdicts": list(table(1).values())}, 15)
    samples = scrape(fake(Reading(DIGEST, t, {15: (4, 400)})))
    stale = {"policy": "", "rule": migrate.STALE_NAME, "direction": "", "verdict": "allowed"}
    assert value(samples, "netcc_policy_verdict_packets_total", **stale) == 4


def test_events_and_map_fill() -> None:
    reading = Reading(DIGEST, reserved(), {}, {"sent": 7, "lost_budget": 2, "lost_ring": 1})
    fill = {"netcc_ct": Fill(10, 262144), "netcc_lb_nat": Fill(0, 65536)}
    samples = scrape(fake(reading, fill))
    assert value(samples, "netcc_flow_events_total") == 7
    assert value(samples, "netcc_flow_events_lost_total", reason="budget") == 2
    assert value(samples, "netcc_flow_events_lost_total", reason="ring") == 1
    assert value(samples, "netcc_map_entries", map="netcc_ct") == 10
    assert value(samples, "netcc_map_capacity", map="netcc_ct") == 262144
    assert value(samples, "netcc_map_capacity", map="netcc_lb_nat") == 65536


# --- the collector when reading fails ------------------------------------------------------


def test_nothing_applied_serves_the_daemons_own_metrics() -> None:
    samples = scrape(fake(None, ready=False))
    assert value(samples, "netcc_daemon_ready") == 0
    assert "netcc_artifacts_info" not in samples
    assert "netcc_policy_verdict_packets_total" not in samples
    assert value(samples, "netcc_applies_total", result="success") == 0


def test_a_scrape_during_an_apply_serves_the_previous_reading() -> None:
    readings: list = [Reading(DIGEST, table(1), {32: (1, 60)}), Busy("applying")]

    def read(paths: state.Paths) -> Reading:
        got = readings.pop(0) if readings else Reading("cd" * 32, table(1), {32: (9, 540)})
        if isinstance(got, Exception):
            raise got
        return got

    m = DaemonMetrics("node-1", PATHS, lambda: True, read=read, fill=lambda p: {})
    rule0 = {"policy": "shop/web-in", "rule": "0", "direction": "ingress", "verdict": "allowed"}
    for want, digest in ((1, DIGEST), (1, DIGEST), (9, "cd" * 32)):
        samples = scrape(m)
        assert value(samples, "netcc_policy_verdict_packets_total", **rule0) == want
        assert value(samples, "netcc_artifacts_info", node="node-1", digest=digest) == 1
    assert value(scrape(m), "netcc_metrics_errors_total", part="verdicts") == 0


def test_a_part_that_cannot_be_read_is_counted_and_the_rest_served() -> None:
    def broken(paths: state.Paths) -> dict:
        raise OSError(2, "No such file or directory")

    m = DaemonMetrics(
        "node-1",
        PATHS,
        lambda: True,
        read=lambda p: Reading(DIGEST, reserved(), {17: (2, 120)}),
        fill=broken,
    )
    for _ in range(2):
        samples = scrape(m)
    assert value(samples, "netcc_metrics_errors_total", part="maps") == 2
    assert "netcc_map_entries" not in samples
    assert value(samples, "netcc_drops_total", reason="spoofed") == 2


# --- the daemon's own instruments ----------------------------------------------------------


def test_applies_are_timed_and_counted_by_result() -> None:
    m = fake(None)
    with m.applying():
        pass
    with pytest.raises(RuntimeError), m.applying():
        raise RuntimeError("verifier says no")
    samples = scrape(m)
    assert value(samples, "netcc_applies_total", result="success") == 1
    assert value(samples, "netcc_applies_total", result="error") == 1
    assert value(samples, "netcc_apply_duration_seconds_count") == 2
    assert value(samples, "netcc_apply_last_success_timestamp_seconds") > 0


class Handler:
    def __init__(self) -> None:
        self.node = "node-1"

    def add(self, req: object) -> str:
        if req == "bad":
            raise ValueError("refused")
        return "result"

    def delete(self, req: object) -> None:
        pass

    def check(self, req: object) -> None:
        pass

    def status(self, req: object) -> None:
        pass

    def gc(self, req: object) -> None:
        pass


def test_cni_commands_are_counted_and_add_timed_without_changing_their_answers() -> None:
    m = fake(None)
    h = m.instrument(Handler())
    assert h.add("ok") == "result"
    with pytest.raises(ValueError, match="refused"):
        h.add("bad")
    h.delete("x")
    h.gc("x")
    assert h.node == "node-1"  # the rest of the handler shows through
    samples = scrape(m)
    assert value(samples, "netcc_cni_requests_total", command="add", result="success") == 1
    assert value(samples, "netcc_cni_requests_total", command="add", result="error") == 1
    assert value(samples, "netcc_cni_requests_total", command="del", result="success") == 1
    assert value(samples, "netcc_cni_requests_total", command="check", result="success") == 0
    assert value(samples, "netcc_cni_add_duration_seconds_count") == 2


def test_the_global_registry_is_left_alone() -> None:
    before = set(prometheus_client.REGISTRY._names_to_collectors)
    fake(Reading(DIGEST, table(1), {}))
    assert set(prometheus_client.REGISTRY._names_to_collectors) == before


# --- serving ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "want"),
    [
        (":9967", ("0.0.0.0", 9967)),
        ("0.0.0.0:9967", ("0.0.0.0", 9967)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("[::]:9967", ("::", 9967)),
        ("off", None),
        ("OFF", None),
    ],
)
def test_metrics_address(text: str, want: tuple | None) -> None:
    assert parse_address(text) == want


@pytest.mark.parametrize("text", ["9967", "host", "host:port", ":99999", ""])
def test_bad_metrics_address(text: str) -> None:
    with pytest.raises(ValueError, match="metrics address"):
        parse_address(text)


def test_served_over_http_and_a_taken_port_is_no_failure() -> None:
    m = fake(Reading(DIGEST, table(1), {32: (5, 300)}))
    server = serve(m.registry, "127.0.0.1:0")
    assert server is not None
    try:
        host, port = server.address
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy
        with opener.open(f"http://{host}:{port}/metrics", timeout=10) as r:
            assert r.status == 200
            text = r.read().decode()
        assert 'netcc_policy_verdict_packets_total{direction="ingress",policy="shop/web-in"' in text
        assert serve(m.registry, f"127.0.0.1:{port}") is None  # logged, never raised
    finally:
        server.close()
    assert serve(m.registry, "off") is None


# --- the dashboard ------------------------------------------------------------------------

DASHBOARD = resources.files("netcc.templates") / "grafana" / "netcc-node.json"
PROMQL_NAME = re.compile(r"\bnetcc_[a-z0-9_]+")


def expressions(node: object) -> list[str]:
    """Every PromQL expression of a dashboard: panels' targets and template variables."""
    found = []
    if isinstance(node, dict):
        for key, v in node.items():
            if key in ("expr", "definition") and isinstance(v, str):
                found.append(v)
            elif key == "query" and isinstance(v, dict) and isinstance(v.get("query"), str):
                found.append(v["query"])
            else:
                found += expressions(v)
    elif isinstance(node, list):
        for v in node:
            found += expressions(v)
    return found


def exported_names() -> set[str]:
    """Every sample name the daemon exports, with a reading that fills every family."""
    t = table(1)
    reading = Reading(
        DIGEST, t, {n: (1, 1) for n in t}, {"sent": 1, "lost_budget": 0, "lost_ring": 0}
    )
    m = fake(reading, {"netcc_ct": Fill(1, 2)})
    with m.applying():
        pass
    m.instrument(Handler()).add("ok")
    return m.names()


def test_the_dashboard_asks_only_for_metrics_the_daemon_exports() -> None:
    text = DASHBOARD.read_text()
    doc = json.loads(text)
    assert text == json.dumps(doc, indent=2, sort_keys=True) + "\n", "canonical: sorted, indent 2"
    exprs = expressions(doc["panels"]) + expressions(doc["templating"])
    assert len(exprs) >= 12
    used = {name for e in exprs for name in PROMQL_NAME.findall(e)}
    exported = exported_names()
    assert used - exported == set(), f"not exported by the daemon: {sorted(used - exported)}"
    for wanted in (
        "netcc_policy_verdict_packets_total",
        "netcc_drops_total",
        "netcc_map_entries",
        "netcc_map_capacity",
        "netcc_cni_add_duration_seconds_bucket",
        "netcc_apply_duration_seconds_bucket",
        "netcc_applies_total",
        "netcc_flow_events_lost_total",
        "netcc_artifacts_info",
    ):
        assert wanted in used, f"the dashboard shows no {wanted}"


def test_the_dashboard_panels_are_laid_out_and_named() -> None:
    doc = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    assert doc["uid"] == "netcc-node"
    for p in doc["panels"]:
        pos = p["gridPos"]
        assert pos["x"] + pos["w"] <= 24 and pos["h"] > 0
        assert p["title"]
        if p["type"] != "row":
            assert p["targets"] and all(t["expr"] and t["refId"] for t in p["targets"])
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_no_verdict_number_is_a_label_value() -> None:
    """A verdict number changes when rules are added before it: never a label."""
    t = table(3)
    samples = scrape(fake(Reading(DIGEST, t, {n: (1, 1) for n in t})))
    for s in samples["netcc_policy_verdict_packets_total"]:
        for v in s.labels.values():
            assert not re.fullmatch(r"(RULE|DENY)_\d+", v)
            assert not (v.isdigit() and int(v) >= FIRST_RULE_VERDICT)
