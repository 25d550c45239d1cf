"""The IPsec node side for real, run inside a throwaway QEMU VM (test_ipsecvm_kernel.py).

Not a test module: the outer test boots a Debian kernel that has esp4, xfrm_user and the AES-GCM
modules, and runs `python3 ipsecvm_guest.py REPORT.json CONFIG.json` in it. CONFIG names a spec
and its OUT for each rollout phase, compiled on the host (phase 0: key 1 sends; 1: key 2
accepted too; 2: key 2 sends, key 1 accepted; 3: key 2 only), and the directory of the cluster
keys (`netcc ipsec keygen`). The script

- brings up the lab (`netcc.lab.core.up`: a namespace per node on an underlay bridge, pods
  behind them, the datapath loaded on every node, and with it, by `netcc load apply`, each
  node's IPsec plan) from phase 0's OUT, pod MTUs the plan's;
- applies each node's IPsec plan once more with the reconciler
  (`netcc.loader.ipsec.apply.apply_ipsec`, in the node's namespace), then: allowed and denied
  probes give the policy's verdicts (those it gives without encryption); TCP and UDP between
  pods on different nodes work; a capture of the underlay (AF_PACKET on every bridge port)
  holds only ESP between the nodes, no pod address and none of the bytes the pods sent;
  a second apply changes nothing, and a state and a policy of someone else's survive it;
- rotates to key 2 in three rollouts, node after node, under continuous TCP streams between
  pods on different nodes: every stream stays alive and every XFRM error counter of every
  node stays 0; the removed key's inbound states stay for the grace time, then go;
- reports `load status`-style SAs (`ipsec_status`) and tears the lab down.

Every check goes into the JSON report, which the outer test asserts on; a crash is a failed
check with its traceback. It refuses to run outside a virtme-ng guest.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from netcc.lab import core as lab
from netcc.lab import netns as lab_netns
from netcc.lab.plan import LabPlan, plan_from_doc
from netcc.lab.probe import Probe, run_probes
from netcc.lab.state import LabState

MODULES = ("xfrm_user", "esp4", "aesni_intel", "gcm", "seqiv")
STREAM_PORT, BULK_PORT = 7100, 7101
MARKER = b"netcc-ipsec-vm-plaintext-marker:"
STATE_ROOT = Path("/run/netcc-ipsecvm")
PROBE_TIMEOUT = 3.0

checks: list[dict[str, Any]] = []
facts: dict[str, Any] = {}


def check(name: str, ok: bool, detail: Any = "") -> bool:
    checks.append({"name": name, "ok": bool(ok), "detail": str(detail)[:4000]})
    print(f"ipsecvm: {'ok  ' if ok else 'FAIL'} {name} {str(detail)[:300]}", flush=True)
    return bool(ok)


# --- the lab ---------------------------------------------------------------------------------


def lab_plan() -> LabPlan:
    return plan_from_doc(LabState.load().doc["plan"])


def set_pod_mtus(plan: LabPlan, mtu: int) -> None:
    """What the node daemon does with ipsec.json's MTU: both ends of each pod's veth."""
    from pyroute2 import IPRoute

    for pod in plan.pods:
        node = next(n for n in plan.nodes if n.name == pod.node)
        for netns, ifname in ((node.netns, pod.veth), (pod.netns, "eth0")):
            with lab_netns.entered(netns), IPRoute() as ipr:
                ipr.link("set", index=ipr.link_lookup(ifname=ifname)[0], mtu=mtu)


def pod(plan: LabPlan, key: str):
    return next(p for p in plan.pods if p.key == key)


# Cross-node probes and their verdicts under the shop's policies (examples/shop.yaml).
PROBES = (
    ("shop/frontend", "shop/cart", 7000, "TCP", True),
    ("shop/cart", "payments/payments-api", 50051, "TCP", True),
    ("monitoring/prometheus", "shop/frontend", 9100, "TCP", True),
    ("probe/a", "probe/b", 7200, "UDP", True),
    ("probe/b", "probe/c", 7201, "TCP", True),
    ("shop/frontend", "shop/cache", 6379, "TCP", False),
    ("shop/cart", "shop/frontend", 8080, "TCP", False),
    ("monitoring/prometheus", "payments/payments-api", 50051, "TCP", False),
    ("probe/a", "shop/cart", 7000, "TCP", False),
)


def verdicts(plan: LabPlan, label: str) -> None:
    probes = []
    for src, dst, port, proto, _ in PROBES:
        s, d = pod(plan, src), pod(plan, dst)
        probes.append(Probe(s.netns, str(s.ips[0]), d.netns, str(d.ips[0]), port, proto))
    results = run_probes(probes, timeout=PROBE_TIMEOUT)
    wrong = [
        f"{src} -> {dst} {port}/{proto}: {'allowed' if r.allowed else 'denied'} ({r.detail})"
        for (src, dst, port, proto, want), r in zip(PROBES, results, strict=True)
        if r.allowed != want
    ]
    check(f"{label}: allowed and denied probes as the policy says", not wrong, wrong)


# --- XFRM on the nodes -----------------------------------------------------------------------


def apply_phase(plan: LabPlan, out: Path, pause: float = 0.0) -> dict[str, Any]:
    """apply_ipsec of OUT on every node, in its namespace, node after node."""
    from netcc.contract.lock import verify_lock
    from netcc.loader.ipsec.apply import apply_ipsec

    lock = verify_lock(out)
    reports = {}
    for node in plan.nodes:
        with lab_netns.entered(node.netns):
            r = apply_ipsec(out, lock, node.name, STATE_ROOT / node.name)
        reports[node.name] = r.to_json() if r else None
        if pause:
            time.sleep(pause)
    return reports


def in_node(plan: LabPlan, name: str, fn, *args):
    node = next(n for n in plan.nodes if n.name == name)
    with lab_netns.entered(node.netns):
        return fn(*args)


def dump(plan: LabPlan, name: str):
    from netcc.loader.ipsec.xfrm import XfrmSocket

    def get():
        with XfrmSocket() as xs:
            return xs.states(), xs.policies()

    return in_node(plan, name, get)


def error_counters(plan: LabPlan) -> dict[str, dict[str, int]]:
    from netcc.loader.ipsec.xfrm import xfrm_stats

    found = {}
    for node in plan.nodes:
        counters = in_node(plan, node.name, xfrm_stats)
        found[node.name] = {k: v for k, v in counters.items() if v}
    return found


def add_unrelated(plan: LabPlan) -> tuple[Any, Any]:
    """A state and a policy of someone else's on node-1 (reqid 7, another peer)."""
    from netcc.loader.ipsec import xfrm as x

    state = x.XfrmState(
        "192.168.77.11",
        "198.51.100.7",
        0x7000,
        7,
        x.Selector("10.99.0.0/16", "10.98.0.0/16"),
        x.AeadAlgo("rfc4106(gcm(aes))", 128, os.urandom(20)),
        128,
    )
    policy = x.XfrmPolicy(
        x.XFRM_POLICY_OUT,
        x.Selector("10.99.0.0/16", "10.98.0.0/16"),
        100,
        (x.Template("192.168.77.11", "198.51.100.7", 0x7000, 7),),
    )

    def add():
        with x.XfrmSocket() as xs:
            xs.add_state(state)
            xs.add_policy(policy)

    in_node(plan, "node-1", add)
    return state, policy


