"""The node daemon's metrics against the kernel (`netcc.loader.daemon.metrics`).

- A datapath applied in a node namespace (`netcc load apply`'s code, pins and state of its
  own): packets run through its pinned `netcc_to_container` and `netcc_from_container`
  (BPF_PROG_TEST_RUN) raise the counters scraped over HTTP by exactly what was sent, under the
  rule's, the default deny's and the reserved drop's labels. A new version that renumbers the
  verdicts keeps every label on its own counts.
- `netcc load run` in a node namespace (tests/daemon/daemon_node.py): its /metrics counts the
  CNI ADD it served, its applies, says it is ready and names the applied artifacts.

Creates network namespaces: run under `flock /tmp/netcc-lab.lock`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_node import DaemonNode
from kernelenv import compile_to
from prometheus_client.parser import text_string_to_metric_families

from netcc.lab.cniruntime import CniRuntimeError
from netcc.lab.netns import entered
from netcc.loader import apply as apply_mod
from netcc.loader import detach as detach_mod
from netcc.loader import libbpf, state
from netcc.loader.daemon.metrics import DaemonMetrics, FillCache, serve
from netcc.loader.netns import enter_netns
from netcc.loader.testrun import TC_ACT_OK, TC_ACT_SHOT, ipv4_packet

NODE = "n1"
PODS = {"client": "10.79.1.10", "server": "10.79.1.11", "other": "10.79.1.12"}
SKB_IFINDEX = 40  # offsetof(struct __sk_buff, ifindex)
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
SPEC = """\
apiVersion: netcc.io/v1alpha1
kind: ClusterNetwork
metadata: {name: metrics}
spec:
  podCIDR: 10.79.0.0/16
  serviceCIDR: 10.96.0.0/16
  nodes:
    - {name: n1, address: 192.168.252.1, podCIDR: 10.79.1.0/24}
  namespaces:
    - {name: app}
  workloads:
    - {name: client, namespace: app, node: n1, labels: {app: client}, ips: [10.79.1.10]}
    - {name: server, namespace: app, node: n1, labels: {app: server}, ips: [10.79.1.11],
       ports: [{name: http, port: 8080}]}
    - {name: other, namespace: app, node: n1, labels: {app: other}, ips: [10.79.1.12]}
  policies:
%(first)s    - apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: server-in, namespace: app}
      spec:
        podSelector: {matchLabels: {app: server}}
        ingress:
          - from: [{podSelector: {matchLabels: {app: client}}}]
            ports: [{port: 8080}]
"""
# v2: a policy listed first, so that server-in's rule and the default denies are renumbered
FIRST = """\
    - apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: client-in, namespace: app}
      spec:
        podSelector: {matchLabels: {app: client}}
        ingress:
          - from: [{podSelector: {matchLabels: {app: server}}}]
            ports: [{port: 9000}]
