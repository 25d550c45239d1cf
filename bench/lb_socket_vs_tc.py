"""Socket-level load balancing against netcc's tc-level DNAT, measured (issue 7).

One lab cluster: one node, a client pod and three backend pods on it (each pod joined to the
node's namespace by a veth pair), one ClusterIP service over the backends (port 80 -> echo
servers on 8080, port 81 -> bulk sinks on 9000). No policies. The modes, all from the client
pod's namespace:

- direct: the client connects straight to the first backend's IP: no LB.
- socket-LB: `bench/lb_socket.bpf.c` (cgroup/connect4, sendmsg4, recvmsg4) attached to a
  cgroup v2 made here; the client process is moved into it and connects to the VIP; connect()
  is rewritten to a backend before the route lookup, so no packet carries the VIP.
- tc DNAT: netcc's datapath (the pod veth's tc programs translate the VIP per packet, reverse
  NAT on replies); the client, in a cgroup without programs, connects to the VIP.

Two phases, each its own `netcc lab up`: without netcc programs (`--no-load`: direct and
socket-LB with no tc program anywhere) and with netcc loaded (all three modes; socket-LB then
still passes netcc's policy programs, as it would in a deployment, but never the service path).

Per mode: connections/s (connect, 1-byte echo, close; `--concurrency` in flight, Python
selectors client from services_vs_iptables.py, backends are the lab's echo servers in a second
process) and the client's CPU µs per connection; then one bulk connection for `--bulk-seconds`
(MB/s and client CPU µs per MiB: the established, per-packet side; veth segments are GSO-sized,
so this shows per-packet costs per ~64 KiB, see bench/lb_cost.py for per-packet ns). Rounds
interleave the modes; median (best). Before measuring, socket-LB is checked: TCP connections to
the VIP spread over the backends, and a UDP sendto(VIP) is answered as coming from the VIP.

Run as root under the lab lock: `flock /tmp/netcc-lab.lock python3 bench/lb_socket_vs_tc.py`.
Everything made (labs, the cgroups, the programs: none is pinned) goes again, also on failure.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import multiprocessing
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import BENCH, header, median, table
from services_vs_iptables import connect_echo_close

VIP, PORT, TARGET_PORT = "10.96.0.10", 80, 8080
BULK_PORT, BULK_TARGET = 81, 9000
CLIENT = ("client", "10.244.1.20")
BACKENDS = (("be-1", "10.244.1.10"), ("be-2", "10.244.1.11"), ("be-3", "10.244.1.12"))
BPF_CGROUP_INET4_CONNECT, BPF_CGROUP_UDP4_SENDMSG, BPF_CGROUP_UDP4_RECVMSG = 10, 14, 19
PROGRAMS = (
    ("lbs_connect4", BPF_CGROUP_INET4_CONNECT),
    ("lbs_sendmsg4", BPF_CGROUP_UDP4_SENDMSG),
    ("lbs_recvmsg4", BPF_CGROUP_UDP4_RECVMSG),
)
CHUNK = 64 * 1024
LBS_MAX_BACKENDS = 8  # as in lb_socket.bpf.c


def spec_text() -> str:
    lines = [
        "apiVersion: netcc.io/v1alpha1",
        "kind: ClusterNetwork",
        "metadata: {name: lbsock}",
        "spec:",
        "  podCIDR: 10.244.0.0/16",
        "  serviceCIDR: 10.96.0.0/16",
        "  nodes: [{name: node-1, address: 192.168.79.11, podCIDR: 10.244.1.0/24}]",
        "  namespaces: [{name: bench}]",
        "  workloads:",
        f"    - {{name: {CLIENT[0]}, namespace: bench, node: node-1, labels: {{app: client}},"
        f" ips: [{CLIENT[1]}]}}",
    ]
    for name, ip in BACKENDS:
        lines.append(
            f"    - {{name: {name}, namespace: bench, node: node-1, labels: {{app: be}},"
            f" ips: [{ip}], ports: [{{name: echo, port: {TARGET_PORT}}},"
            f" {{name: bulk, port: {BULK_TARGET}}}]}}"
        )
    lines += [
        "  services:",
        f"    - {{name: svc, namespace: bench, type: ClusterIP, clusterIP: {VIP},"
        " selector: {app: be}, ports: ["
        f"{{name: echo, port: {PORT}, targetPort: echo}},"
        f" {{name: bulk, port: {BULK_PORT}, targetPort: bulk}}]}}",
    ]
    return "\n".join(lines) + "\n"


# --- the socket-LB prototype: build, load, attach to a cgroup v2 --------------------------------


def cgroup2_root() -> Path:
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == "cgroup2":
            return Path(fields[1])
    raise SystemExit("no cgroup2 mount in /proc/mounts")


def _libbpf() -> ctypes.CDLL:
    """A private libbpf handle (its prototypes do not touch loader/libbpf.py's)."""
    lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
    lib.bpf_prog_attach.argtypes = [ctypes.c_int] * 3 + [ctypes.c_uint]
    lib.bpf_prog_detach2.argtypes = [ctypes.c_int] * 3
    return lib


class SocketLB:
    """The prototype loaded (fds only, nothing pinned) and attached to a new cgroup, plus a
    second cgroup without programs, so every client runs in a cgroup of its own kind."""

    def __init__(self, tmp: Path, root: Path) -> None:
        self.stack = ExitStack()
        self.lb_cgroup = root / f"netcc-lbsock-{os.getpid()}"
        self.plain_cgroup = root / f"netcc-lbsock-plain-{os.getpid()}"
        self.attached: list[tuple[int, int]] = []
        try:
            self._setup(tmp)
        except BaseException:
            self.close()
            raise

    def _setup(self, tmp: Path) -> None:
        from netcc.loader.libbpf import BpfObject, map_update

        obj_path = tmp / "lb_socket.o"
        cmd = ["clang", "-target", "bpf", "-g", "-O2", "-mcpu=v3", "-Wall", "-Werror"]
        cmd += ["-I/usr/include/x86_64-linux-gnu", "-c", str(BENCH / "lb_socket.bpf.c")]
        subprocess.run([*cmd, "-o", str(obj_path)], check=True)
        obj = self.stack.enter_context(BpfObject.open(obj_path))
        obj.load()
        services, reverse = obj.map_fd("lbs_services"), obj.map_fd("lbs_reverse")
        backends = b"".join(socket.inet_aton(ip) for _, ip in BACKENDS)
        backends += bytes(4 * (LBS_MAX_BACKENDS - len(BACKENDS)))
        for port, target in ((PORT, TARGET_PORT), (BULK_PORT, BULK_TARGET)):
            value = struct.pack("=II", socket.htons(target), len(BACKENDS)) + backends
            map_update(services, _addr(VIP, port), value)
            for _, ip in BACKENDS:
                map_update(reverse, _addr(ip, target), _addr(VIP, port))
        for cg in (self.lb_cgroup, self.plain_cgroup):
            cg.mkdir()
            self.stack.callback(_rmdir, cg)
        fd = os.open(self.lb_cgroup, os.O_RDONLY | os.O_DIRECTORY)
        self.stack.callback(os.close, fd)
        lib = _libbpf()
        for name, kind in PROGRAMS:
            prog = obj.prog_fd(name)
            if lib.bpf_prog_attach(prog, fd, kind, 0) != 0:
                raise OSError(ctypes.get_errno(), f"attaching {name} to {self.lb_cgroup}")
            self.stack.callback(lib.bpf_prog_detach2, prog, fd, kind)

    def close(self) -> None:
        self.stack.close()


def _addr(ip: str, port: int) -> bytes:
    """struct lbs_addr: the address and the port as bpf_sock_addr holds them (network order)."""
    return socket.inet_aton(ip) + struct.pack("=I", socket.htons(port))


def _rmdir(cg: Path) -> None:
    """Remove a cgroup; its members (client children) have exited, but wait for the kernel."""
    for _ in range(50):
        try:
            cg.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)
    print(f"warning: could not remove cgroup {cg}", file=sys.stderr)


