"""Issue 14's acceptance in the lab: services over pods that come and go (dynsvc_spec.py).

Runtime pods are added with `netcc lab pod add` (not ready, as a pod whose readiness probe has
not passed yet) and marked with `netcc lab pod ready NS/NAME true|false`. The lab's API
server publishes them as EndpointSlices; every node daemon list/watches them and refills the
Maglev rows of the service ports their classes back. Checked from clients on every node and
from an outside host:
- a ClusterIP and a NodePort over a class: pods on three nodes become backends when marked
  ready, and stop getting new connections when unready or deleted;
- 1,000 connections spread within ±50 % over the ready backends;
- deleting one backend under load leaves established connections to the others untouched;
- externalTrafficPolicy Local answers with the node's own ready pods only;
- NetworkPolicy applies after translation, from every node;
- a restarted daemon serves the live backends it had before the watch answers again.

A change reaches the datapath in milliseconds (BENCHMARKS.md §12); the tests wait for it with
generous deadlines and never judge by how long it took.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from dynsvc_spec import (
    API_VIP,
    EXTERNAL,
    LABELS,
    NODEPORT,
    NODEPORT_LOCAL,
    NODES,
    PORTS,
    SPEC,
    WEB_VIP,
)
from lab_cli import netcc, print_daemon_logs

from netcc.lab.services import Answer, Conversation, Listener, Servers, connect_many, spread
from netcc.lab.state import STATE_DIR, LabState

NODE_ADDRESS = {"node-1": "192.168.79.11", "node-2": "192.168.79.12", "node-3": "192.168.79.13"}
WAIT = 30.0  # seconds a change may take to show, on a loaded machine (typically ms)


@dataclass
class Pod:
    key: str
    node: str
    ip: str
    netns: str


@dataclass
class DynLab:
    pods: dict[str, Pod]

    def connect(
        self, src: str, dst: str, port: int, count: int, proto: str = "TCP", timeout: float = 2.0
    ) -> list[Answer]:
        if src == EXTERNAL:
            return connect_many("netcc-external", EXTERNAL, dst, port, proto, count, timeout)
        p = self.pods[src]
        return connect_many(p.netns, p.ip, dst, port, proto, count, timeout)


def add(key: str, node: str, kind: str) -> Pod:
    doc = json.loads(
        netcc("lab", "pod", "add", key, "--node", node, "--labels", LABELS[kind], "--json").stdout
    )
    return Pod(key, node, doc["ips"][0], doc["netns"])


def ready(key: str, value: bool, wait: bool = True) -> None:
    """`netcc lab pod ready`: returns once every daemon shows the change (unless not `wait`)."""
    flags = [] if wait else ["--no-wait"]
    netcc("lab", "pod", "ready", key, "true" if value else "false", *flags)


def until(what: str, check: Callable[[], object]) -> object:
    """`check()` once it is truthy; fails after WAIT seconds (never judged by speed)."""
    deadline = time.monotonic() + WAIT
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            assert got, f"{what}: not within {WAIT:g} s"
            return got
        time.sleep(0.1)


@pytest.fixture(scope="module")
def dynlab(shim: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DynLab]:
    """The lab up, with web pods on every node (not ready), a client on every node, a prom
    pod and an api pod; identity servers in the web and api pods."""
    if LabState.exists(STATE_DIR):
        pytest.fail(f"a lab is already up ({STATE_DIR}); not touching it")
    spec = tmp_path_factory.mktemp("dynsvc") / "dynsvc.yaml"
    spec.write_text(SPEC)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NETCC_CNI_BIN", str(shim))
        try:
            netcc("lab", "up", str(spec), "--external", EXTERNAL)
            pods = {}
            for node, n in NODES.items():
                pods[f"shop/web-{n}"] = add(f"shop/web-{n}", node, "web")
                pods[f"shop/client-{n}"] = add(f"shop/client-{n}", node, "client")
                pods[f"monitoring/prom-{n}"] = add(f"monitoring/prom-{n}", node, "prom")
            pods["shop/api-1"] = add("shop/api-1", "node-3", "api")
            ready("shop/api-1", True)
            listeners = [
                Listener(p.netns, p.ip, port, proto, p.key)
                for p in pods.values()
                if p.key.startswith("shop/web")
                for port, proto in ((PORTS["web"], "TCP"), (5353, "UDP"))
            ] + [Listener(pods["shop/api-1"].netns, pods["shop/api-1"].ip, 9000, "TCP", "api-1")]
            with Servers(listeners):
                yield DynLab(pods)
        finally:
            print_daemon_logs()
            down = netcc("lab", "down", check=False)
            assert down.returncode == 0, down.stderr


def _ok(answers: list[Answer]) -> list[Answer]:
    return [a for a in answers if a.ok]


def _set_ready(lab: DynLab, want: set[str]) -> None:
    """Make exactly `want` of the web pods ready, then wait until every client sees it."""
    for key in sorted(p for p in lab.pods if p.startswith("shop/web")):
        ready(key, key in want)
    for n in NODES.values():
        client = f"shop/client-{n}"
        until(
            f"{client} reaching exactly {sorted(want)}",
            lambda c=client: set(spread(lab.connect(c, WEB_VIP, 80, 60))) == want,
        )


def test_ready_pods_become_backends_and_unready_ones_get_no_new_connections(dynlab: DynLab):
    webs = sorted(p for p in dynlab.pods if p.startswith("shop/web"))
    # no ready pod: the service port has no backend, nothing answers
    for key in webs:
        ready(key, False)
    until(
        "no web pod ready: nothing answers",
        lambda: not _ok(dynlab.connect("shop/client-1", WEB_VIP, 80, 5, timeout=0.5)),
    )
    _set_ready(dynlab, {webs[0]})
    _set_ready(dynlab, set(webs))
    # NodePort over the class, through every node's address, from a pod and from outside
    for node, address in NODE_ADDRESS.items():
        for src in ("shop/client-1", EXTERNAL):
            answers = dynlab.connect(src, address, NODEPORT, 60)
            assert len(_ok(answers)) == 60, (node, src, {a.detail for a in answers})
            assert set(spread(answers)) == set(webs), (node, src, spread(answers))
    _set_ready(dynlab, {webs[0], webs[2]})  # web-2 unready: no new connection gets it
    for n in NODES.values():
        answers = dynlab.connect(f"shop/client-{n}", WEB_VIP, 80, 200)
        assert len(_ok(answers)) == 200
        assert webs[1] not in spread(answers)
    _set_ready(dynlab, set(webs))


def test_a_thousand_connections_spread_over_the_ready_backends(dynlab: DynLab):
    webs = sorted(p for p in dynlab.pods if p.startswith("shop/web"))
    _set_ready(dynlab, set(webs))
    for n in NODES.values():
        answers = dynlab.connect(f"shop/client-{n}", WEB_VIP, 80, 1000)
        assert len(_ok(answers)) == 1000, {a.detail for a in answers if not a.ok}
        counts = spread(answers)
        assert set(counts) == set(webs)
        for key in webs:
            assert 0.5 * 1000 / 3 <= counts[key] <= 1.5 * 1000 / 3, counts


def test_external_traffic_policy_local_answers_with_the_nodes_own_ready_pods(dynlab: DynLab):
    webs = sorted(p for p in dynlab.pods if p.startswith("shop/web"))
    _set_ready(dynlab, {webs[0], webs[1]})
    for node, n in NODES.items():
        address = NODE_ADDRESS[node]
        if n in (1, 2):
            got = until(
                f"{node}'s nodePort {NODEPORT_LOCAL} answering",
                lambda a=address: _ok(dynlab.connect(EXTERNAL, a, NODEPORT_LOCAL, 20)),
            )
            assert set(spread(got)) == {f"shop/web-{n}"}
        else:  # web-3 is not ready: node-3 has no local backend, and never forwards
            until(  # web-local's slices are a service of their own: their change may lag web's
                f"{node}'s nodePort {NODEPORT_LOCAL} silent",
                lambda a=address: (
                    not _ok(dynlab.connect(EXTERNAL, a, NODEPORT_LOCAL, 5, timeout=0.5))
                ),
            )
            answers = dynlab.connect(EXTERNAL, address, NODEPORT_LOCAL, 20, timeout=1.0)
            assert not _ok(answers), spread(answers)
    _set_ready(dynlab, set(webs))


def test_policy_judges_the_backend_after_translation_from_every_node(dynlab: DynLab):
    webs = sorted(p for p in dynlab.pods if p.startswith("shop/web"))
    _set_ready(dynlab, set(webs))
    until("api-1 serving", lambda: _ok(dynlab.connect("shop/client-3", API_VIP, 9000, 3)))
    for n in NODES.values():
        prom, client = f"monitoring/prom-{n}", f"shop/client-{n}"
        # prom's egress admits shop on 8080 only: web's port 80 is served on 8080 (allowed);
        # api's 9000 is not (denied, by prom's egress and by api's ingress)
        answers = dynlab.connect(prom, WEB_VIP, 80, 30)
        assert len(_ok(answers)) == 30, (prom, {a.detail for a in answers})
        assert not _ok(dynlab.connect(prom, API_VIP, 9000, 5, timeout=1.0)), prom
        # api's ingress admits role=client pods only: clients yes, a web pod no
        assert len(_ok(dynlab.connect(client, API_VIP, 9000, 10))) == 10, client
        web = dynlab.pods[f"shop/web-{n}"]
        denied = connect_many(web.netns, web.ip, API_VIP, 9000, "TCP", 5, 1.0)
        assert not _ok(denied), web.key


def test_deleting_a_backend_under_load_leaves_established_connections_alone(dynlab: DynLab):
    webs = sorted(p for p in dynlab.pods if p.startswith("shop/web"))
    _set_ready(dynlab, set(webs))
    client = dynlab.pods["shop/client-1"]
    convs = []
    try:
        while {c.backend for c in convs} != set(webs) or len(convs) < 30:
            c = Conversation(client.netns, client.ip, WEB_VIP, 80)
            c.say("hello")
            convs.append(c)
            assert len(convs) < 300, "no spread over the backends"
        victim = webs[2]
        netcc("lab", "pod", "del", victim)
        dynlab.pods.pop(victim)
        survivors = webs[:2]
        # while new connections go to the survivors only ...
        until(
            f"{victim} gone from the new connections",
            lambda: set(spread(dynlab.connect("shop/client-1", WEB_VIP, 80, 60))) == set(survivors),
        )
        load = dynlab.connect("shop/client-1", WEB_VIP, 80, 300)
        assert len(_ok(load)) == 300 and set(spread(load)) == set(survivors)
        # ... every established connection to a survivor keeps its backend and its state
        for c in convs:
            if c.backend in survivors:
                before = c.backend
                assert c.say("still there") == before
    finally:
        for c in convs:
            c.close()
    # web-3 stays deleted: the tests after this one use the web pods left


def test_a_restarted_daemon_serves_the_live_backends_at_once(dynlab: DynLab):
    webs = sorted(p for p in dynlab.pods if p.startswith("shop/web"))
    _set_ready(dynlab, {webs[0], webs[1]})
    netcc("lab", "daemon", "restart", "node-1")
    # the first apply after the restart already holds the recorded backends: no window
    answers = dynlab.connect("shop/client-1", WEB_VIP, 80, 60)
    assert len(_ok(answers)) == 60, {a.detail for a in answers}
    assert set(spread(answers)) == {webs[0], webs[1]}
    # and says so: `netcc load status` on the node lists the live backends
    import subprocess
    import sys

    state = LabState.load(STATE_DIR)
    load = next(r for r in state.of_kind("load") if r["node"] == "node-1")
    status = subprocess.run(
        ["nsenter", f"--net=/run/netns/{load['netns']}", sys.executable, "-m", "netcc", "load",
         "status", "--node", "node-1", "--pin-root", load["pin_root"], "--state-dir",
         load["state_dir"]],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    web = dynlab.pods[webs[0]]
    assert "services over classes" in status, status
    assert f"{web.ip}:8080 shop/web on node-1: ready, in use" in status, status
    _set_ready(dynlab, set(webs))


def test_a_daemon_without_the_api_keeps_its_backends_and_relists_after(dynlab: DynLab):
    """The API server goes away: a restarted daemon still serves the recorded backends; when
    the API comes back (a new server: the daemon's resourceVersion is unknown to it, 410),
    the daemon lists again and follows changes made meanwhile."""
    from netcc.lab import runtime

    webs = sorted(p for p in dynlab.pods if p.startswith("shop/web"))
    _set_ready(dynlab, set(webs))
    state = LabState.load(STATE_DIR)
    api = state.of_kind("kubeapi")
    for r in api:
        runtime._kill(r)
    state.forget(api)
    netcc("lab", "daemon", "restart", "node-1")
    answers = dynlab.connect("shop/client-1", WEB_VIP, 80, 60)
    assert set(spread(answers)) == set(webs), {a.detail for a in answers}
    ready(webs[0], False, wait=False)  # while the API is away: no daemon can know yet
    runtime.start_kubeapi(LabState.load(STATE_DIR))
    until(
        f"{webs[0]} unready after the relist",
        lambda: set(spread(dynlab.connect("shop/client-1", WEB_VIP, 80, 60))) == set(webs[1:]),
    )
    _set_ready(dynlab, set(webs))


def test_udp_flows_to_a_backend_that_left_are_flushed(dynlab: DynLab):
    """One UDP socket keeps one flow (and backend) while it lives; when that backend stops
    being ready, its flows are deleted and the next datagram picks a ready backend."""
    import socket

    from netcc.lab import netns as lab_netns

    webs = sorted(p for p in dynlab.pods if p.startswith("shop/web"))
    _set_ready(dynlab, set(webs))
    client = dynlab.pods["shop/client-2"]
    with lab_netns.entered(client.netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.bind((client.ip, 0))
        sock.settimeout(2.0)

        def ask(text: str) -> str:
            """The backend that answered `text` ("" when none did)."""
            sock.sendto(text.encode(), (WEB_VIP, 53))
            try:
                who, _, echoed = sock.recv(65535).decode().partition(" ")
            except TimeoutError:
                return ""
            assert echoed == text
            return who

        first = until("a UDP answer through the cluster IP", lambda: ask("one"))
        assert all(ask(f"again {i}") == first for i in range(5))  # the flow keeps its backend
        ready(str(first), False)
        moved = until(f"the flow off {first}", lambda: (who := ask("moved?")) != first and who)
        assert moved in webs and moved != first
    _set_ready(dynlab, set(webs))