"""
RULE0 = {"policy": "app/server-in", "rule": "0", "direction": "ingress", "verdict": "allowed"}
DENY_IN = {"policy": "", "rule": "default-deny", "direction": "ingress", "verdict": "dropped"}
SPOOFED = {"policy": "", "rule": "DROP_SPOOFED", "direction": "", "verdict": "dropped"}


def sh(*cmd: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    return proc.stdout


class Node:
    """A node namespace with a veth per pod (no pod namespaces), the datapath applied under a
    pin root and state dir of its own."""

    def __init__(self, tmp: Path) -> None:
        tag = uuid.uuid4().hex[:6]
        self.ns = f"netcctest-{tag}-met"
        self.pins = Path("/sys/fs/bpf") / f"netcctest-{tag}"
        self.paths = state.paths_for(NODE, self.pins / NODE, tmp / "state")

    def run(self, *cmd: str) -> str:
        return sh("nsenter", f"--net=/run/netns/{self.ns}", *cmd)

    def create(self) -> None:
        sh("ip", "netns", "add", self.ns)
        self.run("ip", "link", "set", "lo", "up")
        for scope in ("all", "default"):  # no IPv6 link traffic: only the test's packets count
            self.run("sh", "-c", f"echo 1 > /proc/sys/net/ipv6/conf/{scope}/disable_ipv6")
        for i, ip in enumerate(PODS.values(), start=1):
            self.run("ip", "link", "add", f"h{i}", "type", "veth", "peer", "name", f"p{i}")
            self.run("ip", "link", "set", f"h{i}", "up")
            self.run("ip", "link", "set", f"p{i}", "up")
            self.run("ip", "route", "add", f"{ip}/32", "dev", f"h{i}")

    def ifindex(self, pod: str) -> int:
        name = f"h{list(PODS).index(pod) + 1}"
        return int(json.loads(self.run("ip", "-j", "link", "show", "dev", name))[0]["ifindex"])

    def apply(self, out: Path) -> apply_mod.ApplyResult:
        with enter_netns(self.ns):
            return apply_mod.apply(
                out, NODE, pin_root=self.paths.pin_root, state_dir=self.paths.state_dir
            )

    def send(self, program: str, pod: str, pkt: bytes) -> int:
        """The packet through the applied `program` on `pod`'s veth; its verdict code."""
        ctx = bytearray(192)  # struct __sk_buff, zeroed but for the ifindex
        ctx[SKB_IFINDEX : SKB_IFINDEX + 4] = self.ifindex(pod).to_bytes(4, "little")
        digest = state.load_state(self.paths)["digest"]
        fd = libbpf.obj_get(self.paths.prog_dir(digest) / program)
        try:
            with enter_netns(self.ns):
                return libbpf.prog_test_run(fd, pkt, ctx=bytes(ctx)).retval
        finally:
            os.close(fd)

    def remove(self) -> None:
        try:
            if self.paths.state_file.exists():
                with enter_netns(self.ns):
                    detach_mod.detach(NODE, self.paths.pin_root, self.paths.state_dir)
        finally:
            shutil.rmtree(self.pins, ignore_errors=True)
            shutil.rmtree(self.paths.state_dir, ignore_errors=True)
            subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, check=False)


@pytest.fixture
def applied(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path)
    try:
        n.create()
        yield n
    finally:
        n.remove()


def scrape(url: str) -> dict[str, list]:
    """name -> samples of a /metrics answer, parsed as Prometheus parses it."""
    with NO_PROXY.open(url, timeout=30) as r:
        assert r.status == 200
        text = r.read().decode()
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append(s)
    return out


def value(samples: dict[str, list], name: str, **labels: str) -> float:
    found = [s.value for s in samples.get(name, []) if s.labels == labels]
    assert len(found) == 1, f"{name}{labels}: {found}"
    return found[0]


def verdicts(out: Path) -> dict[int, dict]:
    return {v["number"]: v for v in json.loads((out / "verdicts.json").read_text())["verdicts"]}


def lock_digest(out: Path) -> str:
    return hashlib.sha256((out / "netcc.lock.json").read_bytes()).hexdigest()


