"""Issue 16's metrics acceptance in the lab: a real Prometheus (Debian's `prometheus`) scrapes
every node daemon, and PromQL finds the drop of a denied probe on the node that dropped it.

The lab is examples/shop.yaml with workload classes (so a node daemon, `netcc load run`,
runs on every node, serving /metrics on its node address, port 9967) and an outside host,
`netcc-external`. Prometheus runs there (`nsenter --net`), as a monitoring server outside the
cluster would: the node addresses are on the lab's underlay, not reachable from the root
namespace. Its config, storage and log are in a temporary directory; it is killed and the
directory removed whatever happens. Every wait has a generous deadline and none is judged by
how long it took.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from lab_cli import REPO, netcc, print_daemon_logs

from netcc.contract.cni import METRICS_PORT
from netcc.lab.netns import entered
from netcc.lab.plan import EXTERNAL_NETNS
from netcc.lab.state import STATE_DIR, LabState
from netcc.loader.daemon.metrics import VERDICT_LABELS

PROMETHEUS = Path("/usr/bin/prometheus")
EXTERNAL = "192.0.2.10"
API = "127.0.0.1:9090"  # inside the external host's namespace, which is the test's alone
WAIT = 90.0  # seconds: Prometheus starting, a few scrapes at 1 s, on a loaded machine
EXIT_DENIED = 4
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Monitored:
    out: Path
    addresses: dict[str, str]  # node -> its address (its metrics target)
    prometheus: subprocess.Popen
    log: Path


def until(what: str, check: Callable[[], Any]) -> Any:
    """`check()` once it is truthy; fails after WAIT seconds (never judged by speed)."""
    deadline = time.monotonic() + WAIT
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            assert got, f"{what}: not within {WAIT:g} s"
            return got
        time.sleep(0.5)


def get(path: str, **params: str) -> Any:
    """GET from Prometheus's HTTP API, from inside the external host's namespace."""
    url = f"http://{API}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with entered(EXTERNAL_NETNS), NO_PROXY.open(url, timeout=10) as r:
        return json.loads(r.read()) if path.startswith("/api/") else r.read()


def query(promql: str) -> list[dict[str, Any]]:
    """An instant query's vector: [{"metric": {...}, "value": [ts, "1"]}]."""
    doc = get("/api/v1/query", query=promql)
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


def ready() -> bool:
    try:
        get("/-/ready")
        return True
    except OSError:
        return False


def config(addresses: dict[str, str]) -> dict[str, Any]:
    """Scrape every node each second. Targets carry `lab_node` (the daemon's own series
    already have a `node` label: netcc_artifacts_info)."""
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "netcc",
                "static_configs": [
                    {"targets": [f"{addr}:{METRICS_PORT}"], "labels": {"lab_node": node}}
                    for node, addr in sorted(addresses.items())
                ],
            }
        ],
    }


@pytest.fixture(scope="module")
def monitored(outs: dict[str, Path], shim: Path) -> Iterator[Monitored]:
    """The lab up with an outside host, and Prometheus running there."""
    if not PROMETHEUS.exists():
        pytest.fail(f"no {PROMETHEUS}: `make test-packages` installs Debian's prometheus")
    if LabState.exists(STATE_DIR):
        pytest.fail(f"a lab is already up ({STATE_DIR}); not touching it")
    out = outs["v1"]
    work = Path(tempfile.mkdtemp(prefix="netcc-prom-"))
    prometheus = None
    log = work / "prometheus.log"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NETCC_CNI_BIN", str(shim))
        try:
            netcc("lab", "up", str(REPO / "examples" / "shop.yaml"), "--artifacts", str(out),
                  "--external", EXTERNAL)  # fmt: skip
            inventory = json.loads(netcc("lab", "status", "--json").stdout)
            addresses = {name: n["address"] for name, n in inventory["nodes"].items()}
            conf = work / "prometheus.yml"
            conf.write_text(yaml.safe_dump(config(addresses)))
            argv = [
                "nsenter", f"--net=/run/netns/{EXTERNAL_NETNS}", str(PROMETHEUS),
                f"--config.file={conf}", f"--storage.tsdb.path={work / 'data'}",
                f"--web.listen-address={API}",
            ]  # fmt: skip
            with open(log, "wb") as f:
                prometheus = subprocess.Popen(
                    argv, stdout=f, stderr=f, stdin=subprocess.DEVNULL, start_new_session=True
                )
            until("Prometheus ready", lambda: prometheus.poll() is None and ready())
            yield Monitored(out, addresses, prometheus, log)
        finally:
            if prometheus is not None:
                prometheus.terminate()
                try:
                    prometheus.wait(30)
                except subprocess.TimeoutExpired:
                    prometheus.kill()
                    prometheus.wait()
                print("--- prometheus", *log.read_text(errors="replace").splitlines()[-30:],
                      sep="\n")  # fmt: skip
            shutil.rmtree(work, ignore_errors=True)
            print_daemon_logs()
            down = netcc("lab", "down", check=False)
            assert down.returncode == 0, down.stderr


