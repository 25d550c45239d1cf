"""What flow events cost per packet: the datapath with events off, on (the default budget), and on
with a budget too wide to ever cut, with BPF_PROG_TEST_RUN.

The same spec (the sweep's, `--rules` rules on `benchlib.SWEEP_SHAPE`) compiled three times,
`spec.observability.flowEvents` set per variant:
- off: `enabled: false` (events compiled out; the ring buffer and counters stay);
- default: 1,000 events at once per CPU, then 1,000 a second (netcc.contract.events);
- open: 1,000,000 and 1,000,000 a second: every event is written.
Per direction (a pod's ingress and egress policy), as bench/datapath_cost.py picks the flows:
- new allowed: TCP SYNs a rule allows, each with its own source port, run once each; the
  mean of the kernel-measured durations over `--flows` packets (the ring buffer is drained
  between batches, outside the measurement, as the node daemon would);
- new denied: one denied SYN run `--deny-repeat` times in a test run (each run a dropped
  packet, each an event until the budget cuts them: the flood case);
- established: an ACK of an open connection run `--repeat` times (never an event).
Each figure is the median of 5 measurements, each with a pass-through baseline run right before
it, as datapath_cost does ("x base" is the median ratio). The process is pinned to one CPU.

Run as root: `python3 bench/events_cost.py`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import SWEEP_SHAPE, compiled, header, median, pin_cpu, sweep_spec, table
from datapath_cost import DIRECTIONS, MEASUREMENTS, batch_mean, build_baseline, one, pick_flows

VARIANTS = {
    "off": {"enabled": False},
    "default": {},
    "open": {"ratePerCPU": 1_000_000, "burstPerCPU": 1_000_000},
}


def _drain(dp) -> int:
    from netcc.contract.events import EVENTS_MAP
    from netcc.loader.libbpf import RingBuffer

    n = 0

    def count(_raw: bytes) -> None:
        nonlocal n
        n += 1

    with RingBuffer(dp.obj.map_fd(EVENTS_MAP), count) as ring:
        ring.consume()
    return n


def _counters(dp) -> dict[str, int]:
    from netcc.contract.events import BUDGET_MAP
    from netcc.loader.mapdata import event_counters
    from netcc.loader.maps import BpfMap

    return event_counters(BpfMap.borrow(dp.obj.map_fd(BUDGET_MAP), BUDGET_MAP, dp.layout))


def measure(out: Path, base_fd: int, args) -> list[dict]:
    from netcc.loader.datapath import NodeDatapath
    from netcc.loader.testrun import TC_ACT_OK, TC_ACT_SHOT, ipv4_packet

    results = []
    for direction, program in DIRECTIONS:
        picked = pick_flows(out, direction)
        if picked is None:
            continue
        allow, deny = picked
        dps = {n: NodeDatapath(out, n) for n in {allow.node, deny.node}}
        try:
            fa, fd = dps[allow.node].prog_fd(program), dps[deny.node].prog_fd(program)
            deny_pkt = ipv4_packet(deny.src, deny.dst, "tcp", 40000, deny.dport, tcp_flags="S")
            syn = ipv4_packet(allow.src, allow.dst, "tcp", 65000, allow.dport, tcp_flags="S")
            ack = ipv4_packet(allow.src, allow.dst, "tcp", 65000, allow.dport, tcp_flags="A")
            one(fa, syn, 1, TC_ACT_OK)
            s: dict[str, list[float]] = defaultdict(list)
            for i in range(MEASUREMENTS):
                batch = [
                    ipv4_packet(
                        allow.src, allow.dst, "tcp", 1024 + i * args.flows + j, allow.dport,
                        tcp_flags="S",
                    )
                    for j in range(args.flows)
                ]  # fmt: skip
                for dp in dps.values():
                    _drain(dp)
                base1 = batch_mean(base_fd, batch, TC_ACT_OK)
                ns = batch_mean(fa, batch, TC_ACT_OK)
                s["allowed"].append(ns)
                s["x_allowed"].append(ns / base1)
                for dp in dps.values():
                    _drain(dp)
                base = one(base_fd, ack, args.deny_repeat, TC_ACT_OK)
                ns = one(fd, deny_pkt, args.deny_repeat, TC_ACT_SHOT)
                s["denied"].append(ns)
                s["x_denied"].append(ns / base)
                base = one(base_fd, ack, args.repeat, TC_ACT_OK)
                ns = one(fa, ack, args.repeat, TC_ACT_OK)
                s["established"].append(ns)
                s["x_established"].append(ns / base)
            for dp in dps.values():
                _drain(dp)
            r = {k: median(v) for k, v in s.items()}
            totals: dict[str, int] = defaultdict(int)
            for dp in dps.values():
                for k, v in _counters(dp).items():
                    totals[k] += v
            r.update(direction=direction, **totals)
            results.append(r)
        finally:
            for dp in dps.values():
                dp.close()
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=1_000_000)
    ap.add_argument("--deny-repeat", type=int, default=10_000)
    ap.add_argument("--flows", type=int, default=5000, help="new flows per measurement")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    from netcc.loader.bpffs import ensure_bpffs

    ensure_bpffs()
    pin_cpu()
    header("events_cost: ns per packet with flow events off, on, and unbudgeted")
    print(f"cluster: {SWEEP_SHAPE}, {args.rules} rules; new allowed: {args.flows:,} SYNs x")
    print(f"repeat=1; new denied: repeat={args.deny_repeat:,}; established: repeat={args.repeat:,}")
    print(f"each figure: median of {MEASUREMENTS} measurements\n")
    rows = []
    with tempfile.TemporaryDirectory(prefix="netcc-bench-") as tmp:
        base_obj, base_fd = build_baseline(Path(tmp))
        try:
            for name, events in VARIANTS.items():
                spec = sweep_spec(args.rules, args.seed)
                spec["spec"]["observability"] = {"flowEvents": events}
                out, _ = compiled(spec)
                for r in measure(out, base_fd, args):
                    rows.append(
                        [
                            name,
                            r["direction"],
                            f"{r['allowed']:.1f}",
                            f"{r['x_allowed']:.2f}x",
                            f"{r['denied']:.1f}",
                            f"{r['x_denied']:.2f}x",
                            f"{r['established']:.1f}",
                            f"{r['x_established']:.2f}x",
                            f"{r['sent']:,}",
                            f"{r['lost_budget']:,}",
                            f"{r['lost_ring']:,}",
                        ]
                    )
                print(f"measured events {name}", flush=True)
        finally:
            base_obj.close()
    print()
    cols = ["events", "policy", "new allowed ns", "x base", "new denied ns", "x base"]
    cols += ["established ns", "x base", "events written", "cut (budget)", "cut (ring full)"]
    print(table(cols, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
