"""Time from an endpoint change to the datapath using it, in the lab (issue 14).

`netcc lab up` of a spec with a service over a class (tests/daemon/dynsvc_spec.py), web pods
added on the three nodes; then CHANGES times: one web pod's readiness is flipped the way
`netcc lab pod ready` does it (the lab's pod list rewritten under the lab's lock), and the
clock runs until every node's pinned `netcc_lb_maglev` row of the service port holds (or no
longer holds) that pod's backend number: the kernel's row, read with bpf(2) from outside, is
what a new flow's lookup uses.

The path measured: the lab's API server noticing its pod list (it polls the file's stat every
20 ms: on average half of that is waiting), the watch event to every daemon, the reconciler,
and the map writes. The daemons' own part (event received to maps written) is printed too,
from their reports. Needs root and no lab up; takes about a minute.

    python3 bench/endpoint_latency.py [--changes 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from ipaddress import IPv4Address
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "tests" / "daemon"))

from dynsvc_spec import SPEC  # noqa: E402


def netcc(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "netcc", *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"netcc {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def quantile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--changes", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (the lab)")
    from netcc.contract import services as dyn
    from netcc.contract.layoutfile import Layout
    from netcc.lab.kubeapi import read_pods, write_pods
    from netcc.lab.state import STATE_DIR, LabState, lab_lock
    from netcc.loader.maps import BpfMap

    tmp = Path(tempfile.mkdtemp(prefix="netcc-epbench-"))
    spec = tmp / "dynsvc.yaml"
    spec.write_text(SPEC)
    out = tmp / "out"
    netcc("compile", str(spec), "-o", str(out))
    os.environ.setdefault("NETCC_CNI_BIN", str(REPO / "build" / "netcc-cni"))
    netcc("lab", "up", str(spec), "--artifacts", str(out))
    try:
        pods = {}
        for node in ("node-1", "node-2", "node-3"):
            key = f"shop/web-{node}"
            doc = json.loads(
                netcc("lab", "pod", "add", key, "--node", node, "--labels", "app=web", "--json")
            )
            pods[key] = doc["ips"][0]
            netcc("lab", "pod", "ready", key, "true")
        services = dyn.load((out / dyn.SERVICES_FILE).read_bytes())
        port = next(p for p in services.ports if p.service == "shop/web" and p.port == 80)
        state = LabState.load(STATE_DIR)
        layout = Layout.from_file(out / "bpf" / "layout.json")
        rows = []
        for load in state.of_kind("load"):
            pins = list(Path(load["pin_root"]).rglob("netcc_lb_maglev"))
            rows.append(BpfMap.pinned(pins[0], layout))
        key_of = rows[0].pack_key({"id": port.cluster_row})

        def holds(m: BpfMap, bid: int) -> bool:
            raw = m.get(key_of)
            return raw is not None and bid in m.unpack_value(raw)["backends"]

        samples = []
        names = sorted(pods)
        for i in range(args.changes):
            key = names[i % len(names)]
            ip = pods[key]
            bid = services.backend_id(IPv4Address(ip), 8080, "TCP")
            want = not holds(rows[0], bid)
            with lab_lock(state.path.parent):
                listed = read_pods(state.path.parent)
                listed[key]["ready"] = want
                t0 = time.monotonic()
                write_pods(state.path.parent, listed)
            pending = list(rows)
            while pending:
                pending = [m for m in pending if holds(m, bid) != want]
                if time.monotonic() - t0 > 10:
                    raise SystemExit(f"change {i} not applied within 10 s")
            samples.append(time.monotonic() - t0)
        reports = [
            json.loads((Path(r["state_dir"]) / "daemon.json").read_text())["services"]
            for r in state.of_kind("load")
        ]
    finally:
        netcc("lab", "down")
    result = {
        "changes": len(samples),
        "end_to_end_ms": {
            "p50": round(quantile(samples, 0.5) * 1e3, 2),
            "p99": round(quantile(samples, 0.99) * 1e3, 2),
            "mean": round(statistics.mean(samples) * 1e3, 2),
        },
        "daemon_write_ms": [
            {
                "p50": round((r["writeSeconds"]["p50"] or 0) * 1e3, 2),
                "p99": round((r["writeSeconds"]["p99"] or 0) * 1e3, 2),
            }
            for r in reports
        ],
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        e = result["end_to_end_ms"]
        print(f"{result['changes']} readiness changes, until every node's row uses them:")
        print(f"  end to end: p50 {e['p50']} ms, p99 {e['p99']} ms, mean {e['mean']} ms")
        for n, d in enumerate(result["daemon_write_ms"], 1):
            print(f"  daemon node-{n}, event to maps written: p50 {d['p50']} ms, p99 {d['p99']} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
