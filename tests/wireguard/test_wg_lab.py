"""A 3-node lab with WireGuard (wireguard-go per node): pod traffic crosses the underlay only
as WireGuard UDP between node addresses, policy still judges it pod-to-pod, every node has a
handshake with every other, a re-apply changes nothing, a key rotation keeps a TCP stream
alive, and `lab down` leaves no daemon behind."""

from __future__ import annotations

import itertools
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from wgspecs import assert_no_key_material, key_dir, policy_spec, private_keys, read_tree

from netcc.lab import core as lab
from netcc.lab import netns as lab_netns
from netcc.lab import wireguard as lab_wireguard
from netcc.lab.state import STATE_DIR, LabState

NODES = {"node-1": "192.168.77.11", "node-2": "192.168.77.12", "node-3": "192.168.77.13"}
PORT = 51871
MARKER = b"NETCC-PLAINTEXT-MARKER-"
CART = ("netcc-pod-shop.cart", "10.244.2.10", 7000)  # on node-2; api-ingress allows tier=web


@dataclass
class Lab:
    keys: Path
    spec: str
    entries: dict[str, dict[str, str]]
    state: LabState
    up_seconds: float


@pytest.fixture(scope="module")
def wg_lab() -> Iterator[Lab]:
    if LabState.exists(STATE_DIR):
        pytest.fail(f"a lab is already up ({STATE_DIR}); not touching it")
    with key_dir() as keys:
        spec, entries = policy_spec(keys)
        path = keys / "spec.yaml"
        path.write_text(spec)
        started = time.perf_counter()
        try:
            lab.up(path)
            yield Lab(keys, spec, entries, LabState.load(), time.perf_counter() - started)
        finally:
            if LabState.exists(STATE_DIR):
                lab.down()


def _loads(state: LabState) -> dict[str, dict]:
    return {r["node"]: r for r in state.of_kind("load")}


def _latest_handshakes(netns: str) -> dict[str, int]:
    out = lab_wireguard.wg_show(netns, "netcc-wg0", "latest-handshakes")
    return {k: int(v) for k, v in (line.split("\t") for line in out.splitlines())}


# --- a TCP stream between two pods ----------------------------------------------------------


@dataclass
class Stream:
    """A client in `src` writing marker lines to a server in `dst`, which counts arrivals."""

    src: str
    src_ip: str
    dst: tuple[str, str, int]
    arrivals: list[tuple[float, int]] = field(default_factory=list)
    error: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Stream:
        netns, ip, port = self.dst
        with lab_netns.entered(netns):
            self.server = socket.create_server((ip, port))
        with lab_netns.entered(self.src):
            self.client = socket.socket()
            self.client.bind((self.src_ip, 0))
        self.client.settimeout(5)
        self.client.connect((ip, port))
        self.conn, _ = self.server.accept()
        self.threads = [
            threading.Thread(target=self._send, daemon=True),
            threading.Thread(target=self._receive, daemon=True),
        ]
        for t in self.threads:
            t.start()
        return self

    def _send(self) -> None:
        n = 0
        try:
            while not self.stop.is_set():
                self.client.sendall(MARKER + b"%08d\n" % n)
                n += 1
                time.sleep(0.005)
        except OSError as e:
            self.error = f"send: {e}"

    def _receive(self) -> None:
        self.conn.settimeout(60)
        try:
            while data := self.conn.recv(65536):
                self.arrivals.append((time.monotonic(), len(data)))
        except OSError as e:
            if not self.stop.is_set():
                self.error = f"receive: {e}"

    def received(self) -> int:
        return sum(n for _, n in self.arrivals)

    def longest_gap(self, since: float) -> float:
        times = [since] + [t for t, _ in self.arrivals if t >= since]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for s in (self.client, self.conn, self.server):
            s.close()
        for t in self.threads:
            t.join(5)


# --- capture --------------------------------------------------------------------------------


