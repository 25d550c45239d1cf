"""The flows socket and `netcc observe`, on a history of made-up records (no kernel): the
request lines, the last N and follow, filtering in the daemon, a slow client losing records
(counted and told) without holding the reader up, the pod tables, and the command line that
reads several nodes at once, merges them by time and names other nodes' pods.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from netcc.cli.main import main
from netcc.contract import flows
from netcc.loader.cni.ipam import Owner
from netcc.loader.cni.server import ServerError
from netcc.loader.daemon import flows as daemon_flows
from netcc.loader.daemon.flows import FlowServer, History, PodTable

T0 = 1733608201_000_000_000
WAIT = 30.0  # seconds something that must happen may take (never judged by speed)


def record(i: int, node: str = "node-1", verdict: str = "forwarded", **ends) -> dict:
    """A made-up flow record, `i` ms after T0."""
    src = ends.get("src") or flows.endpoint(
        f"10.244.1.{10 + i % 200}",
        40000 + i,
        "pod",
        "shop/web",
        pod=f"shop/web-{i}",
        namespace="shop",
        node="node-1",
    )
    dst = ends.get("dst") or flows.endpoint(
        "10.244.2.208", 9000, "class", "shop/api", namespace="shop", node="node-2"
    )
    return {
        "type": "flow",
        "time": flows.rfc3339(T0 + i * 1_000_000),
        "node": node,
        "kind": "new",
        "verdict": verdict,
        "verdictNumber": 33,
        "direction": "egress",
        "protocol": "TCP",
        "source": src,
        "destination": dst,
        "reason": f"record {i}",
    }


class Node:
    """A flows socket served over a history, as one node daemon serves it."""

    def __init__(self, path: Path, node: str, pods: dict[str, Owner] | None = None) -> None:
        self.history = History()
        table = {IPv4Address(ip): o for ip, o in (pods or {}).items()}
        self.server = FlowServer(path, node, self.history, PodTable(lambda: table))
        self.path = path

    def __enter__(self) -> Node:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    with Node(tmp_path / "flows.sock", "node-1") as n:
        yield n


def until(what: str, check) -> None:
    """Wait for `check()`, failing after WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {WAIT:g} s"
        time.sleep(0.02)


