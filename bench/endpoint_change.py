"""One endpoint change among N services of 10 endpoints: netcc vs kube-proxy's rules.

For each N in --services (default 10,000 and 1,000), one generated spec: three nodes, N/100
workload classes (perNode 334, a /16 podCIDR per node) and N ClusterIP services, 100 per
class, each selecting its class by label, targetPort the class's named port `http` (8080).
Every service has 10 endpoints of its own, spread over the three nodes inside its class's
blocks: 100,000 distinct endpoints at N = 10,000. A change is one endpoint of one service
becoming not ready, or ready again: --changes services (spread over the N, a different
endpoint each) each get both, so 2 x --changes changes are timed per system.

- netcc: OUT compiled in-process (kept in $NETCC_BENCH_DIR between runs). A `Reconciler`
  for node-1 (the daemon's, `loader/daemon/lbservices.py`) is fed one EndpointSlice per
  service; OUT's datapath is applied in a network namespace of this script's own
  (`nccbench-*`, pins on a bpffs mounted on a temporary directory) with the reconciler's
  entries as the live-backend overlay, as the daemon's full apply does. Per change:
  compute = `Reconciler.update(service, slices)` (pure), write = `LbWriter.write(digest,
  change)` (the state lock, the pinned LB maps opened, entries put and deleted); CPU is this
  process's (CLOCK_PROCESS_CPUTIME_ID). Each change is checked in the kernel's map.
- iptables-nft and iptables-legacy: in a namespace of their own, the nat table kube-proxy's
  iptables mode writes for the same services and endpoints (large-cluster mode, more than
  1,000 endpoints: no per-endpoint comments), loaded with `iptables-restore`. Per change, what
  kube-proxy >= 1.28 (MinimizeIPTablesRestore) gives `iptables-restore --noflush --counters`:
  its own chains and KUBE-SERVICES whole (written on every sync), the changed service's
  KUBE-SVC chain (new probabilities) and its KUBE-SEP chains, and a flush and `-X` of the
  KUBE-SEP chain that went. Also timed: the changed chains alone, without KUBE-SERVICES (a
  lower bound no kube-proxy writes, on a tenth of the services), and a full resync (the whole
  table, --full-resyncs times, each stopped after --resync-timeout).
- nftables: in a namespace of its own, the `ip kube-proxy` table kube-proxy's nftables mode
  writes (a `service-ips` verdict map from ip . proto . port to `goto service-...`, a chain
  per service with `numgen random mod N vmap {...}`, a chain per endpoint with `dnat to`),
  loaded with `nft -f` (1,000 services per transaction). Per change, one `nft -f` transaction:
  the service chain and each of its endpoint chains added, flushed and rewritten (kube-proxy's
  ensureChain), and the endpoint chain that went flushed and deleted. Also a full resync: one
  transaction with every map flushed and refilled and every chain flushed and rewritten.

kube-proxy itself does not run here (no package): what runs is what it executes, with the
input it gives it. Its own work (computing the rules, in Go) is not counted; netcc's compute
is. The iptables and nft figures are the child's wall time and CPU (wait4), and the system
(kernel) part of that CPU.

Run as root: `python3 bench/endpoint_change.py [--services 10000 1000] [--changes 50]
[--only SYSTEM]`; every figure as JSON with `--json FILE`, and into
bench/results/endpoint_change.json with `--record`. About 12 minutes with the defaults, most of
it kube-proxy's modes at 10,000 services (1 to 2 s per change).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import REPO, compiled, header, table
from services_vs_iptables import (
    KubeService,
    kube_proxy_nat,
    kube_proxy_partial,
    service_chains,
)

NODES = 3
ENDPOINTS = 10
PER_CLASS = 100  # services per class
TARGET_PORT = 8080
SERVICE_PORT = 80
POD_CIDR = "10.128.0.0/12"
NAMESPACE = "bench"
NODE = "node-1"
SYSTEMS = ("netcc", "iptables-nft", "iptables-legacy", "nft")
RESULTS = REPO / "bench" / "results" / "endpoint_change.json"
NFT_LOAD_CHUNK = 1000  # services per transaction of the initial nft load
BOUND_SHARE = 10  # the lower bound of iptables is timed on a tenth of the services


def vip(i: int) -> str:
    n = i + 1
    return f"10.96.{n // 250}.{n % 250 + 1}"


def service_name(i: int) -> str:
    return f"svc-{i:05d}"


def spec_doc(services: int) -> dict:
    """The cluster: 3 nodes, a class per 100 services, N ClusterIP services over them."""
    classes = max(1, math.ceil(services / PER_CLASS))
    per_node = math.ceil(PER_CLASS * ENDPOINTS / NODES)
    return {
        "apiVersion": "netcc.io/v1alpha1",
        "kind": "ClusterNetwork",
        "metadata": {"name": f"epbench-{services}"},
        "spec": {
            "podCIDR": POD_CIDR,
            "serviceCIDR": "10.96.0.0/16",
            "nodes": [
                {
                    "name": f"node-{n + 1}",
                    "address": f"192.168.80.{11 + n}",
                    "podCIDR": f"10.{128 + n}.0.0/16",
                }
                for n in range(NODES)
            ],
            "namespaces": [{"name": NAMESPACE}],
            "workloads": [
                {
                    "name": f"c{c:03d}",
                    "namespace": NAMESPACE,
                    "labels": {"app": f"c{c:03d}"},
                    "perNode": per_node,
                    "ports": [{"name": "http", "port": TARGET_PORT}],
                }
                for c in range(classes)
            ],
            "services": [
                {
                    "name": service_name(i),
                    "namespace": NAMESPACE,
                    "type": "ClusterIP",
                    "clusterIP": vip(i),
                    "selector": {"app": f"c{i // PER_CLASS:03d}"},
                    "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http"}],
                }
                for i in range(services)
            ],
        },
    }


def endpoints_of(out: Path, services: int) -> list[tuple[str, ...]]:
    """Service i's endpoint addresses: inside its class's block, spread over the nodes, none
    shared with another service."""
    from netcc.contract import services as dyn

    doc = dyn.load((out / dyn.SERVICES_FILE).read_bytes())
    ports = {p.service: p for p in doc.ports}
    nodes = sorted(doc.nodes, key=lambda n: n.index)
    result = []
    for i in range(services):
        klass = ports[f"{NAMESPACE}/{service_name(i)}"].classes[0]
        ips = []
        for k in range(ENDPOINTS):
            slot = (i % PER_CLASS) * ENDPOINTS + k
            node = nodes[slot % NODES]
            offset = klass.offset + slot // NODES
            assert offset < klass.offset + klass.size
            ips.append(str(node.pod_cidr.network_address + offset))
        result.append(tuple(ips))
    return result


def picks(services: int, changes: int) -> list[tuple[int, int]]:
    """(service, endpoint) of each flipped endpoint: services spread over all N."""
    count = min(changes, services)
    return [(m * services // count, m % ENDPOINTS) for m in range(count)]


def quantile(xs: Sequence[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


@dataclass
class Samples:
    """Timings of one kind: wall, CPU and (children only) system seconds per sample."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    sys: list[float] = field(default_factory=list)

    def add(self, wall: float, cpu: float, sys: float | None = None) -> None:
        self.wall.append(wall)
        self.cpu.append(cpu)
        if sys is not None:
            self.sys.append(sys)

    def summary(self) -> dict | None:
        """ms: p50, p99, mean and max of the wall times; CPU p50 and mean; system mean."""
        if not self.wall:
            return None
        w = self.wall
        out = {
            "n": len(w),
            "p50_ms": quantile(w, 0.5) * 1e3,
            "p99_ms": quantile(w, 0.99) * 1e3,
            "mean_ms": statistics.fmean(w) * 1e3,
            "max_ms": max(w) * 1e3,
            "cpu_p50_ms": quantile(self.cpu, 0.5) * 1e3,
            "cpu_mean_ms": statistics.fmean(self.cpu) * 1e3,
        }
        if self.sys:
            out["sys_mean_ms"] = statistics.fmean(self.sys) * 1e3
        return out