def unrelated_survive(plan: LabPlan, state, policy, label: str) -> None:
    states, policies = dump(plan, "node-1")
    check(
        f"{label}: unrelated XFRM state and policy untouched",
        state in states and policy in policies,
    )


# --- traffic ---------------------------------------------------------------------------------


class EchoServer(threading.Thread):
    """TCP echo in a pod's namespace, a thread per connection, until `stop`."""

    def __init__(self, netns: str, port: int) -> None:
        super().__init__(daemon=True)
        self.netns, self.port = netns, port
        self.ready, self.stop = threading.Event(), threading.Event()

    def run(self) -> None:
        with lab_netns.entered(self.netns):
            srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with srv:
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind(("0.0.0.0", self.port))
            srv.listen(16)
            srv.settimeout(0.2)
            self.ready.set()
            while not self.stop.is_set():
                try:
                    conn, _ = srv.accept()
                except TimeoutError:
                    continue
                threading.Thread(target=self.echo, args=(conn,), daemon=True).start()

    def echo(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass


def bulk(netns: str, dst: str, size: int) -> str | None:
    """`size` bytes (starting with MARKER, then random) to the echo at dst; None if all came
    back intact, else why not."""
    payload = MARKER + os.urandom(size - len(MARKER))
    with lab_netns.entered(netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(30)
        sock.connect((dst, BULK_PORT))
        got = bytearray()

        def reader():
            while len(got) < size and (data := sock.recv(65536)):
                got.extend(data)

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        sock.sendall(payload)
        t.join(60)
        return None if bytes(got) == payload else f"echoed {len(got)} of {size} bytes"
    except OSError as e:
        return f"{type(e).__name__}: {e}"
    finally:
        sock.close()


class Stream(threading.Thread):
    """A continuous TCP stream from a pod to an echo: numbered 1 KiB messages, each echo
    checked; records the longest wait for an echo and the first error."""

    def __init__(self, netns: str, dst: str) -> None:
        super().__init__(daemon=True)
        self.netns, self.dst = netns, dst
        self.stop = threading.Event()
        self.count, self.max_gap, self.error = 0, 0.0, None

    def run(self) -> None:
        with lab_netns.entered(self.netns):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.settimeout(20)
            sock.connect((self.dst, STREAM_PORT))
            last = time.monotonic()
            while not self.stop.is_set():
                msg = MARKER + struct.pack("!Q", self.count) + os.urandom(1024 - len(MARKER) - 8)
                sock.sendall(msg)
                got = b""
                while len(got) < len(msg):
                    data = sock.recv(len(msg) - len(got))
                    if not data:
                        raise ConnectionError("the echo closed the stream")
                    got += data
                if got != msg:
                    raise ValueError(f"message {self.count} came back changed")
                now = time.monotonic()
                self.max_gap, last = max(self.max_gap, now - last), now
                self.count += 1
                time.sleep(0.005)
        except Exception as e:
            self.error = f"{type(e).__name__}: {e} after {self.count} messages"
        finally:
            sock.close()


# --- the capture -----------------------------------------------------------------------------


class Capture(threading.Thread):
    """Every frame on the underlay bridge's ports (AF_PACKET in the underlay namespace)."""

    def __init__(self, plan: LabPlan) -> None:
        super().__init__(daemon=True)
        self.plan = plan
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.flows: dict[tuple[str, str, int], int] = {}
        self.pod_addressed: list[str] = []
        self.marker_seen = 0
        self.frames = 0

    def run(self) -> None:
        from ipaddress import IPv4Address, IPv4Network

        cluster = IPv4Network("10.244.0.0/16")
        ports = {n.port for n in self.plan.nodes}
        with lab_netns.entered(self.plan.underlay):
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        with s:
            s.settimeout(0.2)
            self.ready.set()
            while not self.stop.is_set():
                try:
                    frame, addr = s.recvfrom(65535)
                except TimeoutError:
                    continue
                if addr[0] not in ports:  # named through the socket: the underlay's names
                    continue
                self.frames += 1
                if MARKER in frame:
                    self.marker_seen += 1
                if len(frame) < 34 or frame[12:14] != b"\x08\x00":
                    continue
                proto = frame[23]
                src, dst = IPv4Address(frame[26:30]), IPv4Address(frame[30:34])
                key = (str(src), str(dst), proto)
                self.flows[key] = self.flows.get(key, 0) + 1
                if (src in cluster or dst in cluster) and len(self.pod_addressed) < 20:
                    self.pod_addressed.append(f"{src} -> {dst} proto {proto}")


# --- the scenario ----------------------------------------------------------------------------


def modules() -> None:
    loaded = []
    for m in MODULES:
        r = subprocess.run(["modprobe", m], capture_output=True, text=True, check=False)
        loaded.append(f"{m}: {'ok' if r.returncode == 0 else r.stderr.strip()}")
    facts["modules"] = loaded
    check("esp4 and xfrm_user load", all(x.endswith("ok") for x in loaded[:2]), loaded)


def scenario(cfg: dict[str, Any]) -> None:
    from netcc.contract.ipsec import PLAN_PATH

    outs = [Path(p) for p in cfg["outs"]]
    ipsec_doc = json.loads((outs[0] / PLAN_PATH.format(node="node-1")).read_text())
    mtu = ipsec_doc["mtu"]
    t = time.monotonic()
    lab.up(cfg["spec"], artifacts=outs[0])
    facts["lab_up_s"] = round(time.monotonic() - t, 1)
    plan = lab_plan()
    set_pod_mtus(plan, mtu)
    check(
        "lab up with the datapath on every node", len(plan.nodes) == 3, [n.name for n in plan.nodes]
    )
    # `lab up` applied the first OUT, IPsec included (the loader installs it before the
    # datapath); the probes below check the policy's verdicts through it.

    a, b, c = pod(plan, "probe/a"), pod(plan, "probe/b"), pod(plan, "probe/c")
    servers = [EchoServer(p.netns, port) for p in (b, c, a) for port in (STREAM_PORT, BULK_PORT)]
    for s in servers:
        s.start()
    check("echo servers listening", all(s.ready.wait(10) for s in servers))

    # phase 0: IPsec on
    t = time.monotonic()
    first = apply_phase(plan, outs[0])
    facts["apply_s"] = round(time.monotonic() - t, 2)
    check(
        "apply: every node's states and policies installed",
        all(r and r["status"] in ("installed", "unchanged") for r in first.values()),
        first,
    )
    states, policies = dump(plan, "node-1")
    check(
        "apply: node-1 holds 2 states and 3 policies per peer",
        len([s for s in states if s.reqid == 0x6E63]) == 4
        and len([p for p in policies if p.templates and p.templates[0].reqid == 0x6E63]) == 6,
        f"{len(states)} states, {len(policies)} policies",
    )

    capture = Capture(plan)
    capture.start()
    check("capture on the underlay ready", capture.ready.wait(10))
    verdicts(plan, "with IPsec")
    why = bulk(a.netns, str(b.ips[0]), 256 * 1024)
    check(
        "TCP between pods on different nodes (node-1 -> node-2, 256 KiB echoed)", why is None, why
    )
    why = bulk(c.netns, str(a.ips[0]), 64 * 1024)
    check("TCP between pods on different nodes (node-3 -> node-1)", why is None, why)
    udp = run_probes(
        [
            Probe(a.netns, str(a.ips[0]), c.netns, str(c.ips[0]), 7300, "UDP"),
            Probe(c.netns, str(c.ips[0]), b.netns, str(b.ips[0]), 7301, "UDP"),
        ],
        timeout=PROBE_TIMEOUT,
    )
    check(
        "UDP between pods on different nodes", all(r.allowed for r in udp), [r.detail for r in udp]
    )
    big = mtu - 20 - 8
    udp_big = udp_echo(a.netns, c.netns, str(c.ips[0]), big)
    check(
        f"a UDP datagram filling the pod MTU ({mtu}) crosses in one ESP packet",
        udp_big is None,
        udp_big,
    )
    time.sleep(0.3)
    capture.stop.set()
    capture.join(5)
    nodes = {str(n.address) for n in plan.nodes}
    between = {k: v for k, v in capture.flows.items() if k[0] in nodes and k[1] in nodes}
    facts["underlay_flows"] = {f"{s}->{d} proto {p}": n for (s, d, p), n in sorted(between.items())}
    check(
        "capture: ESP between the nodes",
        sum(n for (s, d, p), n in between.items() if p == 50) > 100,
        facts["underlay_flows"],
    )
    check(
        "capture: nothing but ESP between the nodes",
        all(p == 50 for (_s, _d, p) in between),
        facts["underlay_flows"],
    )
    check(
        "capture: no pod address on the underlay", not capture.pod_addressed, capture.pod_addressed
    )
    check("capture: none of the bytes the pods sent", capture.marker_seen == 0, capture.marker_seen)
    facts["captured_frames"] = capture.frames
    check("capture saw the traffic", capture.frames > 200, capture.frames)
    check(
        "XFRM error counters 0 after phase 0",
        not any(error_counters(plan).values()),
        error_counters(plan),
    )

    # (d) idempotent, and someone else's XFRM objects survive
    state, policy = add_unrelated(plan)
    before = [dump(plan, n.name) for n in plan.nodes]
    again = apply_phase(plan, outs[0])
    check(
        "second apply: unchanged on every node",
        all(r and r["status"] == "unchanged" and not r["changes"] for r in again.values()),
        again,
    )
    after = [dump(plan, n.name) for n in plan.nodes]
    check("second apply: the kernel's states and policies as they were", before == after)
    unrelated_survive(plan, state, policy, "second apply")

    rotation(plan, outs, cfg, a, b, c)
    unrelated_survive(plan, state, policy, "after the rotation")
    status(plan)
    for s in servers:
        s.stop.set()


def udp_echo(src_ns: str, dst_ns: str, dst: str, size: int) -> str | None:
    """One UDP datagram of `size` bytes with DF set, echoed back by a socket in dst_ns."""
    with lab_netns.entered(dst_ns):
        srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with lab_netns.entered(src_ns):
        cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        srv.bind(("0.0.0.0", 7302))
        srv.settimeout(5)
        cli.settimeout(5)
        cli.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER = IP_PMTUDISC_DO
        payload = MARKER + os.urandom(size - len(MARKER))
        cli.sendto(payload, (dst, 7302))
        data, peer = srv.recvfrom(65535)
        srv.sendto(data, peer)
        back, _ = cli.recvfrom(65535)
        return None if back == payload else "changed on the way"
    except OSError as e:
        return f"{type(e).__name__}: {e}"
    finally:
        srv.close()
        cli.close()


def rotation(plan: LabPlan, outs: list[Path], cfg: dict[str, Any], a, b, c) -> None:
    streams = [
        Stream(a.netns, str(b.ips[0])),
        Stream(c.netns, str(a.ips[0])),
        Stream(b.netns, str(c.ips[0])),
    ]
    for s in streams:
        s.start()
    time.sleep(1.0)
    check(
        "streams running before the rotation",
        all(s.count > 0 and not s.error for s in streams),
        [(s.count, s.error) for s in streams],
    )
    phases = (
        ("phase 1 (key 2 accepted)", outs[1]),
        ("phase 2 (key 2 sends)", outs[2]),
        ("phase 3 (key 1 removed)", outs[3]),
    )
    reports: dict[str, Any] = {}
    phase3_done = 0.0
    for label, out in phases:
        counts = [s.count for s in streams]
        reports[label] = apply_phase(plan, out, pause=0.7)
        phase3_done = time.monotonic()
        time.sleep(0.7)
        moved = all(s.count > n for s, n in zip(streams, counts, strict=True))
        errors = error_counters(plan)
        check(
            f"{label}: applied on every node",
            all(r and r["status"] == "updated" for r in reports[label].values()),
            reports[label],
        )
        check(
            f"{label}: every stream alive and moving",
            moved and not any(s.error for s in streams),
            [(s.count, s.error, round(s.max_gap, 3)) for s in streams],
        )
        check(
            f"{label}: every XFRM error counter 0 on every node", not any(errors.values()), errors
        )
    facts["rotation"] = reports
    p1 = reports["phase 1 (key 2 accepted)"]["node-1"]
    check(
        "phase 1: only states added (4 per node), no policy touched",
        len(p1["changes"]) == 4
        and all("state" in c and c.endswith("added") for c in p1["changes"]),
        p1["changes"],
    )
    p2 = reports["phase 2 (key 2 sends)"]["node-1"]
    check(
        "phase 2: only the out policies updated",
        sorted(p2["changes"])
        == sorted(c for c in p2["changes"] if c.startswith("policy out") and c.endswith("updated"))
        and len(p2["changes"]) == 2,
        p2["changes"],
    )
    p3 = reports["phase 3 (key 1 removed)"]["node-1"]
    check(
        "phase 3: key 1's out states removed, its in states kept",
        len(p3["changes"]) == 2
        and len(p3["kept"]) == 2
        and all("state out" in c for c in p3["changes"]),
        p3,
    )

    # the grace time (the spec's removedKeyGraceSeconds) runs out: key 1's in states go
    time.sleep(max(0.0, phase3_done + cfg["grace"] + 0.3 - time.monotonic()))
    after = apply_phase(plan, outs[3])
    time.sleep(0.5)
    r = after["node-1"]
    check(
        "after the grace: key 1's in states removed",
        r["status"] == "updated" and len(r["changes"]) == 2 and not r["kept"],
        r,
    )
    states, _ = dump(plan, "node-1")
    check(
        "after the grace: only key 2 states",
        {s.spi >> 24 for s in states if s.reqid == 0x6E63} == {2},
    )
    for s in streams:
        s.stop.set()
    for s in streams:
        s.join(10)
    facts["streams"] = [
        {"messages": s.count, "maxGapSeconds": round(s.max_gap, 3), "error": s.error}
        for s in streams
    ]
    check(
        "streams survived the whole rotation",
        all(s.error is None and s.count > 50 for s in streams),
        facts["streams"],
    )
    errors = error_counters(plan)
    check("XFRM error counters 0 on every node at the end", not any(errors.values()), errors)


def status(plan: LabPlan) -> None:
    from netcc.loader.ipsec.apply import format_status, ipsec_status

    doc = in_node(plan, "node-1", ipsec_status, STATE_ROOT / "node-1")
    facts["status_node1"] = format_status(doc)
    sas = doc["sas"] if doc else []
    out_sa = [s for s in sas if s["dir"] == "out"]
    in_sa = [s for s in sas if s["dir"] == "in"]
    check(
        "status: key 2 SAs with sequence numbers and byte counters",
        doc is not None
        and doc["ok"]
        and len(sas) == 4
        and all(s["key"] == 2 for s in sas)
        and any(s["oseq"] > 0 and s["bytes"] > 0 for s in out_sa)
        and any(s["seq"] > 0 and s["packets"] > 0 for s in in_sa),
        facts["status_node1"],
    )


def main(report_path: str, config_path: str) -> int:
    if "virtme" not in Path("/proc/cmdline").read_text() and os.environ.get("IPSECVM_HERE") != "1":
        print("ipsecvm_guest: not inside a virtme-ng VM; refusing (set IPSECVM_HERE=1 to force)")
        return 2
    started = time.monotonic()
    facts["kernel"] = os.uname().release
    cfg = json.loads(Path(config_path).read_text())
    try:
        modules()
        scenario(cfg)
    except Exception:
        check("scenario ran to the end", False, traceback.format_exc())
    finally:
        try:
            lab.down()
        except Exception as e:
            facts["lab_down"] = f"{type(e).__name__}: {e}"
        facts["scenario_s"] = round(time.monotonic() - started, 1)
        Path(report_path).write_text(json.dumps({"checks": checks, "facts": facts}, indent=1))
    return 0 if all(c["ok"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
