"""The guest half of `bench/ipsec_vm.py`: pod-to-pod throughput and latency in the lab, plain,
with IPsec and with WireGuard, in one VM boot. Not run by hand: `ipsec_vm.py` boots the VM.

`python3 ipsec_vm_guest.py RESULT.json CONFIG.json`; CONFIG names the specs and OUTs of the
three modes. For each mode: the lab up (the datapath on every node); for IPsec the lab of the
plain OUT with each node's XFRM applied from the IPsec OUT (`apply_ipsec`, as `load apply`
will) and the pods' MTU set to the plan's; for WireGuard the lab of the WireGuard OUT with the
kernel backend (the guest kernel has wireguard.ko). Then, between pods on node-1 and node-2:
TCP throughput (BYTES sent to a sink, the median of RUNS) and TCP request/response latency
(64-byte ping-pong, ROUNDS of them: median and 99th percentile).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from netcc.lab import core as lab
from netcc.lab import netns as lab_netns
from netcc.lab.plan import plan_from_doc
from netcc.lab.state import LabState

BYTES, RUNS, ROUNDS = 16 << 20, 3, 400
SINK_PORT, PING_PORT = 7400, 7401


def servers(netns: str, stop: threading.Event) -> None:
    """A sink (reads all, answers the count) and a ping-pong echo in `netns`."""
    with lab_netns.entered(netns):
        sink = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ping = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    for s, port in ((sink, SINK_PORT), (ping, PING_PORT)):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        s.listen(4)
        s.settimeout(0.2)

    def serve(s: socket.socket, handle) -> None:
        while not stop.is_set():
            try:
                conn, _ = s.accept()
            except TimeoutError:
                continue
            threading.Thread(target=handle, args=(conn,), daemon=True).start()
        s.close()

    def drain(conn: socket.socket) -> None:
        with conn:
            total = 0
            while data := conn.recv(1 << 20):
                total += len(data)
            conn.sendall(str(total).encode())

    def echo(conn: socket.socket) -> None:
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while data := conn.recv(64):
                conn.sendall(data)

    threading.Thread(target=serve, args=(sink, drain), daemon=True).start()
    threading.Thread(target=serve, args=(ping, echo), daemon=True).start()


def client(netns: str) -> socket.socket:
    with lab_netns.entered(netns):
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM)


def throughput(netns: str, dst: str) -> float:
    """Megabits per second of one BYTES transfer, counted when the sink confirms them."""
    chunk = os.urandom(1 << 16)
    with client(netns) as s:
        s.settimeout(120)
        s.connect((dst, SINK_PORT))
        started = time.perf_counter()
        sent = 0
        while sent < BYTES:
            s.sendall(chunk)
            sent += len(chunk)
        s.shutdown(socket.SHUT_WR)
        got = int(s.recv(64).decode())
        seconds = time.perf_counter() - started
    assert got == sent, f"sink got {got} of {sent}"
    return sent * 8 / seconds / 1e6


def latency(netns: str, dst: str) -> list[float]:
    """Round-trip times (microseconds) of ROUNDS 64-byte exchanges on one connection."""
    msg = b"x" * 64
    times = []
    with client(netns) as s:
        s.settimeout(30)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.connect((dst, PING_PORT))
        for _ in range(ROUNDS + 20):
            t = time.perf_counter()
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                got += s.recv(64)
            times.append((time.perf_counter() - t) * 1e6)
    return sorted(times[20:])  # the first ones warm up


def measure(mode: str) -> dict[str, Any]:
    plan = plan_from_doc(LabState.load().doc["plan"])
    a = next(p for p in plan.pods if p.key == "probe/a")
    b = next(p for p in plan.pods if p.key == "probe/b")
    stop = threading.Event()
    servers(b.netns, stop)
    time.sleep(0.3)
    dst = str(b.ips[0])
    try:
        throughput(a.netns, dst)  # warm-up (ARP, SAs, handshakes)
        rates = sorted(throughput(a.netns, dst) for _ in range(RUNS))
        rtts = latency(a.netns, dst)
    finally:
        stop.set()
    result = {
        "throughputMbit": round(rates[len(rates) // 2], 1),
        "throughputRuns": [round(r, 1) for r in rates],
        "rttMedianUs": round(rtts[len(rtts) // 2], 1),
        "rttP99Us": round(rtts[int(len(rtts) * 0.99) - 1], 1),
    }
    print(f"ipsec-bench: {mode}: {result}", flush=True)
    return result


def set_pod_mtus(mtu: int) -> None:
    from pyroute2 import IPRoute

    plan = plan_from_doc(LabState.load().doc["plan"])
    for pod in plan.pods:
        node = next(n for n in plan.nodes if n.name == pod.node)
        for netns, ifname in ((node.netns, pod.veth), (pod.netns, "eth0")):
            with lab_netns.entered(netns), IPRoute() as ipr:
                ipr.link("set", index=ipr.link_lookup(ifname=ifname)[0], mtu=mtu)


def ipsec_on(out: Path) -> None:
    from netcc.contract.ipsec import PLAN_PATH
    from netcc.contract.lock import verify_lock
    from netcc.loader.ipsec.apply import apply_ipsec

    plan = plan_from_doc(LabState.load().doc["plan"])
    lock = verify_lock(out)
    for node in plan.nodes:
        with lab_netns.entered(node.netns):
            apply_ipsec(out, lock, node.name, Path("/run/netcc-ipsec-bench") / node.name)
    set_pod_mtus(json.loads((out / PLAN_PATH.format(node="node-1")).read_text())["mtu"])


def main(result_path: str, config_path: str) -> int:
    if "virtme" not in Path("/proc/cmdline").read_text():
        print("ipsec_vm_guest: not inside a virtme-ng VM; refusing")
        return 2
    cfg = json.loads(Path(config_path).read_text())
    doc: dict[str, Any] = {"kernel": os.uname().release, "modes": {}, "errors": []}
    try:
        lab.up(cfg["plain"]["spec"], artifacts=cfg["plain"]["out"])
        try:
            doc["modes"]["plain"] = measure("plain")
            ipsec_on(Path(cfg["ipsec"]["out"]))
            doc["modes"]["ipsec"] = measure("ipsec")
        finally:
            lab.down()
        lab.WIREGUARD_BACKEND = "kernel"  # wireguard.ko is in this kernel
        lab.up(cfg["wireguard"]["spec"], artifacts=cfg["wireguard"]["out"])
        try:
            doc["modes"]["wireguard"] = measure("wireguard (kernel)")
        finally:
            lab.down()
    except Exception:
        doc["errors"].append(traceback.format_exc())
        print(doc["errors"][-1], flush=True)
    Path(result_path).write_text(json.dumps(doc, indent=1))
    return 0 if not doc["errors"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
