"""Connection setup rate through a ClusterIP: netcc's datapath against kube-proxy's iptables.

For each N in --services (10, 1,000, 10,000), one generated spec: two nodes, a client pod on
node-1, three backends (one on node-1, two on node-2) and N ClusterIP services that all select
them. The client connects to the LAST service's VIP (every service rule before it is walked by
iptables: the worst case; an average service walks half) and per connection does connect, a
1-byte echo, close. Many connections, `--concurrency` in flight; the backends are netcc's lab
servers in echo mode, in a second process.

- netcc: the lab brought up with the spec compiled, the datapath loaded on every node.
- iptables: the same lab without netcc programs (`--no-load`) and, in every node's namespace,
  the nat rules kube-proxy's iptables mode writes for these services (KUBE-SERVICES ->
  KUBE-SVC-* with `-m statistic --mode random --probability` -> KUBE-SEP-* DNAT, KUBE-MARK-MASQ
  for sources outside the pod CIDR and for hairpin, KUBE-POSTROUTING masquerade), loaded with
  Debian's `iptables-restore` (`--iptables nft` is Debian's default `iptables`, or `legacy`).

Both run in one invocation and print side by side, with each setup's time (compile and lab up,
or rules loaded). Needs root, and the lab lock when other labs may run:
`flock /tmp/netcc-lab.lock python3 bench/services_vs_iptables.py`.
"""

from __future__ import annotations

import argparse
import base64
import errno
import hashlib
import json
import multiprocessing
import os
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import header, median, table

POD_CIDR = "10.244.0.0/16"
CLIENT = "bench/client"
BACKENDS = (("be-1", 1, "10.244.1.10"), ("be-2", 2, "10.244.2.10"), ("be-3", 2, "10.244.2.11"))
TARGET_PORT = 8080
SERVICE_PORT = 80


def vip(i: int) -> str:
    """The ClusterIP of service i (0-based): 10.96.0.1 onwards, inside 10.96.0.0/16."""
    n = i + 1
    return f"10.96.{n // 250}.{n % 250 + 1}"


def spec_text(services: int) -> str:
    """The benchmark cluster with `services` ClusterIP services over the same backends."""
    lines = [
        "apiVersion: netcc.io/v1alpha1",
        "kind: ClusterNetwork",
        "metadata: {name: svcbench}",
        "spec:",
        f"  podCIDR: {POD_CIDR}",
        "  serviceCIDR: 10.96.0.0/16",
        "  nodes:",
        "    - {name: node-1, address: 192.168.79.11, podCIDR: 10.244.1.0/24}",
        "    - {name: node-2, address: 192.168.79.12, podCIDR: 10.244.2.0/24}",
        "  namespaces: [{name: bench}]",
        "  workloads:",
        "    - {name: client, namespace: bench, node: node-1, labels: {app: client},"
        " ips: [10.244.1.20]}",
    ]
    for name, node, ip in BACKENDS:
        lines.append(
            f"    - {{name: {name}, namespace: bench, node: node-{node}, labels: {{app: be}},"
            f" ips: [{ip}], ports: [{{name: http, port: {TARGET_PORT}}}]}}"
        )
    lines.append("  services:")
    for i in range(services):
        lines.append(
            f"    - {{name: svc-{i:05d}, namespace: bench, type: ClusterIP, clusterIP: {vip(i)},"
            f" selector: {{app: be}}, ports: [{{port: {SERVICE_PORT}, targetPort: http}}]}}"
        )
    return "\n".join(lines) + "\n"


# --- kube-proxy's iptables rules ---------------------------------------------------------------


def _chain(prefix: str, text: str) -> str:
    """kube-proxy's chain names: a prefix and 16 characters of base32(sha256(text))."""
    digest = base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()
    return f"{prefix}{digest[:16]}"


@dataclass(frozen=True)
class KubeService:
    """One TCP ClusterIP service port as kube-proxy's iptables mode writes it."""

    name: str  # namespace/name
    vip: str
    port: int
    endpoints: tuple[tuple[str, int], ...]  # the ready endpoints (ip, port), in order

    @property
    def chain(self) -> str:
        return _chain("KUBE-SVC-", f"{self.name}:tcp")

    def sep(self, ip: str) -> str:
        return _chain("KUBE-SEP-", f"{self.name}:tcp:{ip}")