def by_node(result: list[dict[str, Any]]) -> dict[str, float]:
    return {r["metric"]["lab_node"]: float(r["value"][1]) for r in result}


def test_prometheus_scrapes_every_node_daemon(monitored: Monitored) -> None:
    nodes = set(monitored.addresses)
    assert len(nodes) == 3
    up = until(
        "every node's target up",
        lambda: (got := by_node(query('up{job="netcc"}'))) and set(got) == nodes
        and all(v == 1 for v in got.values()) and got,
    )  # fmt: skip
    assert up == dict.fromkeys(nodes, 1.0)
    digest = hashlib.sha256((monitored.out / "netcc.lock.json").read_bytes()).hexdigest()
    info = until("every node's artifacts", lambda: by_node(query("netcc_artifacts_info")))
    assert set(info) == nodes
    for r in query("netcc_artifacts_info"):
        assert (r["metric"]["node"], r["metric"]["digest"]) == (r["metric"]["lab_node"], digest)
    assert by_node(query("netcc_daemon_ready")) == dict.fromkeys(nodes, 1.0)


def test_a_denied_probe_shows_in_prometheus_on_the_node_that_dropped_it(
    monitored: Monitored,
) -> None:
    until("every target up", lambda: len(query('up{job="netcc"} == 1')) == 3)
    denied = 'netcc_drops_total{reason="policy_denied"}'
    before = by_node(query(denied))
    # shop/cart (node-2) -> shop/frontend (node-1) 8080/tcp: the frontend admits HTTP from
    # outside the pods only
    r = netcc("lab", "probe", "shop/cart", "shop/frontend", "8080/tcp", "--json", check=False)
    assert r.returncode == EXIT_DENIED, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    (drop,) = [h for h in doc["decided_by"] if not h["passed"]]
    verdicts = json.loads((monitored.out / "verdicts.json").read_text())["verdicts"]
    entry = next(v for v in verdicts if v["number"] == drop["verdict"])
    assert entry["action"] == "drop" and "pod" in entry  # a default deny: no rule allows
    node, direction = drop["node"], entry["direction"]
    # the packets the probe's own reading of the kernel counters saw dropped (SYN and resends)
    moved = sum(c["packets"] for c in doc["counted"] if c["verdict"] == drop["verdict"])
    assert moved > 0
    labels = f'lab_node="{node}", verdict="dropped", rule="default-deny", direction="{direction}"'
    (series,) = until(
        f"the drop of the probe on {node}",
        lambda: query(f"netcc_policy_verdict_packets_total{{{labels}}} >= {moved}"),
    )  # every pod's default deny of the direction, summed: no pod, no address in its labels
    assert set(series["metric"]) <= {"__name__", "instance", "job", "lab_node", *VERDICT_LABELS}
    assert series["metric"].get("policy", "") == ""  # Prometheus drops empty labels
    want = before.get(node, 0) + moved
    until(
        f"{denied} on {node} up by {moved}",
        lambda: by_node(query(f"{denied} >= {want}")).get(node),
    )
    assert by_node(query('up{job="netcc"}')) == dict.fromkeys(monitored.addresses, 1.0)


def test_every_dashboard_query_evaluates(monitored: Monitored) -> None:
    """The shipped Grafana dashboard's PromQL, its variables filled as Grafana would, runs
    against the scraped daemons without an error; its node variable finds every node."""
    dashboard = json.loads(
        (resources.files("netcc.templates") / "grafana" / "netcc-node.json").read_text()
    )
    exprs = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                exprs.append(node["expr"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(dashboard["panels"])
    assert exprs
    for expr in exprs:
        promql = expr.replace("$instance", ".*").replace("$__rate_interval", "15s")
        query(promql)  # status success: it parses and evaluates
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "instance"]
    metric = variable["definition"].removeprefix("label_values(").split(",")[0]
    doc = get("/api/v1/series", **{"match[]": metric})
    assert {s["instance"] for s in doc["data"]} == {
        f"{a}:{METRICS_PORT}" for a in monitored.addresses.values()
    }
    # and the panels have something to show: the daemons' verdicts and map fill
    assert query("sum(netcc_policy_verdict_packets_total) > 0")
    assert query("netcc_map_entries / netcc_map_capacity >= 0")
