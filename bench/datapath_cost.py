"""Per-packet cost of the netcc datapath against a pass-through baseline, with BPF_PROG_TEST_RUN.

Baseline: `bench/passthrough.bpf.c`, built here with clang (-O2 -target bpf -mcpu=v3, as
netcc builds): parses Ethernet, IPv4 and the TCP/UDP/SCTP ports behind bounds checks, writes a
value derived from them to skb->cb[0] and returns TC_ACT_OK. No map lookups, no helpers.

netcc: the sweep's specs (10 / 100 / 1,000 / 10,000 rules on a fixed cluster, see
`benchlib.SWEEP_SHAPE`), one node loaded with its maps, both programs:
- to_container (a pod's ingress policy) and from_container (its egress policy).
- new flow, denied: a TCP SYN that no rule allows, run `repeat` times in one test run. A
  denied packet creates no conntrack entry, so every run is a full verdict.
- new flow, allowed: TCP SYNs that a rule allows (policy lookup, then a conntrack entry is
  created), each with a distinct source port, run once each (repeat=1); the figure is the
  mean of the kernel-measured durations over `--flows` packets. Its baseline is measured the
  same way (repeat=1 over the same packets), since a single run carries timer overhead.
- established: the allowed flow's SYN is sent once, then an ACK of the same connection is run
  `repeat` times (conntrack entry exists; after the first run the per-CPU flow cache answers).
- established via conntrack: the same connection's SYN repeated (a retransmitted SYN): the
  flow cache is bypassed for SYN/FIN/RST, so this is the conntrack lookup path.
Each figure is the median of 5 measurements. The baseline runs right before every netcc
measurement (the machine is shared, so conditions drift): its figure is the median of those 15
(repeat) or 5 (repeat=1) measurements, and each "x base" is the median of the 5 ratios of a
netcc measurement to the baseline run just before it. The process is pinned to one CPU.
Every retval is checked (OK or SHOT as expected). BPF_PROG_TEST_RUN reports the mean per run
as an integer ns, hence the resolution.

Targets (from the issue): new flow <= 2.5x baseline, established <= 1.5x baseline, flat from
10 to 10,000 rules.

Run as root: `python3 bench/datapath_cost.py` (outputs reused from $NETCC_BENCH_DIR).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass
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
    verdict,
)

TARGET_NEW = 2.5
TARGET_EST = 1.5
MEASUREMENTS = 5
DIRECTIONS = (("ingress", "netcc_to_container"), ("egress", "netcc_from_container"))
DENY_PORTS = (1, 7, 9, 13, 17, 19, 37, 79, 113, 119)


@dataclass(frozen=True)
class Flow:
    node: str
    src: str
    dst: str
    dport: int
    note: str
    lookups: str  # the policy map lookups the verdict takes


def _covers(entry: dict, proto: int, port: int) -> bool:
    """Whether a policy entry (exact, or LPM with `prefixlen`) allows proto/port."""
    from netcc.contract import constants

    k = entry["key"]
    bits = k.get("prefixlen", constants.POLICY_PREFIX_FULL)
    if bits <= constants.POLICY_PREFIX_ALL_PROTOCOLS:
        return True
    if k["proto"] != proto:
        return False
    keep = bits - constants.POLICY_PREFIX_ALL_PORTS
    return keep <= 0 or (port >> (16 - keep)) == (k["port"] >> (16 - keep))


def _lookups(flags: int, direction: str, hit: str) -> str:
    """The policy lookups a verdict takes (see templates/bpf/lib/policy.h): the peer's class,
    then PEER_ANY (if the pod has PEER_ANY entries), in the exact-port hash map, then the same
    in the LPM trie (if the pod has range or wildcard entries); `hit` says where it stops."""
    from netcc.contract import constants

    d = direction.upper()
    has_any = bool(flags & constants.ENDPOINT_FLAGS[f"ENDPOINT_F_{d}_ANY"])
    ranges = constants.ENDPOINT_FLAGS.get(f"ENDPOINT_F_{d}_RANGES")
    has_lpm = ranges is None or bool(flags & ranges)
    per_map = 2 if has_any else 1
    steps = {"hash-peer": (1, 0), "hash-any": (2, 0), "lpm-peer": (per_map, 1)}
    steps["lpm-any"] = (per_map, 2)
    steps["miss"] = (per_map, per_map if has_lpm else 0)
    if ranges is None:  # one LPM map only (older netcc): every lookup is an LPM lookup
        return f"{sum(steps[hit])} LPM"
    h, lpm = steps[hit]
    return f"{h} hash" + (f" + {lpm} LPM" if lpm else "")


def pick_flows(out: Path, direction: str) -> tuple[Flow, Flow] | None:
    """(allowed, denied) TCP flows for a pod isolated in `direction`, from the map data.

    Allowed: a policy entry of the pod's profile, single ports and concrete peer classes
    preferred; the remote is a pod of that peer class. Denied: a remote pod and a port that no
    entry of the profile covers for the peer's class or PEER_ANY; pods with PEER_ANY and
    range entries are preferred, as their denies take the most lookups.
    """
    from netcc.contract import constants
    from netcc.contract.mapfile import load_node_maps, out_node_names

    d = constants.DIR_INGRESS if direction == "ingress" else constants.DIR_EGRESS
    isolated = constants.ENDPOINT_FLAGS[f"ENDPOINT_F_{direction.upper()}_ISOLATED"]
    worst = sum(
        v
        for k, v in constants.ENDPOINT_FLAGS.items()
        if k.startswith(f"ENDPOINT_F_{direction.upper()}")
    )
    allowed: list[tuple[tuple, Flow]] = []
    denied: list[tuple[tuple, Flow]] = []
    for node in out_node_names(out):
        maps = load_node_maps(out, node)  # shared entries with the node's overlay

        def entries(name: str, maps: dict = maps) -> list[dict]:
            return maps.get(name, [])

        pods_by_peer: dict[int, list[dict]] = {}
        for e in entries("netcc_ipcache"):
            if e["value"]["workload"]:
                pods_by_peer.setdefault(e["value"]["peer"], []).append(e)
        policy: dict[int, list[dict]] = {}
        for e in entries("netcc_policy_exact") + entries("netcc_policy"):
            if e["key"]["dir"] == d:
                policy.setdefault(e["key"]["profile"], []).append(e)
        for ep in entries("netcc_endpoints"):
            v = ep["value"]
            if not v["flags"] & isolated:
                continue
            local = ep["key"]["ip"]
            rules = policy.get(v["profile"], [])
            for e in rules:
                k = e["key"]
                if k["proto"] not in (0, 6):
                    continue
                peers = (
                    pods_by_peer.get(k["peer"]) if k["peer"] else next(iter(pods_by_peer.values()))
                )
                remote = next(
                    (p for p in peers or [] if p["value"]["workload"] != v["workload"]), None
                )
                if remote is None:
                    continue
                port = k["port"] if k["proto"] else 80
                exact = "prefixlen" not in k
                rank = (k["peer"] == 0, not exact)
                own = [x for x in rules if x["key"]["peer"] == remote["value"]["peer"]]
                if any(_covers(x, 6, port) and "prefixlen" not in x["key"] for x in own):
                    hit = "hash-peer"
                elif exact:
                    hit = "hash-any"
                elif any(_covers(x, 6, port) for x in own):
                    hit = "lpm-peer"
                else:
                    hit = "lpm-any"
                lookups = _lookups(v["flags"], direction, hit)
                ip = remote["key"]["ip"]
                flow = _flow(node, local, ip, direction, port, e["note"], lookups)
                allowed.append((rank, flow))
                break
            for peer, pods in sorted(pods_by_peer.items()):
                remote = next((p for p in pods if p["value"]["workload"] != v["workload"]), None)
                if remote is None:
                    continue
                relevant = [e for e in rules if e["key"]["peer"] in (peer, 0)]
                port = next(
                    (p for p in DENY_PORTS if not any(_covers(e, 6, p) for e in relevant)), None
                )
                if port is not None:
                    rank = (-(v["flags"] & worst).bit_count(), -len(rules))
                    note = f"default deny of {ep['note']}"
                    lookups = _lookups(v["flags"], direction, "miss")
                    ip = remote["key"]["ip"]
                    flow = _flow(node, local, ip, direction, port, note, lookups)
                    denied.append((rank, flow))
                    break
    if not allowed or not denied:
        return None
    return min(allowed, key=lambda x: x[0])[1], min(denied, key=lambda x: x[0])[1]


def _flow(
    node: str, local: str, remote: str, direction: str, port: int, note: str, lookups: str
) -> Flow:
    src, dst = (remote, local) if direction == "ingress" else (local, remote)
    return Flow(node, src, dst, port, note, lookups)


def build_baseline(tmp: Path):
    """Compile and load bench/passthrough.bpf.c; returns (object, program fd)."""
    from netcc.loader.libbpf import BpfObject

    obj_path = tmp / "passthrough.o"
    cmd = ["clang", "-O2", "-g", "-target", "bpf", "-mcpu=v3", "-Wall", "-Werror"]
    cmd += ["-I/usr/include/x86_64-linux-gnu", "-c", str(BENCH / "passthrough.bpf.c")]
    subprocess.run([*cmd, "-o", str(obj_path)], check=True)
    obj = BpfObject.open(obj_path)
    obj.load()
    return obj, obj.prog_fd("passthrough")


def repeated(fd: int, pkt: bytes, repeat: int, want: int) -> float:
    """Median over MEASUREMENTS test runs of the mean ns per run with `repeat` runs."""
    return median([one(fd, pkt, repeat, want) for _ in range(MEASUREMENTS)])


def one(fd: int, pkt: bytes, repeat: int, want: int) -> int:
    """One test run: the kernel's mean ns per run (an integer) over `repeat` runs."""
    from netcc.loader.libbpf import prog_test_run

    run = prog_test_run(fd, pkt, repeat=repeat)
    if run.retval != want:
        raise SystemExit(f"unexpected retval {run.retval} (wanted {want})")
    return run.duration_ns