# --- backends: the lab's echo servers plus bulk sinks, in a child process -----------------------


def _serve(ready, stop) -> None:
    from netcc.lab import netns as lab_netns
    from netcc.lab.services import Listener, Servers

    listeners = [
        Listener(f"netcc-pod-bench.{n}", ip, TARGET_PORT, p, n)
        for n, ip in BACKENDS
        for p in ("TCP", "UDP")
    ]
    sinks = []
    for name, ip in BACKENDS:
        with lab_netns.entered(f"netcc-pod-bench.{name}"):
            s = socket.create_server((ip, BULK_TARGET), reuse_port=True)
        sinks.append(s)
        threading.Thread(target=_sink, args=(s,), daemon=True).start()
    with Servers(listeners, echo=True):
        ready.set()
        stop.wait()
    for s in sinks:
        s.close()


def _sink(listener: socket.socket) -> None:
    """Read each connection to its end, then answer with the byte count (8 bytes)."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            total = 0
            while data := conn.recv(1 << 20):
                total += len(data)
            conn.sendall(struct.pack("!Q", total))


# --- clients: each run in a forked child placed in a cgroup ------------------------------------


def in_child(cgroup: Path, fn, *args):
    """Run fn(*args) in a forked child that first joins `cgroup`; its return value."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)

    def run() -> None:
        try:
            (cgroup / "cgroup.procs").write_text(str(os.getpid()))
            child.send(("ok", fn(*args)))
        except BaseException as e:  # reported to the parent
            child.send(("error", repr(e)))

    proc = ctx.Process(target=run, daemon=True)
    proc.start()
    try:
        if not parent.poll(120):
            raise RuntimeError(f"client child {fn.__name__} timed out")
        status, value = parent.recv()
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()
    if status != "ok":
        raise RuntimeError(f"client child {fn.__name__}: {value}")
    return value