NAT_CHAINS = ("KUBE-SERVICES", "KUBE-POSTROUTING", "KUBE-MARK-MASQ", "KUBE-NODEPORTS")
NAT_RULES = (
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
)
OWN_RULES = (  # the rules of kube-proxy's own chains, written on every sync
    "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000",
    "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
    "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0",
    '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT"'
    " -j MASQUERADE --random-fully",
)
NODEPORTS_RULE = (
    '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be'
    ' the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS'
)


def service_rule(s: KubeService) -> str:
    """The service's rule in KUBE-SERVICES (its cluster IP and port to its KUBE-SVC chain)."""
    return (
        f"-A KUBE-SERVICES -d {s.vip}/32 -p tcp -m comment --comment"
        f' "{s.name} cluster IP" -m tcp --dport {s.port} -j {s.chain}'
    )


def service_chains(
    s: KubeService, pod_cidr: str = POD_CIDR, comments: bool = True
) -> tuple[list[str], list[str]]:
    """The service's KUBE-SVC chain and its KUBE-SEP chains: (chain lines, rules).
    `comments=False` is kube-proxy's large-cluster mode (more than 1,000 endpoints), which
    leaves out the comments of the per-endpoint rules."""
    chains = [f":{s.chain} - [0:0]"]
    rules = [
        f"-A {s.chain} ! -s {pod_cidr} -d {s.vip}/32 -p tcp -m comment --comment"
        f' "{s.name} cluster IP" -m tcp --dport {s.port} -j KUBE-MARK-MASQ'
    ]
    n = len(s.endpoints)
    for k, (ip, port) in enumerate(s.endpoints):
        sep = s.sep(ip)
        chains.append(f":{sep} - [0:0]")
        left = n - k
        chance = f" -m statistic --mode random --probability {1 / left:.11f}" if left > 1 else ""
        said = f' -m comment --comment "{s.name} -> {ip}:{port}"' if comments else ""
        rules.append(f"-A {s.chain}{said}{chance} -j {sep}")
        rules.append(f"-A {sep} -s {ip}/32 -j KUBE-MARK-MASQ")
        rules.append(f"-A {sep} -p tcp -m tcp -j DNAT --to-destination {ip}:{port}")
    return chains, rules


def kube_proxy_nat(
    services: Sequence[KubeService], pod_cidr: str = POD_CIDR, comments: bool = True
) -> str:
    """The whole nat table kube-proxy (iptables mode) writes for `services` (what a full
    sync gives `iptables-restore`)."""
    chains = [f":{c} - [0:0]" for c in NAT_CHAINS]
    rules = [*NAT_RULES, *OWN_RULES]
    per_service = []
    for s in services:
        c, r = service_chains(s, pod_cidr, comments)
        chains += c
        per_service += r
        rules.append(service_rule(s))
    rules.append(NODEPORTS_RULE)
    return "\n".join(["*nat", *chains, *rules, *per_service, "COMMIT", ""])


def kube_proxy_partial(
    services: Sequence[KubeService],
    changed: Sequence[KubeService],
    deleted: Sequence[str] = (),
    pod_cidr: str = POD_CIDR,
    comments: bool = True,
) -> str:
    """What kube-proxy >= 1.28 (MinimizeIPTablesRestore) gives `iptables-restore --noflush`
    when the endpoints of `changed` changed: its own chains and KUBE-SERVICES whole (every
    service's rule), the KUBE-SVC and KUBE-SEP chains of the changed services only, and a
    flush and `-X` of each chain in `deleted`."""
    chains = [f":{c} - [0:0]" for c in NAT_CHAINS]
    rules = list(OWN_RULES)
    rules += [service_rule(s) for s in services]
    rules.append(NODEPORTS_RULE)
    for s in changed:
        c, r = service_chains(s, pod_cidr, comments)
        chains += c
        rules += r
    chains += [f":{c} - [0:0]" for c in deleted]
    rules += [f"-X {c}" for c in deleted]
    return "\n".join(["*nat", *chains, *rules, "COMMIT", ""])


def kube_proxy_rules(services: int) -> str:
    """The nat table kube-proxy (iptables mode) writes for the benchmark's services."""
    endpoints = tuple((ip, TARGET_PORT) for _be, _node, ip in BACKENDS)
    names = (f"bench/svc-{i:05d}" for i in range(services))
    return kube_proxy_nat(
        [KubeService(name, vip(i), SERVICE_PORT, endpoints) for i, name in enumerate(names)]
    )


