"""Verifier cost of the datapath as policies grow: `verified_insns` per program.

For specs with 10, 100, 1,000 and 10,000 rules (ingress + egress rules summed; the cluster
stays the same, see `benchlib.SWEEP_SHAPE`), the object is loaded with the node that has the
most policy entries (`netcc.loader.datapath.NodeDatapath`: load, then fill that node's maps)
and `prog_info(fd)["verified_insns"]` is read for netcc_from_container and netcc_to_container.
Map entry counts are printed per node.

Target (from the issue): verified_insns <= 200,000 at 10,000 rules.

Run as root: `python3 bench/verifier.py` (compiled outputs are reused from $NETCC_BENCH_DIR,
default /tmp/netcc-bench; the first run compiles them, about a minute).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    RULE_COUNTS,
    SWEEP_SHAPE,
    compiled,
    header,
    map_counts,
    sweep_spec,
    table,
    verdict,
)

TARGET_INSNS = 200_000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", default=",".join(map(str, RULE_COUNTS)))
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    from netcc.contract.programs import POD_PROGRAMS as PROGRAMS
    from netcc.loader.bpffs import ensure_bpffs
    from netcc.loader.datapath import NodeDatapath

    ensure_bpffs()
    header("verifier: verified_insns per program vs policy rules")
    print(f"cluster: {SWEEP_SHAPE} (fixed); rules = ingress + egress rules of all policies\n")
    insn_rows, worst = [], 0
    all_counts: dict[int, dict[str, dict[str, int]]] = {}
    for rules in (int(r) for r in args.rules.split(",")):
        spec = sweep_spec(rules, args.seed)
        out, took = compiled(spec)
        counts = map_counts(out)
        node = max(counts, key=lambda n: counts[n]["netcc_policy"])
        start = time.perf_counter()
        with NodeDatapath(out, node) as dp:
            load_s = time.perf_counter() - start
            info = dp.programs()
        for prog in PROGRAMS:
            i = info[prog]
            worst = max(worst, i["verified_insns"]) if rules == max(RULE_COUNTS) else worst
            insn_rows.append(
                [
                    rules,
                    len(spec["spec"]["policies"]),
                    prog,
                    f"{i['verified_insns']:,}",
                    f"{i['xlated_len'] // 8:,}",
                    f"{i['jited_len']:,}",
                    node,
                    f"{load_s:.2f}",
                ]
            )
        all_counts[rules] = counts
        print(f"compiled {rules} rules in {took:.1f} s" if took else f"reused {out}", flush=True)
    print()
    cols = [
        "rules",
        "policies",
        "program",
        "verified_insns",
        "xlated insns",
        "JIT bytes",
        "node",
        "load+fill s",
    ]
    print(table(cols, insn_rows))
    print()
    print(
        "Map entries per node. endpoints and ipcache do not depend on the policies; cidr is\n"
        "netcc_ipcache_cidr, exact is netcc_policy_exact (hash: single ports), LPM is\n"
        "netcc_policy (trie: port ranges and all-port/all-protocol entries).\n"
    )
    sizes = list(all_counts)
    last = all_counts[sizes[-1]]
    per_rules = [
        m
        for m in ("netcc_ipcache_cidr", "netcc_policy_exact", "netcc_policy")
        if m in last[next(iter(last))]
    ]
    rows = [
        [
            node,
            f"{last[node]['netcc_endpoints']:,}",
            f"{last[node]['netcc_ipcache']:,}",
            *(f"{all_counts[r][node].get(m, 0):,}" for m in per_rules for r in sizes),
        ]
        for node in last
    ]
    short = {"netcc_ipcache_cidr": "cidr", "netcc_policy_exact": "exact", "netcc_policy": "LPM"}
    cols = ["node", "endpoints", "ipcache"]
    cols += [f"{short[m]} @{r}" for m in per_rules for r in sizes]
    print(table(cols, rows))
    print()
    if str(max(RULE_COUNTS)) in args.rules.split(","):
        print(
            f"target verified_insns <= {TARGET_INSNS:,} at {max(RULE_COUNTS):,} rules: "
            f"{worst:,}, {verdict(worst <= TARGET_INSNS)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