def client_netns() -> str:
    return f"netcc-pod-bench.{CLIENT[0]}"


def connections(dst: str, count: int, concurrency: int) -> tuple[int, float, float]:
    """connect_echo_close from the client pod: (answered, seconds, client CPU seconds)."""
    return connect_echo_close(
        client_netns(), CLIENT[1], dst, _port_for(dst), count, concurrency, 60
    )


def _port_for(ip: str, bulk: bool = False) -> int:
    if ip == VIP:
        return BULK_PORT if bulk else PORT
    return BULK_TARGET if bulk else TARGET_PORT


def bulk(dst: str, seconds: float) -> tuple[int, float, float]:
    """One connection sending for `seconds`: (bytes the sink counted, wall s, client CPU s)."""
    from netcc.lab import netns as lab_netns

    payload = b"\0" * CHUNK
    with lab_netns.entered(client_netns()):
        s = socket.create_connection((dst, _port_for(dst, bulk=True)), timeout=10)
    with s:
        begin, cpu = time.perf_counter(), time.thread_time()
        while time.perf_counter() - begin < seconds:
            s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        (total,) = struct.unpack("!Q", s.recv(8, socket.MSG_WAITALL))
        return total, time.perf_counter() - begin, time.thread_time() - cpu


def check_socket_lb() -> tuple[Counter, str]:
    """From the LB cgroup: where 30 TCP connects to the VIP went, and a UDP exchange."""
    from netcc.lab import netns as lab_netns

    peers: Counter = Counter()
    with lab_netns.entered(client_netns()):
        for _ in range(30):
            with socket.create_connection((VIP, PORT), timeout=5) as s:
                peers[s.getpeername()[0]] += 1
                s.sendall(b"x")
                s.recv(1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(5)
            u.sendto(b"ping", (VIP, PORT))
            data, src = u.recvfrom(64)
    return peers, f"{data!r} from {src[0]}:{src[1]}"


# --- phases ---------------------------------------------------------------------------------------


def run_phase(spec: Path, out: Path | None, lb: SocketLB, modes: list[str], args) -> dict:
    from netcc.lab import core as lab
    from netcc.lab.services import tune_client

    lab.up(spec, artifacts=out, load=out is not None)
    ctx = multiprocessing.get_context("fork")
    ready, stop = ctx.Event(), ctx.Event()
    server = ctx.Process(target=_serve, args=(ready, stop), daemon=True)
    try:
        tune_client(client_netns())
        server.start()
        if not ready.wait(10):
            raise RuntimeError("the backend servers did not start")
        peers, udp = in_child(lb.lb_cgroup, check_socket_lb)
        if set(peers) != {ip for _, ip in BACKENDS} or "from " + f"{VIP}:{PORT}" not in udp:
            raise RuntimeError(f"socket-LB check failed: TCP peers {dict(peers)}, UDP {udp}")
        print(f"# socket-LB check: TCP {dict(sorted(peers.items()))}; UDP reply {udp}")
        targets = {
            "direct": (lb.plain_cgroup, BACKENDS[0][1]),
            "socket-LB": (lb.lb_cgroup, VIP),
            "tc DNAT": (lb.plain_cgroup, VIP),
        }
        for mode in modes:  # warm-up: ARP, conntrack, caches
            cg, dst = targets[mode]
            ok, _, _ = in_child(cg, connections, dst, 300, 8)
            if ok < 290:
                raise RuntimeError(f"{mode}: only {ok}/300 warm-up connections answered")
        got: dict[str, dict[str, list[float]]] = {m: {} for m in modes}
        for _ in range(args.rounds):
            for mode in modes:
                cg, dst = targets[mode]
                ok, seconds, cpu = in_child(
                    cg, connections, dst, args.connections, args.concurrency
                )
                r = got[mode]
                r.setdefault("rate", []).append(ok / seconds)
                r.setdefault("cpu_us", []).append(cpu / max(ok, 1) * 1e6)
                r.setdefault("failed", []).append(args.connections - ok)
        for _ in range(args.bulk_rounds):
            for mode in modes:
                cg, dst = targets[mode]
                total, seconds, cpu = in_child(cg, bulk, dst, args.bulk_seconds)
                got[mode].setdefault("mbps", []).append(total / seconds / 1e6)
                got[mode].setdefault("cpu_mib", []).append(cpu / (total / 2**20) * 1e6)
        return got
    finally:
        stop.set()
        if server.pid is not None:
            server.join(10)
            if server.is_alive():
                server.kill()
                server.join()
        lab.down()


def _row(phase: str, mode: str, r: dict) -> list[str]:
    return [
        phase,
        mode,
        f"{median(r['rate']):,.0f} ({max(r['rate']):,.0f})",
        f"{median(r['cpu_us']):.0f}",
        f"{sum(r['failed']):.0f}",
        f"{median(r['mbps']):,.0f} ({max(r['mbps']):,.0f})",
        f"{median(r['cpu_mib']):.0f}",
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connections", type=int, default=3000, help="per round and mode")
    ap.add_argument("--concurrency", type=int, default=16, help="connections in flight")
    ap.add_argument("--rounds", type=int, default=7, help="rounds (median, best)")
    ap.add_argument("--bulk-seconds", type=float, default=1.0)
    ap.add_argument("--bulk-rounds", type=int, default=3)
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root: network namespaces, BPF, cgroups", file=sys.stderr)
        return 2
    from netcc.pipeline import compile_spec
    from netcc.write.tree import write_tree

    header("Socket-level LB (cgroup connect4) vs netcc's tc DNAT vs no LB")
    rows = []
    with tempfile.TemporaryDirectory(prefix="netcc-lbsock-") as tmp:
        spec = Path(tmp) / "lbsock.yaml"
        spec.write_text(spec_text())
        out = Path(tmp) / "out"
        write_tree(compile_spec(spec.read_bytes(), str(spec)), out)
        lb = SocketLB(Path(tmp), cgroup2_root())
        try:
            phases = (
                ("no tc programs", None, ["direct", "socket-LB"]),
                ("netcc loaded", out, ["direct", "socket-LB", "tc DNAT"]),
            )
            for phase, artifacts, modes in phases:
                got = run_phase(spec, artifacts, lb, modes, args)
                print(f"# {phase}: {json.dumps(got)}", file=sys.stderr)
                rows += [_row(phase, m, got[m]) for m in modes]
        finally:
            lb.close()
    print()
    print(
        table(
            [
                "phase",
                "mode",
                "conn/s (best)",
                "client CPU µs/conn",
                "failed",
                "bulk MB/s (best)",
                "client CPU µs/MiB",
            ],
            rows,
        )
    )
    print(
        f"\n# {args.connections} connections per round and mode, {args.concurrency} in flight,"
        f" median (best) of {args.rounds} rounds, modes interleaved; bulk: one connection,"
        f" {args.bulk_seconds:g} s of 64 KiB sends, median (best) of {args.bulk_rounds}; client"
        " CPU: the client thread's user+system time (it includes the softirq work of its"
        " packets); 2 cores shared with other jobs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