# --- namespaces ------------------------------------------------------------------------------


def sh(*cmd: str, data: bytes | None = None) -> None:
    proc = subprocess.run(cmd, input=data, capture_output=True, check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()[-2000:]
        raise RuntimeError(f"{' '.join(cmd[:4])} failed ({proc.returncode}): {err}")


@contextmanager
def netns(what: str) -> Iterator[str]:
    """A network namespace `nccbench-WHAT-TAG` (loopback up), deleted whatever happens."""
    name = f"nccbench-{what}-{uuid.uuid4().hex[:6]}"
    sh("ip", "netns", "add", name)
    try:
        sh("nsenter", f"--net=/run/netns/{name}", "ip", "link", "set", "lo", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def in_ns(ns: str, *cmd: str) -> list[str]:
    return ["nsenter", f"--net=/run/netns/{ns}", *cmd]


def timed_child(
    cmd: list[str], data: str, timeout: float | None = None
) -> tuple[float, float, float]:
    """(wall, CPU, of it system) seconds of one child fed `data` on stdin, from wait4
    (nsenter execs the program: its figures are the program's); raises when the child fails,
    or TimeoutExpired when it outlives `timeout` (it is killed)."""
    killed = threading.Event()
    with tempfile.TemporaryFile() as inp, tempfile.TemporaryFile() as err:
        inp.write(data.encode())
        inp.seek(0)
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=inp, stdout=subprocess.DEVNULL, stderr=err)

        def kill() -> None:
            killed.set()
            proc.kill()

        timer = threading.Timer(timeout, kill) if timeout else None
        if timer is not None:
            timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            if timer is not None:
                timer.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if killed.is_set():
            raise subprocess.TimeoutExpired(cmd, timeout or 0.0)
        if proc.returncode != 0:
            err.seek(0)
            said = err.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{cmd[2]} failed ({proc.returncode}): {said}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_stime


# --- netcc -----------------------------------------------------------------------------------


def _slice(i: int, ips: Sequence[str], down: int | None = None):
    from netcc.loader.kube.endpointslices import EndpointSlice, SliceEndpoint, SlicePort

    eps = tuple(SliceEndpoint(ip, k != down, k != down, False) for k, ip in enumerate(ips))
    name = service_name(i)
    return EndpointSlice(
        NAMESPACE,
        f"{name}-abcde",
        name,
        "IPv4",
        (SlicePort("http", TARGET_PORT, "TCP"),),
        eps,
    )


@contextmanager
def bpffs() -> Iterator[Path]:
    """A bpffs of its own on a temporary directory, unmounted (every pin with it) after."""
    from netcc.loader.bpffs import ensure_bpffs

    root = Path(tempfile.mkdtemp(prefix="nccbench-bpf-"))
    mounted = False
    try:
        mounted = ensure_bpffs(str(root))
        yield root
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(root)], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