def iptables_restore(netns: str, rules: str, backend: str) -> None:
    tool = f"iptables-{backend}-restore"
    subprocess.run(["nsenter", f"--net=/run/netns/{netns}", tool], input=rules.encode(), check=True)


def nat_rule_count(netns: str, backend: str) -> int:
    out = subprocess.run(
        ["nsenter", f"--net=/run/netns/{netns}", f"iptables-{backend}", "-t", "nat", "-S"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sum(1 for line in out.splitlines() if line.startswith("-A "))


# --- traffic -------------------------------------------------------------------------------------


def _serve(listeners: list, ready, stop) -> None:
    """The backends, in a child process: echo servers until `stop` is set."""
    from netcc.lab.services import Servers

    with Servers(listeners, echo=True):
        ready.set()
        stop.wait()


def connect_echo_close(
    netns: str, src_ip: str, dst_ip: str, port: int, count: int, concurrency: int, timeout: float
) -> tuple[int, float, float]:
    """`count` connections (connect, 1 byte each way, close); (answered, seconds, CPU seconds
    of this thread, which include the softirq work its packets cause on the way out)."""
    from netcc.lab import netns as lab_netns

    ok = started = live = 0
    with selectors.DefaultSelector() as sel, lab_netns.entered(netns):
        begin, cpu = time.perf_counter(), time.thread_time()
        deadline = time.monotonic() + timeout
        while started < count or live:
            while started < count and live < concurrency:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                s.bind((src_ip, 0))
                started += 1
                if s.connect_ex((dst_ip, port)) not in (0, errno.EINPROGRESS):
                    s.close()
                    continue
                sel.register(s, selectors.EVENT_WRITE, "connecting")
                live += 1
            if time.monotonic() > deadline:
                break
            for key, _ in sel.select(0.5):
                s = key.fileobj
                if key.data == "connecting":
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                        try:
                            s.send(b"x")
                            sel.modify(s, selectors.EVENT_READ, "reading")
                            continue
                        except OSError:
                            pass
                else:
                    with suppress(OSError):
                        ok += s.recv(1) == b"x"
                sel.unregister(s)
                s.close()
                live -= 1
        seconds, cpu = time.perf_counter() - begin, time.thread_time() - cpu
        for key in list(sel.get_map().values()):
            key.fileobj.close()
    return ok, seconds, cpu


def measure(target: str, count: int, concurrency: int, rounds: int) -> dict:
    """Connections per second from the client to the last service, `rounds` times."""
    from netcc.lab.core import LabState
    from netcc.lab.plan import plan_from_doc
    from netcc.lab.services import Listener, tune_client

    plan = plan_from_doc(LabState.load().doc["plan"])
    pods = {p.key: p for p in plan.pods}
    listeners = [
        Listener(pods[f"bench/{name}"].netns, ip, TARGET_PORT, "TCP", name)
        for name, _node, ip in BACKENDS
    ]
    client = pods[CLIENT]
    tune_client(client.netns)
    ctx = multiprocessing.get_context("fork")
    ready, stop = ctx.Event(), ctx.Event()
    server = ctx.Process(target=_serve, args=(listeners, ready, stop), daemon=True)
    server.start()
    try:
        if not ready.wait(10):
            raise RuntimeError("the backend servers did not start")
        src = str(client.ips[0])
        warm, _, _ = connect_echo_close(client.netns, src, target, SERVICE_PORT, 200, 8, 10)
        if warm < 190:
            raise RuntimeError(f"only {warm}/200 warm-up connections through {target} answered")
        rates, cpus, failed = [], [], 0
        for _ in range(rounds):
            ok, seconds, cpu = connect_echo_close(
                client.netns, src, target, SERVICE_PORT, count, concurrency, 60
            )
            rates.append(ok / seconds)
            cpus.append(cpu / max(ok, 1) * 1e6)
            failed += count - ok
        return {
            "rate": median(rates),
            "best": max(rates),
            "cpu_us": median(cpus),
            "rates": rates,
            "failed": failed,
        }
    finally:
        stop.set()
        server.join(10)


def run_netcc(spec: Path, n: int, args: argparse.Namespace) -> dict:
    from netcc.lab import core as lab
    from netcc.pipeline import compile_spec
    from netcc.write.tree import write_tree

    out = spec.parent / f"out-{n}"
    os.environ["NETCC_CACHE_DIR"] = str(spec.parent / f"cache-{n}")  # a cold compile
    begin = time.perf_counter()
    write_tree(compile_spec(spec.read_bytes(), str(spec)), out)
    compiled = time.perf_counter() - begin
    begin = time.perf_counter()
    lab.up(spec, artifacts=out)
    try:
        upped = time.perf_counter() - begin
        result = measure(vip(n - 1), args.connections, args.concurrency, args.rounds)
    finally:
        lab.down()
    return {**result, "setup": f"compile {compiled:.1f} s, lab up {upped:.1f} s"}


def run_iptables(spec: Path, n: int, args: argparse.Namespace) -> dict:
    from netcc.lab import core as lab
    from netcc.lab.core import LabState
    from netcc.lab.plan import plan_from_doc

    rules = kube_proxy_rules(n)
    report = lab.up(spec, load=False)
    try:
        plan = plan_from_doc(LabState.load().doc["plan"])
        begin = time.perf_counter()
        for node in plan.nodes:
            iptables_restore(node.netns, rules, args.iptables)
        loaded = time.perf_counter() - begin
        count = nat_rule_count(plan.nodes[0].netns, args.iptables)
        result = measure(vip(n - 1), args.connections, args.concurrency, args.rounds)
    finally:
        lab.down()
    setup = f"lab up {report.timings['total']:.1f} s, {count:,} nat rules/node in {loaded:.1f} s"
    return {**result, "setup": setup}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, nargs="+", default=[10, 1000, 10000])
    ap.add_argument("--connections", type=int, default=3000, help="per round")
    ap.add_argument("--concurrency", type=int, default=16, help="connections in flight")
    ap.add_argument("--rounds", type=int, default=7, help="rounds per setup (median, best)")
    ap.add_argument("--iptables", choices=("nft", "legacy"), default="nft")
    ap.add_argument("--only", choices=("netcc", "iptables"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root: network namespaces, BPF, iptables", file=sys.stderr)
        return 2
    if args.only != "netcc" and not shutil.which(f"iptables-{args.iptables}-restore"):
        print(f"iptables-{args.iptables}-restore not found: apt-get install iptables")
        return 2
    version = subprocess.run(
        [f"iptables-{args.iptables}", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    header("Connection setup rate through a ClusterIP: netcc vs kube-proxy iptables")
    print(f"# peer: {version}; client and servers are Python (selectors), 2 cores shared\n")
    rows, setups, doc = [], [], {}
    with tempfile.TemporaryDirectory(prefix="netcc-svcbench-") as tmp:
        for n in args.services:
            spec = Path(tmp) / f"svc-{n}.yaml"
            spec.write_text(spec_text(n))
            got = {}
            if args.only != "iptables":
                got["netcc"] = run_netcc(spec, n, args)
            if args.only != "netcc":
                got["iptables"] = run_iptables(spec, n, args)
            doc[n] = got
            net, ipt = got.get("netcc"), got.get("iptables")
            rows.append(
                [
                    f"{n:,}",
                    _rate(net),
                    _rate(ipt),
                    f"{net['rate'] / ipt['rate']:.2f}x" if net and ipt else "-",
                    f"{net['cpu_us']:.0f}" if net else "-",
                    f"{ipt['cpu_us']:.0f}" if ipt else "-",
                ]
            )
            setups.append([f"{n:,}", net["setup"] if net else "-", ipt["setup"] if ipt else "-"])
            print(f"# N={n}: {json.dumps(got)}", file=sys.stderr)
    if args.json:
        print(json.dumps(doc, indent=2))
    ipt_name = f"iptables-{args.iptables}"
    print(
        table(
            [
                "services",
                "netcc conn/s (best)",
                f"{ipt_name} conn/s (best)",
                "netcc / iptables",
                "netcc client CPU µs/conn",
                f"{ipt_name} client CPU µs/conn",
            ],
            rows,
        )
    )
    print()
    print(table(["services", "netcc setup", f"{ipt_name} setup"], setups))
    print(
        f"\n# {args.connections} connections per round, {args.concurrency} in flight; median"
        f" (best) of {args.rounds} rounds; client CPU: the client thread's user+system time per"
        " connection (median of the rounds; it includes the softirq work of its packets, so host"
        " contention moves it far less than the rates); target: the last of N"
        " services (iptables walks all N rules)"
    )
    return 0


def _rate(result: dict | None) -> str:
    return f"{result['rate']:,.0f} ({result['best']:,.0f})" if result else "-"


if __name__ == "__main__":
    sys.exit(main())
