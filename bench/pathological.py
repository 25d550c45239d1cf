"""Valid specs that used to take far too long to compile (issue 11), and their benchmark.

Five deterministic generators, each scaled by one number `n` (the issue's size is the
default). The pods grow with `n` too (n/50 to n/10 of them, on at least three nodes), so
that work proportional to pods x policies, pods x blocks or pods x excepts shows as quadratic:

- `blocks`:   one rule with n ipBlock peers (distinct /24s, every 8th with an except);
- `ranges`:   n policies, each from its own /16 ipBlock on a port range (endPort);
- `excepts`:  one ipBlock 0.0.0.0/0 with n excepts (distinct /24s);
- `empty`:    n policies whose podSelector selects no pod;
- `nodes`:    n nodes with one pod each (and a default deny plus one allow per namespace).

`spec(case, n)` returns the spec's YAML bytes; the tests import it (tests/unit). Run as a
script, it compiles each case with `netcc compile` in a child process with a fresh
`NETCC_CACHE_DIR` (so neither the tree cache nor clang's object cache answers) and prints
the child's CPU seconds (user + sys, clang included) and peak RSS:

    python3 bench/pathological.py                     # every case at the issue's size
    python3 bench/pathological.py --scale 0.5 1 2     # each at n/2, n and 2n
    python3 bench/pathological.py --case nodes -n 250 --spec-only -o nodes.yaml
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import yaml

POD_CIDR = IPv4Network("10.0.0.0/8")
SERVICE_CIDR = "192.168.0.0/16"
NODE_PREFIX = 24
NODE_BASE = IPv4Address("10.1.0.0")
UNDERLAY = IPv4Address("172.16.0.10")
BLOCK_BASE = IPv4Address("20.0.0.0")  # /24 and /16 ipBlocks are carved upwards from here
POD_PER_NODE = 200  # at most, in a node's /24
NAMESPACES = ("alpha", "beta", "gamma", "delta")
APPS = ("web", "api", "db", "cache", "worker")


def _policy(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def _nodes(count: int) -> list[dict[str, Any]]:
    """`node-NNNN`, each with a /24 pod CIDR from 10.1.0.0 and an underlay address."""
    return [
        {
            "name": f"node-{i:04d}",
            "address": str(UNDERLAY + i),
            "podCIDR": f"{NODE_BASE + (i << 8)}/{NODE_PREFIX}",
        }
        for i in range(count)
    ]


def _workloads(nodes: list[dict[str, Any]], per_node: int) -> list[dict[str, Any]]:
    """`per_node` pods on each node, apps and namespaces round-robin, two named ports each."""
    pods = []
    for i, node in enumerate(nodes):
        base = IPv4Network(node["podCIDR"]).network_address
        for j in range(per_node):
            k = i * per_node + j
            app = APPS[k % len(APPS)]
            pods.append(
                {
                    "name": f"{app}-{k:05d}",
                    "namespace": NAMESPACES[k % len(NAMESPACES)],
                    "node": node["name"],
                    "labels": {"app": app, "tier": "backend" if k % 2 else "frontend"},
                    "ips": [str(base + 10 + j)],
                    "ports": [{"name": "http", "port": 8080}, {"name": "metrics", "port": 9100}],
                }
            )
    return pods


def _cluster(name: str, pods: int, policies: list[dict], nodes: int = 0) -> dict[str, Any]:
    """The spec: `pods` pods on `nodes` nodes (default: at least 3, at most 200 pods each)."""
    nodes = nodes or max(3, -(-pods // POD_PER_NODE))
    node_list = _nodes(nodes)
    per_node = -(-pods // nodes)
    return {
        "apiVersion": "netcc.io/v1alpha1",
        "kind": "ClusterNetwork",
        "metadata": {"name": name},
        "spec": {
            "podCIDR": str(POD_CIDR),
            "serviceCIDR": SERVICE_CIDR,
            "nodes": node_list,
            "namespaces": [{"name": ns, "labels": {"team": ns}} for ns in NAMESPACES],
            "workloads": _workloads(node_list, per_node),
            "policies": policies,
        },
    }


def _slash24(i: int) -> IPv4Network:
    return IPv4Network((int(BLOCK_BASE) + (i << 8), 24))


def blocks(n: int) -> dict[str, Any]:
    """One ingress rule with `n` ipBlock peers: distinct /24s, every 8th with a /26 except."""
    peers = []
    for i in range(n):
        net = _slash24(i)
        block: dict[str, Any] = {"cidr": str(net)}
        if i % 8 == 0:
            block["except"] = [str(next(net.subnets(new_prefix=26)))]
        peers.append({"ipBlock": block})
    rule = {"from": peers, "ports": [{"port": 443}, {"port": "http"}]}
    spec = {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [rule]}
    return _cluster("blocks", max(12, n // 40), [_policy("many-blocks", "alpha", spec)])


def ranges(n: int) -> dict[str, Any]:
    """`n` policies, each from a distinct /16 ipBlock on a port range (endPort)."""
    policies = []
    for i in range(n):
        net = IPv4Network((int(BLOCK_BASE) + (i << 16), 16))
        first = 1000 + (i % 50) * 100
        rule = {
            "from": [{"ipBlock": {"cidr": str(net)}}],
            "ports": [{"port": first, "endPort": first + 10 + i % 90}],
        }
        spec = {"podSelector": {"matchLabels": {"app": APPS[i % len(APPS)]}}, "ingress": [rule]}
        policies.append(_policy(f"range-{i:05d}", NAMESPACES[i % len(NAMESPACES)], spec))
    return _cluster("ranges", max(12, n // 20), policies)


def excepts(n: int) -> dict[str, Any]:
    """One ipBlock 0.0.0.0/0 with `n` excepts (distinct /24s), ingress on 443."""
    block = {"cidr": "0.0.0.0/0", "except": [str(_slash24(i)) for i in range(n)]}
    rule = {"from": [{"ipBlock": block}], "ports": [{"port": 443}]}
    spec = {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [rule]}
    return _cluster("excepts", max(12, n // 50), [_policy("public", "alpha", spec)])


def empty(n: int) -> dict[str, Any]:
    """`n` policies selecting no pod (an app label nothing has), each with one rule."""
    policies = []
    for i in range(n):
        rule = {"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": 80}]}
        spec = {"podSelector": {"matchLabels": {"app": f"ghost-{i:05d}"}}, "ingress": [rule]}
        policies.append(_policy(f"ghost-{i:05d}", NAMESPACES[i % len(NAMESPACES)], spec))
    return _cluster("empty", max(12, n // 10), policies)


def nodes(n: int) -> dict[str, Any]:
    """`n` nodes with one pod each; each namespace denies ingress but from its own web pods."""
    policies = []
    for ns in NAMESPACES:
        policies.append(_policy("default-deny", ns, {"podSelector": {}}))
        rule = {
            "from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
            "ports": [{"port": 8080}],
        }
        policies.append(_policy("from-web", ns, {"podSelector": {}, "ingress": [rule]}))
    return _cluster("nodes", n, policies, nodes=n)


@dataclass(frozen=True)
class Case:
    """One pathological spec family: its generator and the size the issue reported."""

    name: str
    build: Callable[[int], dict[str, Any]]
    size: int
    what: str


CASES = {
    c.name: c
    for c in (
        Case("blocks", blocks, 4096, "one rule with n ipBlock peers"),
        Case("ranges", ranges, 2000, "n policies with distinct /16s and ranges"),
        Case("excepts", excepts, 5000, "one ipBlock with n excepts"),
        Case("empty", empty, 5000, "n policies selecting nothing"),
        Case("nodes", nodes, 1000, "n nodes with one pod each"),
    )
}


def spec(case: str, n: int | None = None) -> bytes:
    """The spec's YAML for `case` at size `n` (default: the issue's size). Deterministic."""
    c = CASES[case]
    doc = c.build(c.size if n is None else n)
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=120).encode()


@dataclass(frozen=True)
class Measurement:
    """One `netcc compile` in a child: CPU seconds (user + sys, children included), peak RSS."""

    cpu: float
    sys: float  # of `cpu`: the kernel's share (writing OUT and the cache, mostly)
    rss_mib: float
    wall: float
    out_mib: float
    files: int


def _tree_size(root: Path) -> tuple[float, int]:
    total, count = 0, 0
    for dirpath, _, filenames in os.walk(root):
        for f in filenames:
            total += (Path(dirpath) / f).stat().st_size
            count += 1
    return total / 2**20, count


def measure(spec_path: Path, out: Path, cache: Path) -> Measurement:
    """Compile `spec_path` to `out` with an empty cache; CPU and peak RSS from wait4."""
    env = {**os.environ, "NETCC_CACHE_DIR": str(cache)}
    cmd = [sys.executable, "-m", "netcc", "compile", "-q", str(spec_path), "-o", str(out)]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"netcc compile {spec_path} failed with exit {proc.returncode}")
    size, files = _tree_size(out)
    cpu = usage.ru_utime + usage.ru_stime
    return Measurement(cpu, usage.ru_stime, usage.ru_maxrss / 1024, wall, size, files)


def _run(cases: list[str], scales: list[float], size: int | None, keep: bool) -> None:
    print(
        f"{'case':8} {'n':>6} {'CPU s':>7} {'sys s':>6} {'peak MiB':>9} {'wall s':>7} "
        f"{'OUT MiB':>8} files"
    )
    tmp = tempfile.mkdtemp(prefix="netcc-patho-")
    try:
        for name in cases:
            for scale in scales:
                n = max(1, round((size or CASES[name].size) * scale))
                work = Path(tmp) / f"{name}-{n}"
                work.mkdir()
                (work / "spec.yaml").write_bytes(spec(name, n))
                m = measure(work / "spec.yaml", work / "out", work / "cache")
                print(
                    f"{name:8} {n:>6} {m.cpu:>7.2f} {m.sys:>6.2f} {m.rss_mib:>9.0f} {m.wall:>7.2f} "
                    f"{m.out_mib:>8.1f} {m.files}",
                    flush=True,
                )
                if not keep:
                    shutil.rmtree(work)
    finally:
        if keep:
            print(f"# kept under {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--case", action="append", choices=sorted(CASES), help="default: all")
    ap.add_argument("-n", type=int, help="size (default: the issue's size of each case)")
    ap.add_argument("--scale", type=float, nargs="+", default=[1.0], help="multiples of n")
    ap.add_argument("--spec-only", action="store_true", help="write the spec, do not compile")
    ap.add_argument("-o", "--output", default="-", help="with --spec-only: file, or - (stdout)")
    ap.add_argument("--keep", action="store_true", help="keep each OUT (under a temp dir)")
    args = ap.parse_args(argv)
    cases = args.case or list(CASES)
    if args.spec_only:
        if len(cases) != 1:
            ap.error("--spec-only takes exactly one --case")
        data = spec(cases[0], args.n)
        if args.output == "-":
            sys.stdout.buffer.write(data)
        else:
            Path(args.output).write_bytes(data)
        return 0
    _run(cases, args.scale, args.n, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