def run_netcc(out: Path, eps: list[tuple[str, ...]], flips: list[tuple[int, int]]) -> dict:
    from netcc.contract import services as dyn
    from netcc.loader import detach as detach_mod
    from netcc.loader import state
    from netcc.loader.apply import apply
    from netcc.loader.artifacts import read_artifacts
    from netcc.loader.daemon.lbservices import MEMBERS_MAP, Reconciler
    from netcc.loader.daemon.lbwriter import LbWriter
    from netcc.loader.desired import ServiceOverlay
    from netcc.loader.maps import BpfMap
    from netcc.loader.netns import enter_netns

    services = dyn.load((out / dyn.SERVICES_FILE).read_bytes())
    art = read_artifacts(out, NODE)
    begin = time.perf_counter()
    rec = Reconciler(NODE, services, art.maps.get("netcc_lb_services", []))
    for i, ips in enumerate(eps):
        rec.update(f"{NAMESPACE}/{service_name(i)}", (_slice(i, ips),))
    fed = time.perf_counter() - begin
    counts = {m: 0 for m in ("netcc_lb_backends", MEMBERS_MAP)}
    for name, _ in rec.entries:
        if name in counts:
            counts[name] += 1
    compute, write, total = Samples(), Samples(), Samples()
    with tempfile.TemporaryDirectory(prefix="nccbench-state-") as sdir, bpffs() as pins:
        paths = state.paths_for(NODE, pins / NODE, Path(sdir) / NODE)
        with netns("netcc") as ns, enter_netns(ns):
            try:
                begin = time.perf_counter()
                apply(
                    out,
                    NODE,
                    pin_root=paths.pin_root,
                    state_dir=paths.state_dir,
                    services=lambda: ServiceOverlay(rec.rows, rec.overlay()),
                )
                applied = time.perf_counter() - begin
                writer = LbWriter(paths)
                _, layout = writer.fast.applied(art.digest)
                members = BpfMap.pinned(paths.maps / MEMBERS_MAP, layout)
                try:
                    kernel_members = len(members.keys())
                    for i, k in flips:
                        key = f"{NAMESPACE}/{service_name(i)}"
                        row = next(p for p in services.ports if p.service == key).cluster_row
                        probe = members.pack_key({"row": row, "ip": eps[i][k], "port": 8080})
                        for down in (k, None):
                            c0, w0 = time.process_time(), time.perf_counter()
                            change = rec.update(key, (_slice(i, eps[i], down),))
                            c1, w1 = time.process_time(), time.perf_counter()
                            writer.write(art.digest, change)
                            c2, w2 = time.process_time(), time.perf_counter()
                            if not change or (members.get(probe) is None) != (down is not None):
                                raise RuntimeError(f"{key}: the change did not reach the kernel")
                            compute.add(w1 - w0, c1 - c0)
                            write.add(w2 - w1, c2 - c1)
                            total.add(w2 - w0, c2 - c0)
                finally:
                    members.close()
            finally:
                detach_mod.detach(NODE, paths.pin_root, paths.state_dir)
    return {
        "compute": compute.summary(),
        "write": write.summary(),
        "total": total.summary(),
        "setup": {
            "reconciler_fed_s": fed,
            "apply_s": applied,
            "backends": counts["netcc_lb_backends"],
            "members": counts[MEMBERS_MAP],
            "kernel_members": kernel_members,
            "maglev_size": services.maglev_size,
        },
    }


