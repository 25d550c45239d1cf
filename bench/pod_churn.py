"""Pod churn from outside, as a user would run it: `netcc lab up SPEC`, then CYCLES rounds of
`netcc lab pod add` and `netcc lab pod del` (round robin over the nodes and the classes of
OUT's classes.json, up to --live pods alive at once), then checks that nothing is left and that
no address was handed out while a living pod held it.

    python3 bench/pod_churn.py [--spec examples/pods.yaml] [--cycles 500] [--live 6] [--json]

Needs root and no lab up (it brings one up and always takes it down). Checked after the last
del, on every node: no `netcc-rpod-*` namespace, no host veth (`nc*`), no route into a class
block, no address record under the daemon's `ipam/`, no spooled DEL, as many entries in the
pinned `netcc_endpoints` map as before the first add, no pod in `lab status` (the daemon's
report included) and none in the lab's pod API. Every address is checked against its class's
block on its node. Exit 0 when all holds, 1 otherwise; the report gives ADD and DEL latency
(the whole `netcc lab pod add|del` command).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

LAB = Path(os.environ.get("NETCC_LAB_DIR", "/run/netcc/lab"))


def netcc(*args: str) -> str:
    """Run `netcc ARGS`; its stdout, or SystemExit with its stderr."""
    proc = subprocess.run(["netcc", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"netcc {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def run_json(*argv: str) -> Any:
    return json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)


def classes(out: Path) -> list[dict[str, Any]]:
    """Each class: key, the labels a pod needs, its block as (offset, size)."""
    doc = json.loads((out / "classes.json").read_text())
    return [
        {
            "key": c["key"],
            "labels": ",".join(f"{k}={v}" for k, v in sorted(c["match"].items())),
            "block": (c["block"]["offset"], c["block"]["size"]),
        }
        for c in doc["classes"]
    ]


def node_holdings(node: str, netns: str, pod_cidr: IPv4Network, blocks: list) -> dict:
    """What `node` holds for runtime pods (compared before and after the churn)."""
    links = [
        link["ifname"]
        for link in run_json("ip", "netns", "exec", netns, "ip", "-j", "link", "show")
        if link["ifname"].startswith("nc")
    ]
    nets = [IPv4Network((int(pod_cidr.network_address) + off, 32 - (size - 1).bit_length()))
            for off, size in blocks]  # fmt: skip
    routes = [
        r["dst"]
        for r in run_json("ip", "netns", "exec", netns, "ip", "-j", "route", "show")
        if r["dst"] != "default" and any(IPv4Network(r["dst"]).subnet_of(n) for n in nets)
    ]
    base = LAB / "nodes" / node
    records = sorted(p.name for p in (base / "data" / "ipam").glob("*/*") if p.name[0] != ".")
    spool = base / "pending-del"
    state = json.loads((LAB / "state.json").read_text())
    load = next(r for r in state["resources"] if r["kind"] == "load" and r["node"] == node)
    (pin,) = Path(load["pin_root"]).rglob("netcc_endpoints")
    entries = run_json("bpftool", "-j", "map", "dump", "pinned", str(pin))
    return {
        "links": links,
        "routes": routes,
        "records": records,
        "spooled": sorted(os.listdir(spool)) if spool.is_dir() else [],
        "endpoints": len(entries),
    }


def holdings(nodes: dict[str, dict], blocks: list) -> dict[str, Any]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    pods_file = LAB / "pods.json"
    return {
        "nodes": {n: node_holdings(n, d["netns"], d["podCIDR"], blocks) for n, d in nodes.items()},
        "netns": sorted(x.split()[0] for x in listed.splitlines() if "netcc-rpod" in x),
        "pod api": sorted(json.loads(pods_file.read_text()).get("pods", {}))
        if pods_file.exists()
        else [],
    }


def churn(cycles: int, live: int, nodes: dict[str, dict], kinds: list[dict]) -> dict[str, Any]:
    """The add/del rounds; fails (SystemExit) at once on an address given twice."""
    holders: dict[str, str] = {}
    alive: list[tuple[str, str]] = []
    adds: list[float] = []
    dels: list[float] = []
    outside: list[str] = []

    def delete() -> None:
        key, ip = alive.pop(0)
        started = time.perf_counter()
        netcc("lab", "pod", "del", key)
        dels.append(time.perf_counter() - started)
        del holders[ip]

    for i, (node, kind) in zip(range(cycles), itertools.cycle(itertools.product(nodes, kinds))):
        ns = kind["key"].split("/")[0]
        key = f"{ns}/churn-{i}"
        started = time.perf_counter()
        doc = json.loads(
            netcc("lab", "pod", "add", key, "--node", node, "--labels", kind["labels"], "--json")
        )
        adds.append(time.perf_counter() - started)
        (ip,) = doc["ips"]
        if ip in holders:
            raise SystemExit(f"{ip} handed to {key} while {holders[ip]} holds it")
        off, size = kind["block"]
        cidr = nodes[node]["podCIDR"]
        block = IPv4Network((int(cidr.network_address) + off, 32 - (size - 1).bit_length()))
        if doc["class"] != kind["key"] or IPv4Address(ip) not in block:
            outside.append(f"{key}: {ip} class {doc['class']}, expected {kind['key']} {block}")
        holders[ip] = key
        alive.append((key, ip))
        if len(alive) > live:
            delete()
        if (i + 1) % 50 == 0:
            print(f"  {i + 1}/{cycles} cycles", file=sys.stderr)
    while alive:
        delete()

    def ms(xs: list[float], q: float) -> float:
        return round(statistics.quantiles(xs, n=100)[int(q) - 1] * 1000, 1)

    return {
        "cycles": cycles,
        "addresses": len(adds),
        "misplaced": outside,
        "add_ms": {"p50": ms(adds, 50), "p99": ms(adds, 99)},
        "del_ms": {"p50": ms(dels, 50), "p99": ms(dels, 99)},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", default="examples/pods.yaml")
    ap.add_argument("--cycles", type=int, default=500)
    ap.add_argument("--live", type=int, default=6, help="pods alive at once at most")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    started = time.perf_counter()
    netcc("lab", "up", args.spec)
    try:
        status = json.loads(netcc("lab", "status", "--json"))
        out = Path(status["out"])
        kinds = classes(out)
        nodes = {}
        for name, n in status["nodes"].items():
            node = json.loads((out / "nodes" / name / "node.json").read_text())
            nodes[name] = {"netns": n["netns"], "podCIDR": IPv4Network(node["podCIDR"])}
        blocks = [k["block"] for k in kinds]
        before = holdings(nodes, blocks)
        report = churn(args.cycles, args.live, nodes, kinds)
        after = holdings(nodes, blocks)
        status = json.loads(netcc("lab", "status", "--json"))
        daemon_pods = {
            n: info["nodes"][0]["daemon"]["pods"] for n, info in status["loader"].items()
        }
        problems = list(report["misplaced"])
        if after != before:
            problems.append(f"left behind: before {before}, after {after}")
        if status["pods"] or any(daemon_pods.values()):
            problems.append(f"pods still listed: {status['pods']} {daemon_pods}")
        report |= {
            "nodes": len(nodes),
            "classes": len(kinds),
            "leftovers": problems,
            "seconds": round(time.perf_counter() - started, 1),
        }
    finally:
        subprocess.run(["netcc", "lab", "down"], capture_output=True, check=False)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"{report['cycles']} add/del cycles on {report['nodes']} nodes "
            f"({report['classes']} classes) in {report['seconds']} s: "
            f"{report['addresses']} addresses, none handed out twice; "
            f"ADD p50 {report['add_ms']['p50']} ms p99 {report['add_ms']['p99']} ms, "
            f"DEL p50 {report['del_ms']['p50']} ms p99 {report['del_ms']['p99']} ms"
        )
        print("problems: " + ("; ".join(problems) if problems else "none, nothing left behind"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