def batch_mean(fd: int, packets: list[bytes], want: int) -> float:
    """Mean ns of single runs (repeat=1), one per packet."""
    return statistics.fmean(one(fd, pkt, 1, want) for pkt in packets)


def new_flow_batches(flow: Flow, flows: int) -> list[list[bytes]]:
    """MEASUREMENTS batches of `flows` SYNs, every one with its own source port."""
    from netcc.loader.testrun import ipv4_packet

    if MEASUREMENTS * flows > 60000:
        raise SystemExit("--flows too large: source ports would repeat")
    return [
        [
            ipv4_packet(flow.src, flow.dst, "tcp", 1024 + b * flows + i, flow.dport, tcp_flags="S")
            for i in range(flows)
        ]
        for b in range(MEASUREMENTS)
    ]


def measure(out: Path, base_fd: int, repeat: int, flows: int) -> list[dict]:
    from netcc.loader.datapath import NodeDatapath
    from netcc.loader.testrun import TC_ACT_OK, TC_ACT_SHOT, ipv4_packet

    results = []
    for direction, program in DIRECTIONS:
        picked = pick_flows(out, direction)
        if picked is None:
            print(f"no {direction} flows in {out}: skipped", flush=True)
            continue
        allow, deny = picked
        nodes = {allow.node, deny.node}
        dps = {n: NodeDatapath(out, n) for n in nodes}
        try:
            fd_allow = dps[allow.node].prog_fd(program)
            fd_deny = dps[deny.node].prog_fd(program)
            deny_pkt = ipv4_packet(deny.src, deny.dst, "tcp", 40000, deny.dport, tcp_flags="S")
            syn = ipv4_packet(allow.src, allow.dst, "tcp", 65000, allow.dport, tcp_flags="S")
            ack = ipv4_packet(allow.src, allow.dst, "tcp", 65000, allow.dport, tcp_flags="A")

            batches = new_flow_batches(allow, flows)

            one(fd_allow, syn, 1, TC_ACT_OK)  # opens the connection for the established runs
            samples: dict[str, list[float]] = defaultdict(list)
            for i in range(MEASUREMENTS):  # the baseline runs right before every netcc run
                for key, fd, pkt, want in (
                    ("denied", fd_deny, deny_pkt, TC_ACT_SHOT),
                    ("established", fd_allow, ack, TC_ACT_OK),
                    ("via_ct", fd_allow, syn, TC_ACT_OK),
                ):
                    base = one(base_fd, ack, repeat, TC_ACT_OK)
                    ns = one(fd, pkt, repeat, want)
                    samples["base"].append(base)
                    samples[key].append(ns)
                    samples[f"x_{key}"].append(ns / base)
                base1 = batch_mean(base_fd, batches[i], TC_ACT_OK)
                ns = batch_mean(fd_allow, batches[i], TC_ACT_OK)
                samples["base1"].append(base1)
                samples["allowed"].append(ns)
                samples["x_allowed"].append(ns / base1)
            r = {k: median(v) for k, v in samples.items()}
            r.update(direction=direction, allow=allow, deny=deny)
            results.append(r)
        finally:
            for dp in dps.values():
                dp.close()
    return results