def _capture(netns: str, pcap: Path) -> subprocess.Popen:
    cmd = [
        "nsenter",
        f"--net=/run/netns/{netns}",
        "tcpdump",
        "-i",
        "eth0",
        "-n",
        "-U",
        "-Z",
        "root",
    ]
    proc = subprocess.Popen([*cmd, "-w", str(pcap)], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()  # "listening on eth0 ...": capturing from here on
    assert "listening" in line, line
    return proc


def _frames(pcap: Path) -> list[bytes]:
    data = pcap.read_bytes()
    magic, linktype = struct.unpack("<I", data[:4])[0], struct.unpack("<I", data[20:24])[0]
    assert (magic, linktype) == (0xA1B2C3D4, 1)  # little-endian pcap of Ethernet frames
    frames, offset = [], 24
    while offset + 16 <= len(data):
        length = struct.unpack("<I", data[offset + 8 : offset + 12])[0]
        frames.append(data[offset + 16 : offset + 16 + length])
        offset += 16 + length
    return frames


# --- tests ----------------------------------------------------------------------------------


def test_wg_lab_pod_traffic_is_judged_pod_to_pod(wg_lab: Lab) -> None:
    """frontend (node-1) may reach cart (node-2) only as a tier=web pod: it does, through the
    tunnel; prometheus (node-3) may not on that port, and is denied by cart's ingress."""
    assert wg_lab.up_seconds < 30
    allowed = lab.probe("shop/frontend", "shop/cart", 7000, "TCP")
    assert allowed.allowed, allowed.detail
    assert any(c["node"] == "node-2" and "RULE" in c["name"] for c in allowed.counted), (
        allowed.counted
    )
    denied = lab.probe("monitoring/prometheus", "shop/cart", 7000, "TCP")
    assert not denied.allowed
    assert lab.probe("monitoring/prometheus", "shop/cart", 9150, "TCP").allowed  # metrics


def test_wg_lab_underlay_sees_only_wireguard(wg_lab: Lab) -> None:
    pcap = wg_lab.keys / "node-2.pcap"
    proc = _capture("netcc-node-2", pcap)
    try:
        with Stream("netcc-pod-shop.frontend", "10.244.1.10", CART) as stream:
            deadline = time.monotonic() + 10
            while len(_frames(pcap)) < 40 and time.monotonic() < deadline:  # written, not queued
                time.sleep(0.05)
            assert stream.error is None and stream.received() >= 20 * 32
    finally:
        proc.send_signal(signal.SIGINT)
        _, summary = proc.communicate(timeout=10)
    frames = _frames(pcap)
    print(f"capture on node-2's underlay: {len(frames)} frames ({summary.strip()!r})")
    addresses = {socket.inet_aton(a) for a in NODES.values()}
    udp = 0
    for frame in frames:
        assert MARKER not in frame
        ethertype = struct.unpack("!H", frame[12:14])[0]
        if ethertype == 0x0806:  # ARP between node addresses
            assert frame[28:32] in addresses and frame[38:42] in addresses
            continue
        assert ethertype == 0x0800, hex(ethertype)
        ip = frame[14:]
        header = (ip[0] & 0x0F) * 4
        assert ip[9] == 17, f"protocol {ip[9]} on the underlay"
        assert ip[12:16] in addresses and ip[16:20] in addresses
        sport, dport = struct.unpack("!HH", ip[header : header + 4])
        assert (sport, dport) == (PORT, PORT)
        udp += 1
    assert udp >= 20


def test_wg_lab_every_node_has_a_handshake_with_every_other(wg_lab: Lab) -> None:
    lab.probe_many([("shop/frontend", "shop/cart", 7000, "TCP")])
    now = time.time()
    keys = {n: e["publicKey"] for n, e in wg_lab.entries.items()}
    for node in NODES:
        shakes = _latest_handshakes(f"netcc-{node}")
        assert set(shakes) == {keys[o] for o in NODES if o != node}
        assert all(0 < now - t < 180 for t in shakes.values()), shakes


def test_wg_lab_cli_shows_each_nodes_tunnel(wg_lab: Lab) -> None:
    """`netcc lab wg NODE` is `wg show` beside that node's daemon, as a user runs it."""
    lab.probe_many([("shop/frontend", "shop/cart", 7000, "TCP")])
    keys = {n: e["publicKey"] for n, e in wg_lab.entries.items()}
    for node in NODES:
        shown = subprocess.run(
            [sys.executable, "-m", "netcc", "lab", "wg", node],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        assert f"public key: {keys[node]}" in shown.stdout
        for other in NODES:
            if other != node:
                assert f"peer: {keys[other]}" in shown.stdout
        assert shown.stdout.count("latest handshake:") == len(NODES) - 1
    missing = subprocess.run(
        [sys.executable, "-m", "netcc", "lab", "wg", "no-such-node"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert missing.returncode == 1 and "no WireGuard tunnel on node" in missing.stderr


def test_wg_lab_reapply_changes_nothing(wg_lab: Lab) -> None:
    from netcc.loader.apply import apply

    r = _loads(wg_lab.state)["node-1"]
    before = _latest_handshakes("netcc-node-1")
    with lab_netns.entered(r["netns"]):
        result = apply(r["out"], "node-1", pin_root=r["pin_root"], state_dir=r["state_dir"])
    assert result.wireguard == {
        "node": "node-1",
        "ifname": "netcc-wg0",
        "backend": "userspace",
        "status": "unchanged",
        "changes": [],
    }
    assert _latest_handshakes("netcc-node-1") == before


def test_wg_lab_key_rotation_under_traffic(wg_lab: Lab) -> None:
    """node-2 gets a new key pair: the new OUT goes to node-2 first, then to the others (whose
    new peer entry for node-2 then handshakes at once; the other order waits for WireGuard's 5 s
    handshake retry). A TCP stream from node-1 to node-2 stalls briefly and goes on."""
    from netcc.keys import generate
    from netcc.loader.apply import apply
    from netcc.pipeline import compile_spec
    from netcc.write.tree import write_tree

    new = generate(wg_lab.keys / "rotated", ["node-2"])["node-2"]
    old = wg_lab.entries["node-2"]
    spec = wg_lab.spec.replace(old["publicKey"], new["publicKey"])
    spec = spec.replace(old["privateKeyFile"], new["privateKeyFile"])
    out = wg_lab.keys / "out-rotated"
    tree = compile_spec(spec.encode(), "spec.yaml")
    write_tree(tree, out)
    loads = _loads(wg_lab.state)
    with Stream("netcc-pod-shop.frontend", "10.244.1.10", CART) as stream:
        time.sleep(0.5)
        before = stream.received()
        rotated = time.monotonic()
        for node in ("node-2", "node-1", "node-3"):
            r = loads[node]
            with lab_netns.entered(r["netns"]):
                res = apply(out, node, pin_root=r["pin_root"], state_dir=r["state_dir"])
            assert res.wireguard is not None and res.wireguard["status"] == "configured"
        applied = time.monotonic()
        deadline = applied + 20
        while stream.received() < before + 200 * 32 and time.monotonic() < deadline:
            time.sleep(0.1)
        gap = stream.longest_gap(rotated)
        assert stream.error is None, stream.error
        assert stream.received() >= before + 200 * 32, "the stream did not resume"
    print(f"key rotation: applies {applied - rotated:.2f} s, longest stall {gap:.2f} s")
    assert gap < 4
    shakes = _latest_handshakes("netcc-node-1")
    assert new["publicKey"] in shakes and old["publicKey"] not in shakes
    assert_no_key_material(
        {**tree, **read_tree(Path(wg_lab.state.doc["out"]))}, private_keys(wg_lab.keys)
    )


def test_wg_lab_down_kills_every_daemon(wg_lab: Lab) -> None:
    """Even when the loader's record of a device is lost (a crash), `down` kills the daemon."""
    records = wg_lab.state.of_kind("wireguard")
    assert sorted(r["node"] for r in records) == sorted(NODES)
    inodes = {int(r["inode"]) for r in records}
    assert len(lab_wireguard.daemon_pids(inodes)) == 3
    Path(_loads(wg_lab.state)["node-3"]["state_dir"], "wireguard.json").unlink()
    report = lab.down()
    assert not report.problems, report.problems
    assert lab_wireguard.daemon_pids(inodes) == []
    assert not any(Path(r["dir"]).exists() for r in records)