def ask(path: Path, request: dict | bytes) -> list[dict]:
    """Send one request, read every line until the server closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(WAIT)
        s.connect(str(path))
        s.sendall(request if isinstance(request, bytes) else json.dumps(request).encode() + b"\n")
        with s.makefile("rb") as f:
            return [json.loads(line) for line in f]


def test_the_socket_is_root_s_and_one_daemon_s(node: Node, tmp_path: Path):
    assert stat.S_IMODE(os.stat(node.path).st_mode) == 0o600
    with pytest.raises(ServerError):
        Node(node.path, "node-1").server.start()
    node.server.stop()
    assert not node.path.exists()


def test_last_n_matching_records_then_the_end(node: Node):
    for i in range(10):
        node.history.add(record(i, verdict="dropped" if i % 2 else "forwarded"))
    got = ask(node.path, {"last": 3})
    assert [r["reason"] for r in got[:-1]] == ["record 7", "record 8", "record 9"]
    assert got[-1] == {"type": "end", "node": "node-1"}
    got = ask(node.path, {"last": 2, "filter": {"verdict": ["dropped"]}})
    assert [r["reason"] for r in got[:-1]] == ["record 7", "record 9"]
    assert ask(node.path, {"last": 0}) == [{"type": "end", "node": "node-1"}]


def test_the_history_keeps_the_newest():
    h = History(size=5)
    for i in range(12):
        h.add(record(i))
    kept = h.last(100, flows.Filter())
    assert [r["reason"] for r in kept] == [f"record {i}" for i in range(7, 12)]


def test_bad_requests_get_an_error_line(node: Node):
    for bad in (b"nonsense\n", b'{"last": -3}\n', b'{"filter": {"verdict": ["maybe"]}}\n'):
        (answer,) = ask(node.path, bad)
        assert answer["type"] == "error" and answer["error"]


def test_the_pod_table(tmp_path: Path):
    pods = {"10.244.1.33": Owner("c" * 64, "eth0", "shop", "web-7c9", "shop/web")}
    with Node(tmp_path / "p.sock", "node-1", pods) as n:
        table, end = ask(n.path, {"request": "pods"})
    assert table == {
        "type": "pods",
        "node": "node-1",
        "pods": {"10.244.1.33": {"pod": "shop/web-7c9", "class": "shop/web", "node": "node-1"}},
    }
    assert end["type"] == "end"


def follow(path: Path, request: dict) -> tuple[socket.socket, Iterator[dict]]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(WAIT)
    s.connect(str(path))
    s.sendall(json.dumps(request).encode() + b"\n")
    f = s.makefile("rb")
    return s, (json.loads(line) for line in f)


def test_follow_gives_the_history_then_every_new_match(node: Node):
    node.history.add(record(0))
    s, lines = follow(node.path, {"last": 5, "follow": True, "filter": {"verdict": ["dropped"]}})
    with s:
        node.history.add(record(1, verdict="dropped"))  # may come before or after "live"
        first = [next(lines), next(lines)]
        assert {"type": "live", "node": "node-1"} in first
        node.history.add(record(2))  # filtered out
        node.history.add(record(3, verdict="dropped"))
        got = [r for r in first if r["type"] == "flow"] + [next(lines)]
        if len(got) < 2:
            got.append(next(lines))
        assert [r["reason"] for r in got] == ["record 1", "record 3"]


def test_a_slow_client_loses_records_and_is_told(node: Node, monkeypatch):
    """A follower that does not read: the reader adds every record at once (never waits), the
    client later gets what fit and a lost record counting the rest."""
    monkeypatch.setattr(daemon_flows, "QUEUE", 16)
    s, lines = follow(node.path, {"follow": True})
    total = 20000
    with s:
        assert next(lines)["type"] == "live"
        until("the client follows", lambda: node.history.following)
        for i in range(total):
            node.history.add(record(i))  # never blocks: the client reads nothing meanwhile
        got, lost = 0, 0
        while got + lost < total:
            r = next(lines)
            if r["type"] == "lost":
                lost += r["lostQueue"]
                assert r["lostBudget"] == r["lostRing"] == 0
            else:
                got += 1
        assert got + lost == total and lost > 0, (got, lost)


def test_a_follower_that_leaves_is_forgotten(node: Node):
    s, lines = follow(node.path, {"follow": True})
    assert next(lines)["type"] == "live"
    s.shutdown(socket.SHUT_RDWR)
    s.close()
    until("the follower forgotten", lambda: not node.history.following)


# --- netcc observe ------------------------------------------------------------------------------


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    """node-1 and node-2, their records interleaved in time; node-2 runs the api pod that
    node-1 knows only by its class."""
    api = {"10.244.2.208": Owner("d" * 64, "eth0", "shop", "api-5d8", "shop/api")}
    with Node(tmp_path / "n1.sock", "node-1") as a, Node(tmp_path / "n2.sock", "node-2", api) as b:
        for i in range(0, 40, 2):
            a.history.add(record(i, "node-1", "dropped" if i % 4 == 0 else "forwarded"))
            b.history.add(record(i + 1, "node-2"))
        yield a, b


def observe(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["observe", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_observe_merges_nodes_by_time(two_nodes, capsys):
    a, b = two_nodes
    rc, out, err = observe(
        capsys, "--socket", str(a.path), "--socket", str(b.path), "--json", "--last", "5"
    )
    assert rc == 0, err
    got = [json.loads(line) for line in out.splitlines()]
    assert [r["reason"] for r in got] == [f"record {i}" for i in range(35, 40)]
    assert [r["node"] for r in got] == ["node-2", "node-1", "node-2", "node-1", "node-2"]
    # node-1's records name the api pod of node-2 from node-2's pod table
    assert got[1]["destination"] == {
        "ip": "10.244.2.208",
        "port": 9000,
        "kind": "pod",
        "pod": "shop/api-5d8",
        "class": "shop/api",
        "namespace": "shop",
        "node": "node-2",
    }


def test_observe_prints_hubble_s_line_and_filters(two_nodes, capsys):
    a, b = two_nodes
    rc, out, err = observe(
        capsys, "--socket", str(a.path), "--socket", str(b.path), "--verdict", "dropped"
    )
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == 10  # every dropped record, fewer than the default 20
    for line in lines:
        assert " TCP egress DROPPED (record " in line and line.endswith(" node-1"), line
    assert "-> shop/api-5d8 (10.244.2.208):9000 " in lines[0]
    rc, out, _ = observe(
        capsys,
        "--socket",
        str(a.path),
        "--socket",
        str(b.path),
        "--node",
        "node-2",
        "--port",
        "40003",
        "--json",
    )
    assert rc == 0 and [json.loads(x)["reason"] for x in out.splitlines()] == ["record 3"]


def test_observe_without_a_daemon_says_what_to_do(tmp_path: Path, capsys, monkeypatch):
    missing = tmp_path / "nothing.sock"
    rc, out, err = observe(capsys, "--socket", str(missing))
    assert rc == 1 and out == ""
    assert f"no node daemon serves flow records at {missing}" in err
    assert "Traceback" not in err
    # no --socket, no lab: this node's default socket
    import netcc.lab.state as lab_state

    monkeypatch.setattr(lab_state, "STATE_DIR", tmp_path / "no-lab")
    monkeypatch.setattr(flows, "DEFAULT_SOCKET", str(missing))
    rc, _, err = observe(capsys)
    assert rc == 1 and str(missing) in err
    rc, _, err = observe(capsys, "--socket", str(missing), "--protocol", "tcpp")
    assert rc == 1 and "unknown protocol" in err


def test_observe_reads_every_lab_node(two_nodes, tmp_path: Path, capsys, monkeypatch):
    a, b = two_nodes
    lab = tmp_path / "lab"
    lab.mkdir()
    resources = [
        {"kind": "daemon", "node": "node-1", "dir": str(tmp_path), "flows": str(a.path)},
        {"kind": "daemon", "node": "node-2", "dir": str(tmp_path), "flows": str(b.path)},
    ]
    (lab / "state.json").write_text(json.dumps({"version": 1, "resources": resources}))
    import netcc.lab.state as lab_state

    monkeypatch.setattr(lab_state, "STATE_DIR", lab)
    rc, out, err = observe(capsys, "--last", "4", "--json")
    assert rc == 0, err
    assert [json.loads(x)["node"] for x in out.splitlines()] == ["node-1", "node-2"] * 2
    rc, out, err = observe(capsys, "--node", "node-2", "--last", "4", "--json")
    assert rc == 0 and {json.loads(x)["node"] for x in out.splitlines()} == {"node-2"}


def _observe_process(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "netcc", "observe", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _line(proc: subprocess.Popen) -> str:
    """The next line `proc` prints, within WAIT."""
    got: list[str] = []
    t = threading.Thread(target=lambda: got.append(proc.stdout.readline()), daemon=True)
    t.start()
    t.join(WAIT)
    assert got and got[0], f"no line within {WAIT} s"
    return got[0]


def test_follow_merges_histories_then_streams_and_ends_on_ctrl_c(two_nodes):
    a, b = two_nodes
    proc = _observe_process(
        "--socket", str(a.path), "--socket", str(b.path), "--follow", "--last", "2", "--json"
    )
    try:
        first = [json.loads(_line(proc)) for _ in range(2)]
        assert [r["reason"] for r in first] == ["record 38", "record 39"]
        until("observe follows both", lambda: a.history.following and b.history.following)
        b.history.add(record(100, "node-2", "dropped"))
        assert json.loads(_line(proc))["reason"] == "record 100"
        a.history.add(record(101, "node-1"))
        assert json.loads(_line(proc))["reason"] == "record 101"
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0 and "Traceback" not in err, err


def test_follow_ends_quietly_when_its_output_is_closed(node: Node):
    proc = _observe_process("--socket", str(node.path), "--follow")
    try:
        until("observe follows", lambda: node.history.following)
        node.history.add(record(1))
        assert "record 1" in _line(proc)
        proc.stdout.close()  # `| head -1`: the reader went away
        deadline = time.monotonic() + WAIT
        i = 2
        while proc.poll() is None and time.monotonic() < deadline:
            node.history.add(record(i))
            i += 1
            time.sleep(0.05)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(WAIT)
    assert proc.returncode == 0 and "Traceback" not in err, err