# The figures of a measurement `--json` writes, as `datapath.RULES.DIRECTION.NAME` (ns, or x).
FIGURES = ("base", "denied", "x_denied", "base1", "allowed", "x_allowed", "established")
FIGURES += ("x_established", "via_ct", "x_via_ct")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", default=",".join(map(str, RULE_COUNTS)))
    ap.add_argument("--repeat", type=int, default=1_000_000)
    ap.add_argument("--flows", type=int, default=5000, help="new flows per measurement")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", metavar="FILE", help="write every figure, by name, to FILE")
    args = ap.parse_args(argv)

    from netcc.loader.bpffs import ensure_bpffs

    ensure_bpffs()
    pin_cpu()
    header("datapath_cost: ns per packet, BPF_PROG_TEST_RUN")
    print(f"cluster: {SWEEP_SHAPE} (fixed); repeat={args.repeat:,}; new flows: ", end="")
    print(f"{args.flows:,} distinct source ports x repeat=1 per measurement")
    print(f"each figure: median of {MEASUREMENTS} measurements\n")
    rows, flows_rows, by_dir = [], [], {}
    with tempfile.TemporaryDirectory(prefix="netcc-bench-") as tmp:
        base_obj, base_fd = build_baseline(Path(tmp))
        try:
            for rules in (int(r) for r in args.rules.split(",")):
                out, _ = compiled(sweep_spec(rules, args.seed))
                for r in measure(out, base_fd, args.repeat, args.flows):
                    by_dir.setdefault(r["direction"], {})[rules] = r
                    rows.append(
                        [
                            rules,
                            r["direction"],
                            f"{r['base']:.1f}",
                            f"{r['denied']:.1f}",
                            f"{r['x_denied']:.2f}x",
                            f"{r['base1']:.1f}",
                            f"{r['allowed']:.1f}",
                            f"{r['x_allowed']:.2f}x",
                            f"{r['established']:.1f}",
                            f"{r['x_established']:.2f}x",
                            f"{r['via_ct']:.1f}",
                            f"{r['x_via_ct']:.2f}x",
                        ]
                    )
                    for kind in ("allow", "deny"):
                        f = r[kind]
                        flows_rows.append(
                            [
                                rules,
                                r["direction"],
                                kind,
                                f.node,
                                f.src,
                                f.dst,
                                f.dport,
                                f.lookups,
                                f.note,
                            ]
                        )
                print(f"measured {rules} rules", flush=True)
        finally:
            base_obj.close()
    print()
    cols = [
        "rules",
        "policy",
        "baseline ns",
        "new denied ns",
        "x base",
        "baseline ns (repeat=1)",
        "new allowed ns (repeat=1)",
        "x base",
        "established ns",
        "x base",
        "est. via CT ns",
        "x base",
    ]
    print(table(cols, rows))
    print()
    print("Flows (TCP, remote pod chosen from the node's map data):\n")
    cols = [
        "rules",
        "policy",
        "flow",
        "node",
        "src",
        "dst",
        "dport",
        "policy lookups",
        "decided by",
    ]
    print(table(cols, flows_rows))
    print()
    everything = [r for per in by_dir.values() for r in per.values()]
    worst_new = max(max(r["x_denied"], r["x_allowed"]) for r in everything)
    worst_est = max(r["x_established"] for r in everything)
    ok_new, ok_est = verdict(worst_new <= TARGET_NEW), verdict(worst_est <= TARGET_EST)
    if args.json:
        figures = {
            f"datapath.{rules}.{direction}.{key}": round(r[key], 2)
            for direction, per in by_dir.items()
            for rules, r in per.items()
            for key in FIGURES
        }
        Path(args.json).write_text(json.dumps(figures, indent=1, sort_keys=True) + "\n")
    print(f"target new flow <= {TARGET_NEW}x baseline: worst {worst_new:.2f}x, {ok_new}")
    print(f"target established <= {TARGET_EST}x baseline: worst {worst_est:.2f}x, {ok_est}")
    for direction, per in by_dir.items():
        lo, hi = min(per), max(per)
        if lo != hi:
            a, b = per[lo], per[hi]
            ratios = ", ".join(
                f"{what} {b[key] / a[key]:.2f}x"
                for what, key in (
                    ("new denied", "denied"),
                    ("new allowed", "allowed"),
                    ("established", "established"),
                )
            )
            print(f"flatness ({direction} policy), {hi} vs {lo} rules: {ratios}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