def full_resyncs(
    cmd: list[str], full: str, count: int, timeout: float, into: Samples
) -> float | None:
    """`count` full resyncs into `into`; the timeout when one outlived it (none after it)."""
    for _ in range(count):
        try:
            into.add(*timed_child(cmd, full, timeout=timeout))
        except subprocess.TimeoutExpired:
            return timeout
    return None


# --- kube-proxy, iptables mode ---------------------------------------------------------------


def kube_services(eps: list[tuple[str, ...]]) -> list[KubeService]:
    return [
        KubeService(
            f"{NAMESPACE}/{service_name(i)}",
            vip(i),
            SERVICE_PORT,
            tuple((ip, TARGET_PORT) for ip in ips),
        )
        for i, ips in enumerate(eps)
    ]


def _without(s: KubeService, k: int) -> KubeService:
    return KubeService(s.name, s.vip, s.port, s.endpoints[:k] + s.endpoints[k + 1 :])


def run_iptables(
    backend: str,
    eps: list[tuple[str, ...]],
    flips: list[tuple[int, int]],
    resyncs: int,
    resync_timeout: float,
) -> dict:
    svcs = kube_services(eps)
    full = kube_proxy_nat(svcs, POD_CIDR, comments=False)
    restore = f"iptables-{backend}-restore"
    partial, bound, resync = Samples(), Samples(), Samples()
    with netns(f"ipt{backend[0]}") as ns:
        load, load_cpu, _ = timed_child(in_ns(ns, restore), full)
        rules, chains = nat_counts(ns, backend)
        cmd = in_ns(ns, restore, "--noflush", "--counters")
        for i, k in flips:
            s = svcs[i]
            gone = s.sep(s.endpoints[k][0])
            for down in (True, False):
                now = _without(s, k) if down else s
                current = [*svcs[:i], now, *svcs[i + 1 :]]
                text = kube_proxy_partial(current, [now], [gone] if down else [], POD_CIDR, False)
                partial_bytes = len(text.encode())
                partial.add(*timed_child(cmd, text))
        for i, k in flips[: max(1, len(flips) // BOUND_SHARE)]:  # a lower bound: fewer samples
            s = svcs[i]
            gone = s.sep(s.endpoints[k][0])
            for down in (True, False):
                text = chains_only(_without(s, k), gone) if down else chains_only(s, None)
                bound.add(*timed_child(cmd, text))
        if nat_counts(ns, backend) != (rules, chains):  # every endpoint is back
            raise RuntimeError(
                f"iptables-{backend}: the table is not what it was after the changes"
            )
        timed_out = full_resyncs(cmd, full, resyncs, resync_timeout, resync)
    return {
        "partial": partial.summary(),
        "chains_only": bound.summary(),
        "resync": resync.summary(),
        "resync_timed_out_s": timed_out,
        "setup": {
            "load_s": load,
            "load_cpu_s": load_cpu,
            "rules": rules,
            "chains": chains,
            "partial_bytes": partial_bytes,
            "full_bytes": len(full.encode()),
        },
    }


def nat_counts(ns: str, backend: str) -> tuple[int, int]:
    """(rules, chains) of the nat table in `ns`."""
    listed = subprocess.run(
        in_ns(ns, f"iptables-{backend}-save", "-t", "nat"),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    rules = sum(1 for line in listed if line.startswith("-A "))
    return rules, sum(1 for line in listed if line.startswith(":"))


def chains_only(s: KubeService, gone: str | None) -> str:
    """Only the changed service's KUBE-SVC and KUBE-SEP chains (and the `-X` of the one that
    went): less than kube-proxy writes, which also rewrites KUBE-SERVICES whole."""
    chains, rules = service_chains(s, POD_CIDR, comments=False)
    if gone is not None:
        chains.append(f":{gone} - [0:0]")
        rules.append(f"-X {gone}")
    return "\n".join(["*nat", *chains, *rules, "COMMIT", ""])


# --- kube-proxy, nftables mode ---------------------------------------------------------------

TABLE = "ip kube-proxy"


def _nft_hash(name: str) -> str:
    """kube-proxy's nftables chain names: 8 characters of base32(sha256(name)), '-', name."""
    digest = base64.b32encode(hashlib.sha256(name.encode()).digest()).decode()
    return f"{digest[:8]}-{name}"


def nft_service_chain(s: KubeService) -> str:
    return "service-" + _nft_hash(f"{s.name}/tcp/http")


def nft_endpoint_chain(s: KubeService, ip: str, port: int) -> str:
    return "endpoint-" + _nft_hash(f"{s.name}/tcp/http__{ip}/{port}")


def nft_base() -> list[str]:
    """The table, kube-proxy's own chains and maps (as its nftables mode sets them up)."""
    t = TABLE
    return [
        f'add table {t} {{ comment "rules for kube-proxy" ; }}',
        f"add chain {t} mark-for-masquerade",
        f"add chain {t} masquerading",
        f"add chain {t} services",
        f"add chain {t} nat-prerouting {{ type nat hook prerouting priority -100 ; }}",
        f"add chain {t} nat-output {{ type nat hook output priority -100 ; }}",
        f"add chain {t} nat-postrouting {{ type nat hook postrouting priority 100 ; }}",
        f"add map {t} service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ;"
        ' comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }',
        f"add map {t} service-nodeports {{ type inet_proto . inet_service : verdict ;"
        ' comment "NodePort traffic" ; }',
        f"flush chain {t} mark-for-masquerade",
        f"flush chain {t} masquerading",
        f"flush chain {t} services",
        f"flush chain {t} nat-prerouting",
        f"flush chain {t} nat-output",
        f"flush chain {t} nat-postrouting",
        f"add rule {t} mark-for-masquerade mark set mark or 0x4000",
        f"add rule {t} masquerading mark and 0x4000 == 0 return",
        f"add rule {t} masquerading mark set mark xor 0x4000",
        f"add rule {t} masquerading masquerade fully-random",
        f"add rule {t} services ip daddr . meta l4proto . th dport vmap @service-ips",
        f"add rule {t} services fib daddr type local ip daddr != 127.0.0.0/8"
        " meta l4proto . th dport vmap @service-nodeports",
        f"add rule {t} nat-prerouting jump services",
        f"add rule {t} nat-output jump services",
        f"add rule {t} nat-postrouting jump masquerading",
    ]


def nft_service(s: KubeService, element: bool = True) -> list[str]:
    """A service's chains (each added and flushed, as kube-proxy's ensureChain does), their
    rules and, with `element`, its `service-ips` element."""
    t, svc = TABLE, nft_service_chain(s)
    out = []
    names = [nft_endpoint_chain(s, ip, port) for ip, port in s.endpoints]
    for chain in [svc, *names]:
        out += [f"add chain {t} {chain}", f"flush chain {t} {chain}"]
    out.append(
        f"add rule {t} {svc} ip daddr {s.vip} tcp dport {s.port} ip saddr != {POD_CIDR}"
        " jump mark-for-masquerade"
    )
    vmap = ", ".join(f"{n} : goto {c}" for n, c in enumerate(names))
    out.append(f"add rule {t} {svc} numgen random mod {len(names)} vmap {{ {vmap} }}")
    for (ip, port), chain in zip(s.endpoints, names, strict=True):
        out.append(f"add rule {t} {chain} ip saddr {ip} jump mark-for-masquerade")
        out.append(f"add rule {t} {chain} meta l4proto tcp dnat to {ip}:{port}")
    if element:
        out.append(f"add element {t} service-ips {{ {s.vip} . tcp . {s.port} : goto {svc} }}")
    return out


def nft_full(svcs: Sequence[KubeService]) -> str:
    """The whole table as a full sync writes it: maps flushed and refilled, every chain
    added, flushed and rewritten."""
    lines = nft_base()
    lines += [f"flush map {TABLE} service-ips", f"flush map {TABLE} service-nodeports"]
    for s in svcs:
        lines += nft_service(s)
    return "\n".join(lines) + "\n"


def nft_load(svcs: Sequence[KubeService]) -> Iterator[str]:
    """The table in transactions of NFT_LOAD_CHUNK services: one transaction of everything
    costs the kernel time quadratic in its size (minutes at 10,000 services here)."""
    yield "\n".join(nft_base()) + "\n"
    for start in range(0, len(svcs), NFT_LOAD_CHUNK):
        chunk = svcs[start : start + NFT_LOAD_CHUNK]
        yield "\n".join(line for s in chunk for line in nft_service(s)) + "\n"


def nft_change(s: KubeService, gone: str | None) -> str:
    """One changed service: its chains rewritten; the endpoint chain that went (if any)
    flushed and deleted. The `service-ips` element stays (it points at the same chain)."""
    lines = nft_service(s, element=False)
    if gone is not None:
        lines += [f"flush chain {TABLE} {gone}", f"delete chain {TABLE} {gone}"]
    return "\n".join(lines) + "\n"


def nft_chains(ns: str, detail: bool = False) -> Any:
    """The number of chains of the table in `ns`, or (`detail`) the ruleset's text."""
    cmd = ["nft", "list", "ruleset"] if detail else ["nft", "list", "chains", "ip"]
    listed = subprocess.run(in_ns(ns, *cmd), capture_output=True, text=True, check=True).stdout
    return listed if detail else listed.count("chain ")


def run_nft(
    eps: list[tuple[str, ...]],
    flips: list[tuple[int, int]],
    resyncs: int,
    resync_timeout: float,
) -> dict:
    svcs = kube_services(eps)
    full = nft_full(svcs)
    change, resync = Samples(), Samples()
    with netns("nft") as ns:
        load = load_cpu = 0.0
        for text in nft_load(svcs):
            wall, cpu, _ = timed_child(in_ns(ns, "nft", "-f", "-"), text)
            load, load_cpu = load + wall, load_cpu + cpu
        chains = nft_chains(ns)
        cmd = in_ns(ns, "nft", "-f", "-")
        for i, k in flips:
            s = svcs[i]
            ip, port = s.endpoints[k]
            for down in (True, False):
                text = (
                    nft_change(_without(s, k), nft_endpoint_chain(s, ip, port))
                    if down
                    else nft_change(s, None)
                )
                change.add(*timed_child(cmd, text))
                if down and i == flips[0][0]:  # once: the chain went, the vmap has 9
                    listed = nft_chains(ns, detail=True)
                    gone = nft_endpoint_chain(s, ip, port)
                    if gone in listed or f"mod {ENDPOINTS - 1} vmap" not in listed:
                        raise RuntimeError("nft: the change is not in the table")
        if nft_chains(ns) != chains:
            raise RuntimeError("nft: the table is not what it was after the changes")
        timed_out = full_resyncs(cmd, full, resyncs, resync_timeout, resync)
    return {
        "change": change.summary(),
        "resync": resync.summary(),
        "resync_timed_out_s": timed_out,
        "setup": {
            "load_s": load,
            "load_cpu_s": load_cpu,
            "chains": chains,
            "change_bytes": len(text.encode()),
            "full_bytes": len(full.encode()),
        },
    }


# --- the run ---------------------------------------------------------------------------------


def figures(doc: dict) -> dict[str, float]:
    """Every figure, flat, by name (as bench/results/*.json hold them)."""
    out: dict[str, float] = {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}", v)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[prefix] = round(float(value), 4)

    for n, systems in doc.items():
        for system, result in systems.items():
            walk(f"endpoint.{n}.{system}", result)
    return dict(sorted(out.items()))


def _ms(s: dict | None) -> list[str]:
    """p50, p99, mean, CPU mean and its system part (children only), in ms."""
    if not s:
        return ["-"] * 5
    cells = [_fmt(s[k]) for k in ("p50_ms", "p99_ms", "mean_ms", "cpu_mean_ms")]
    return [*cells, _fmt(s["sys_mean_ms"]) if "sys_mean_ms" in s else "-"]


def _fmt(ms: float) -> str:
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.3g}" if ms >= 1 else f"{ms:.3f}"


def rows_of(n: int, got: dict) -> list[list[str]]:
    rows = []
    label = f"{n:,}"
    if "netcc" in got:
        r = got["netcc"]
        rows.append([label, "netcc: compute (Reconciler.update)", *_ms(r["compute"])])
        rows.append([label, "netcc: write (LbWriter.write)", *_ms(r["write"])])
        rows.append([label, "netcc: total", *_ms(r["total"])])
    for backend in ("nft", "legacy"):
        r = got.get(f"iptables-{backend}")
        if r is None:
            continue
        name = f"iptables-{backend}"
        rows.append([label, f"{name}: kube-proxy partial sync", *_ms(r["partial"])])
        rows.append([label, f"{name}: changed chains only (bound)", *_ms(r["chains_only"])])
        rows.append([label, f"{name}: full resync", *_resync(r)])
    r = got.get("nft")
    if r is not None:
        rows.append([label, "nftables: one transaction", *_ms(r["change"])])
        rows.append([label, "nftables: full resync", *_resync(r)])
    return rows


def _resync(r: dict) -> list[str]:
    if not r.get("resync_timed_out_s"):
        return _ms(r.get("resync"))
    return [f"> {r['resync_timed_out_s'] * 1e3:,.0f}", "-", "-", "-", "-"]


def run_system(
    system: str,
    out: Path,
    eps: list[tuple[str, ...]],
    flips: list[tuple[int, int]],
    args: argparse.Namespace,
) -> dict:
    if system == "netcc":
        return run_netcc(out, eps, flips)
    if system == "nft":
        return run_nft(eps, flips, args.full_resyncs, args.resync_timeout)
    backend = system.removeprefix("iptables-")
    return run_iptables(backend, eps, flips, args.full_resyncs, args.resync_timeout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, nargs="+", default=[10000, 1000])
    ap.add_argument(
        "--changes",
        type=int,
        default=50,
        help="services whose endpoint goes not ready and ready again (2 changes each)",
    )
    ap.add_argument("--full-resyncs", type=int, default=1, help="full resyncs timed per system")
    ap.add_argument(
        "--resync-timeout", type=float, default=60.0, help="seconds a full resync may take"
    )
    ap.add_argument("--only", choices=SYSTEMS, action="append", help="this system (repeatable)")
    ap.add_argument("--json", metavar="FILE", help="write every figure, by name, to FILE")
    ap.add_argument("--record", action="store_true", help=f"write {RESULTS.relative_to(REPO)}")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root: network namespaces, bpffs, BPF, iptables, nft", file=sys.stderr)
        return 2
    systems = args.only or list(SYSTEMS)
    tools = {"iptables-nft": "iptables-nft-restore", "iptables-legacy": "iptables-legacy-restore"}
    tools["nft"] = "nft"
    missing = [t for s, t in tools.items() if s in systems and not shutil.which(t)]
    if missing:
        print(f"not found: {', '.join(missing)} (apt-get install iptables nftables)")
        return 2
    header("One endpoint change with N services x 10 endpoints: netcc vs kube-proxy's rules")
    versions = [
        subprocess.run([t, "--version"], capture_output=True, text=True, check=False).stdout
        for t in ("iptables-nft", "nft")
    ]
    print(f"# peers: {' ; '.join(v.strip() for v in versions)}\n", flush=True)
    doc: dict[int, dict] = {}
    rows, setups = [], []
    for n in args.services:
        out, took = compiled(spec_doc(n))
        print(f"# N={n}: OUT {out} (compiled in {took:.1f} s; 0: reused)", flush=True)
        eps = endpoints_of(out, n)
        flips = picks(n, args.changes)
        got: dict[str, dict] = {}
        for system in SYSTEMS:
            if system in systems:
                begin = time.perf_counter()
                got[system] = run_system(system, out, eps, flips, args)
                took = time.perf_counter() - begin
                print(f"# N={n} {system}: {took:.0f} s: {json.dumps(got[system])}", flush=True)
        doc[n] = got
        rows += rows_of(n, got)
        setups += _setups(n, got)
    print()
    heads = ["services", "what is timed", "p50 ms", "p99 ms", "mean ms", "CPU ms", "of it sys ms"]
    print(table(heads, rows))
    print()
    print(table(["services", "system", "setup"], setups))
    print(
        f"\n# {2 * min(args.changes, min(args.services))} changes per system and N"
        f" ({args.changes} services: one endpoint not ready, then ready again); changed chains"
        f" only: on a tenth of the services; full resync: {args.full_resyncs} time(s), stopped"
        f" after {args.resync_timeout:.0f} s"
    )
    flat = figures(doc)
    if args.json:
        Path(args.json).write_text(json.dumps(flat, indent=1, sort_keys=True) + "\n")
    if args.record:
        command = "python3 bench/endpoint_change.py " + " ".join(sys.argv[1:])
        record = {
            "section": "12. One endpoint change with 10,000 services (BENCHMARKS.md)",
            "command": command.strip(),
            "commit": tree_state(),
            "figures": flat,
        }
        RESULTS.write_text(json.dumps(record, indent=1) + "\n")
    return 0


def tree_state() -> str:
    """The short commit, and whether the working tree differs from it."""
    git = ["git", "-C", str(REPO)]
    rev = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True)
    head = rev.stdout.strip() or "unknown"
    return f"{head} + uncommitted working tree" if dirty.stdout.strip() else head


def _setups(n: int, got: dict) -> list[list[str]]:
    out = []
    label = f"{n:,}"
    if "netcc" in got:
        s = got["netcc"]["setup"]
        out.append(
            [
                label,
                "netcc",
                f"{s['backends']:,} runtime backends, {s['members']:,} row members, rows of"
                f" {s.get('maglev_size', '?')} slots; reconciler fed in"
                f" {s['reconciler_fed_s']:.1f} s, datapath applied in {s['apply_s']:.1f} s",
            ]
        )
    for backend in ("nft", "legacy"):
        r = got.get(f"iptables-{backend}")
        if r:
            s = r["setup"]
            out.append(
                [
                    label,
                    f"iptables-{backend}",
                    f"{s['rules']:,} nat rules, {s['chains']:,} chains loaded in"
                    f" {s['load_s']:.1f} s; partial sync input {s['partial_bytes'] / 1e6:.2f} MB",
                ]
            )
    r = got.get("nft")
    if r:
        s = r["setup"]
        out.append(
            [
                label,
                "nftables",
                f"{s['chains']:,} chains loaded in {s['load_s']:.1f} s; change transaction"
                f" {s['change_bytes'] / 1e3:.1f} kB",
            ]
        )
    return out


if __name__ == "__main__":
    sys.exit(main())
