"""Where a packet's time goes in the netcc datapath: one step at a time, on the real maps.

For each spec of the rule sweep, the node of the ingress flows that `datapath_cost.py` picks
is loaded with its maps pinned in bpffs; `bench/probe.bpf.c` is then built against that
output's maps.h and loaded with the same pins, so every probe program does exactly one map
lookup (or helper call) of the datapath on the filled maps. Each figure is the probe's ns per
run (BPF_PROG_TEST_RUN, repeat 1,000,000) minus that of probe_empty run right before it,
median of 5 such differences; conntrack creation runs 40,000 times per measurement so that the
table never fills. The process is pinned to one CPU.

A denied new flow (ingress) does: parse, flow-cache slot, endpoint lookup, coarse clock,
conntrack miss, ipcache lookup, policy lookup for the peer class, policy lookup for PEER_ANY
(when the pod has PEER_ANY entries), counter update. An allowed new flow also creates the
conntrack entry and fills the flow cache. An established flow hits the flow cache.

Run as root: `python3 bench/datapath_parts.py` (outputs reused from $NETCC_BENCH_DIR).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from ipaddress import IPv4Address
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    BENCH,
    RULE_COUNTS,
    SWEEP_SHAPE,
    compiled,
    header,
    median,
    pin_cpu,
    sweep_spec,
    table,
)
from datapath_cost import MEASUREMENTS, one, pick_flows

CT_CREATE_REPEAT = 40_000
PROBES = (
    ("probe_endpoint", "endpoint lookup (hash)"),
    ("probe_ktime_coarse", "bpf_ktime_get_coarse_ns"),
    ("probe_ct_miss", "conntrack lookup, miss (LRU hash)"),
    ("probe_prandom", "bpf_get_prandom_u32"),
    ("probe_ct_create", "conntrack create, new key, table not full (incl. prandom)"),
    ("probe_ipcache", "ipcache lookup (hash)"),
    ("probe_ipcache_cidr", "ipcache_cidr lookup 8.8.8.8 (LPM)"),
    ("probe_exact_hit", "policy_exact lookup, hit (hash)"),
    ("probe_exact_miss_peer", "policy_exact lookup, miss, peer class (hash)"),
    ("probe_exact_miss_any", "policy_exact lookup, miss, PEER_ANY (hash)"),
    ("probe_policy_hit", "policy lookup, allowed flow's key (LPM)"),
    ("probe_policy_miss_peer", "policy lookup, miss, peer class (LPM)"),
    ("probe_policy_miss_any", "policy lookup, miss, PEER_ANY (LPM)"),
    ("probe_stats", "verdict counter update (per-CPU array)"),
)


def _be32(ip: str) -> int:
    """The u32 whose in-memory (little-endian) bytes are the address in network order."""
    return int.from_bytes(IPv4Address(ip).packed, "little")


def probe_defines(out: Path) -> tuple[str, list[str]]:
    """(node, clang -D flags) for the sweep output's ingress allow and deny flows."""
    from netcc.contract import constants
    from netcc.contract.mapfile import load_node_maps

    flows = pick_flows(out, "ingress")
    if flows is None:
        raise SystemExit(f"no ingress flows in {out}")
    allow, deny = flows
    node = deny.node

    def entries(name: str, node: str) -> list[dict]:
        return load_node_maps(out, node, [name]).get(name, [])

    def profile(node: str, ip: str) -> int:
        return next(e for e in entries("netcc_endpoints", node) if e["key"]["ip"] == ip)["value"][
            "profile"
        ]

    def peer(node: str, ip: str) -> int:
        return next(e for e in entries("netcc_ipcache", node) if e["key"]["ip"] == ip)["value"][
            "peer"
        ]

    if allow.node != node:  # the allow probe needs keys valid on the loaded node
        allow_profile, allow_peer = 0, 0
    else:
        allow_profile, allow_peer = profile(node, allow.dst), peer(node, allow.src)
    flags = {
        "LOCAL_IP": _be32(deny.dst),
        "REMOTE_IP": _be32(deny.src),
        "DIR": constants.DIR_INGRESS,
        "ALLOW_PROFILE": allow_profile,
        "ALLOW_PEER": allow_peer,
        "ALLOW_PORT": allow.dport,
        "DENY_PROFILE": profile(node, deny.dst),
        "DENY_PEER": peer(node, deny.src),
        "DENY_PORT": deny.dport,
    }
    defines = [f"-D{k}={v}u" for k, v in flags.items()]
    if "netcc_policy_exact" in (out / "bpf" / "maps.h").read_text():
        defines.append("-DHAVE_POLICY_EXACT=1")
    return node, defines