def test_scraped_counters_rise_by_exactly_what_was_sent(applied: Node, tmp_path: Path) -> None:
    node = applied
    v1 = compile_to(SPEC % {"first": ""}, tmp_path / "v1")
    v2 = compile_to(SPEC % {"first": FIRST}, tmp_path / "v2")
    node.apply(v1)
    clock = [0.0]  # the map fill cache's: moved by hand
    fill = FillCache(ttl=5.0, clock=lambda: clock[0])
    metrics = DaemonMetrics(NODE, node.paths, lambda: True, fill=fill.read)
    server = serve(metrics.registry, "127.0.0.1:0")
    assert server is not None
    url = f"http://127.0.0.1:{server.address[1]}/metrics"
    sport = iter(range(20000, 30000))  # a new flow each: never a conntrack hit
    try:

        def send(src: str, n: int, want: int, program: str = "netcc_to_container") -> int:
            """`n` SYNs from `src` to the server's 8080; the bytes sent."""
            pod, total = "server", 0
            if program == "netcc_from_container":
                pod = "client"  # sent on the client's veth, from a source not the client's
            for _ in range(n):
                pkt = ipv4_packet(src, PODS["server"], "tcp", next(sport), 8080, "S")
                assert node.send(program, pod, pkt) == want
                total += len(pkt)
            return total

        before = scrape(url)
        assert value(before, "netcc_artifacts_info", node=NODE, digest=lock_digest(v1)) == 1
        allowed = send(PODS["client"], 7, TC_ACT_OK)
        denied = send(PODS["other"], 5, TC_ACT_SHOT)
        spoofed = send("10.79.9.9", 3, TC_ACT_SHOT, "netcc_from_container")
        after = scrape(url)

        def delta(name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        assert delta("netcc_policy_verdict_packets_total", **RULE0) == 7
        assert delta("netcc_policy_verdict_bytes_total", **RULE0) == allowed
        assert delta("netcc_policy_verdict_packets_total", **DENY_IN) == 5
        assert delta("netcc_policy_verdict_bytes_total", **DENY_IN) == denied
        assert delta("netcc_policy_verdict_packets_total", **SPOOFED) == 3
        assert delta("netcc_policy_verdict_bytes_total", **SPOOFED) == spoofed
        assert delta("netcc_drops_total", reason="policy_denied") == 5
        assert delta("netcc_drops_total", reason="spoofed") == 3
        # every one was a new flow or a drop: one flow event each, written or counted lost
        events = delta("netcc_flow_events_total") + sum(
            delta("netcc_flow_events_lost_total", reason=r) for r in ("budget", "ring")
        )
        assert events == 7 + 5 + 3
        # the allowed SYNs are in conntrack: counted again once the cached count is old
        capacity = json.loads((v1 / "bpf/layout.json").read_text())["maps"]["netcc_ct"]
        assert value(after, "netcc_map_capacity", map="netcc_ct") == capacity["max_entries"]
        assert value(after, "netcc_map_entries", map="netcc_ct") == 0  # counted at `before`
        clock[0] += 5.0
        assert value(scrape(url), "netcc_map_entries", map="netcc_ct") == 7

        # v2 renumbers server-in's rule and the default denies; the counters move with them
        old, new = verdicts(v1), verdicts(v2)
        was = next(n for n, v in old.items() if v.get("policy") == "app/server-in")
        assert new[was].get("policy") == "app/client-in"  # its number is another rule's now
        assert node.apply(v2).status == "updated"
        moved = scrape(url)
        assert value(moved, "netcc_artifacts_info", node=NODE, digest=lock_digest(v2)) == 1
        for labels in (RULE0, DENY_IN, SPOOFED):
            name = "netcc_policy_verdict_packets_total"
            assert value(moved, name, **labels) == value(after, name, **labels)
        client_in = {**RULE0, "policy": "app/client-in"}
        assert value(moved, "netcc_policy_verdict_packets_total", **client_in) == 0
        send(PODS["client"], 4, TC_ACT_OK)
        send(PODS["other"], 2, TC_ACT_SHOT)
        last = scrape(url)
        name = "netcc_policy_verdict_packets_total"
        assert value(last, name, **RULE0) - value(moved, name, **RULE0) == 4
        assert value(last, name, **DENY_IN) - value(moved, name, **DENY_IN) == 2
        assert value(last, name, **client_in) == 0
        assert value(last, "netcc_metrics_errors_total", part="verdicts") == 0
    finally:
        server.close()


def metrics_of(node: DaemonNode) -> dict[str, list]:
    """The daemon's /metrics, fetched from inside its node's namespace."""
    with entered(node.netns):
        return scrape("http://127.0.0.1:9967/metrics")


def test_the_daemon_serves_cni_and_apply_metrics(node: DaemonNode) -> None:
    before = metrics_of(node)
    assert value(before, "netcc_daemon_ready") == 1
    assert value(before, "netcc_applies_total", result="success") >= 1
    assert value(before, "netcc_apply_last_success_timestamp_seconds") > 0
    digest = lock_digest(node.out)
    assert value(before, "netcc_artifacts_info", node=node.node, digest=digest) == 1
    att = node.pod("shop/web-1", {"app": "web"})
    node.add(att)
    refused = node.pod("shop/stray", {"app": "nothing"})
    with pytest.raises(CniRuntimeError, match="class"):
        node.add(refused)  # no class matches: refused, counted as an error
    after = metrics_of(node)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("netcc_cni_requests_total", command="add", result="success") == 1
    assert delta("netcc_cni_requests_total", command="add", result="error") == 1
    assert delta("netcc_cni_add_duration_seconds_count") == 2
    assert delta("netcc_cni_add_duration_seconds_sum") > 0
    for m in ("netcc_ct", "netcc_lb_services", "netcc_lb_backends"):
        assert value(after, "netcc_map_capacity", map=m) > 0
    # the periodic apply (every 0.5 s here) goes on being counted
    node.wait(lambda r: (r.get("lastApply") or {}).get("count", 0) > 2, "two more applies")
    assert value(metrics_of(node), "netcc_applies_total", result="success") > value(
        after, "netcc_applies_total", result="success"
    )