def measure(out: Path, tmp: Path, repeat: int) -> dict[str, float]:
    from netcc.loader.datapath import NodeDatapath
    from netcc.loader.libbpf import BpfObject
    from netcc.loader.testrun import TC_ACT_OK, ipv4_packet

    node, defines = probe_defines(out)
    obj_path = tmp / f"probe-{out.name}.o"
    cmd = ["clang", "-O2", "-g", "-target", "bpf", "-mcpu=v3", "-Wall", "-Werror"]
    cmd += ["-I/usr/include/x86_64-linux-gnu", f"-I{out / 'bpf'}", *defines]
    subprocess.run([*cmd, "-c", str(BENCH / "probe.bpf.c"), "-o", str(obj_path)], check=True)
    pin = f"/sys/fs/bpf/netcc-bench-{os.getpid()}"
    pkt = ipv4_packet("10.0.0.1", "10.0.0.2", "tcp", 1, 2, tcp_flags="A")
    dp = NodeDatapath(out, node, pin_root=pin)
    try:
        with BpfObject.open(obj_path, pin_root=pin) as probe:
            probe.load()
            empty_fd = probe.prog_fd("probe_empty")
            empties: list[float] = []
            found: dict[str, float] = {}
            present = set(probe.program_names())
            for name, _ in PROBES:
                if name not in present:
                    continue
                # 5 x 40,000 new connections stay below the conntrack capacity (2^18): no
                # evictions, as in datapath_cost's allowed new flows.
                n = min(repeat, CT_CREATE_REPEAT) if name == "probe_ct_create" else repeat
                diffs = []
                for _ in range(MEASUREMENTS):  # the empty program right before each probe
                    empty = one(empty_fd, pkt, n, TC_ACT_OK)
                    empties.append(empty)
                    diffs.append(one(probe.prog_fd(name), pkt, n, TC_ACT_OK) - empty)
                found[name] = median(diffs)
            found["probe_empty"] = median(empties)
            return found
    finally:
        dp.obj.unpin_maps()
        dp.close()
        shutil.rmtree(pin, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", default=",".join(map(str, RULE_COUNTS)))
    ap.add_argument("--repeat", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    from netcc.loader.bpffs import ensure_bpffs

    ensure_bpffs()
    pin_cpu()
    header("datapath_parts: ns per datapath step, on the filled maps")
    print(f"cluster: {SWEEP_SHAPE} (fixed); repeat={args.repeat:,}; median of 5\n")
    sizes = [int(r) for r in args.rules.split(",")]
    results = {}
    with tempfile.TemporaryDirectory(prefix="netcc-bench-") as tmp:
        for rules in sizes:
            out, _ = compiled(sweep_spec(rules, args.seed))
            results[rules] = measure(out, Path(tmp), args.repeat)
    rows = [
        ["empty program (harness), absolute", *(f"{results[r]['probe_empty']:.0f}" for r in sizes)]
    ]
    rows += [
        [label, *(f"{results[r][name]:.0f}" if name in results[r] else "-" for r in sizes)]
        for name, label in PROBES
        if any(name in results[r] for r in sizes)
    ]
    print(table(["step (ns, minus empty)", *(f"{r} rules" for r in sizes)], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
