"""CNI ADD latency and sustained pod churn on one node: netcc against bridge + host-local.

One node network namespace runs the node daemon (`netcc load run` on examples/pods.yaml,
compiled here, re-applying every 30 s as in production) behind the real shim
(`build/netcc-cni`, built by `make cni`), and the pod API the lab uses. The same runtime
driver (`netcc.lab.cniruntime.Runtime`, which executes plugins as containerd does: the
config list, the environment, stdin, the result cache) then runs, in the same namespace:

- netcc: ADD = pod labels from the API, class, address on disk, veth, endpoint entry and
  hooks on the applied datapath (incremental), result; DEL the reverse.
- netcc, tc hooks: the same on a node whose hooks are tc filters (`NETCC_ATTACH=tc`, a
  clsact qdisc per pod veth) instead of tcx links (the default where the kernel has tcx).
- netcc, full apply: the same with `NETCC_DAEMON_FULL_APPLY=1`, every ADD and DEL taking the
  loader's full apply (the behaviour before the incremental path), for comparison.
- bridge + host-local (Debian's containernetworking-plugins): a veth into a Linux bridge and
  an address from host-local's files: the reference plugins' own work, no policy.

Each cycle is ADD then DEL of a new container id in a pod namespace made beforehand (the
runtime makes the sandbox before CNI; its cost is not the plugin's). `--cycles` cycles after
`--warmup` untimed ones, one at a time as one runtime worker issues them. Figures: ADD and
DEL wall time per call (p50, p99) and churn = cycles / total time (add+del per second, per
node). Every timing includes exec of the plugin binaries (and, for netcc, the unix socket).

With `--profile`, the netcc daemon times each request's steps (`NETCC_DAEMON_PROFILE`,
`netcc.loader.cni.timing`) and the script prints where an ADD and a DEL spend their time
(medians per step, and the time outside the daemon: runtime, nsenter, shim exec, socket);
`--cprofile DIR` also keeps a cProfile dump per request. Both add a little overhead: compare
figures from runs without them.

Run as root: `python3 bench/cni_churn.py [--cycles 200] [--warmup 10] [--profile]`.
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
import uuid
from pathlib import Path

from benchlib import REPO, compile_in_process, header, table

sys.path.insert(0, str(REPO / "tests" / "daemon"))
from daemon_node import DaemonNode, sh

from netcc.lab.cniruntime import Attachment, Runtime
from netcc.lab.kubeapi import write_pods

REFERENCE = Path("/usr/lib/cni")
SPEC = REPO / "examples" / "pods.yaml"


def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def cycles(
    runtime: Runtime, conf: dict, pods: list[Attachment], n: int, warmup: int
) -> dict[str, float]:
    """`warmup` then `n` ADD+DEL cycles over `pods` (reused namespaces); the figures."""
    adds, dels = [], []
    total = 0.0
    for i in range(warmup + n):
        att = pods[i % len(pods)]
        att = Attachment(uuid.uuid4().hex * 2, att.netns, att.ifname, att.args)
        t0 = time.perf_counter()
        runtime.add(conf, att)
        t1 = time.perf_counter()
        runtime.delete(conf, att)
        t2 = time.perf_counter()
        if i >= warmup:
            adds.append(t1 - t0)
            dels.append(t2 - t1)
            total += t2 - t0
    return {
        "add_p50": statistics.median(adds) * 1e3,
        "add_p99": percentile(adds, 0.99) * 1e3,
        "del_p50": statistics.median(dels) * 1e3,
        "del_p99": percentile(dels, 0.99) * 1e3,
        "churn": n / total,
    }


def breakdown(jsonl: Path, rows: list[tuple[str, dict[str, float]]]) -> str:
    """The daemon's per-step medians (ms) of ADD and DEL from its profile lines, beside the
    wall time the runtime measured (the difference is outside the daemon)."""
    lines = [json.loads(x) for x in jsonl.read_text().splitlines() if x.strip()]
    walls = dict(rows[0][1]) if rows else {}
    out = []
    for cmd, wall in (("ADD", walls.get("add_p50")), ("DEL", walls.get("del_p50"))):
        recs = [r for r in lines if r["cmd"] == cmd]
        if not recs:
            continue
        total = statistics.median(r["total"] for r in recs)
        names = sorted({k for r in recs for k in r["steps"]})
        meds = {k: statistics.median(r["steps"].get(k, 0.0) for r in recs) for k in names}
        out.append(f"{cmd}: {len(recs)} requests, daemon p50 {total:.1f} ms")
        if wall is not None:
            out.append(f"  outside the daemon (runtime, nsenter, shim, socket): {wall - total:.1f}")
        for k, v in sorted(meds.items(), key=lambda kv: -kv[1]):
            out.append(f"  {k:<24} {v:7.2f}")
    return "\n".join(out)


def pod_set(node: DaemonNode, count: int) -> list[Attachment]:
    """`count` pods of class shop/web known to the pod API, each with its namespace."""
    out = []
    for i in range(count):
        name = f"web-{i}"
        uid = str(uuid.uuid4())
        node.pods[f"shop/{name}"] = {
            "namespace": "shop", "name": name, "uid": uid, "labels": {"app": "web"},
            "node": node.node,
        }  # fmt: skip
        ns = f"netcctest-{node.tag}-b{i}"
        sh("ip", "netns", "add", ns)
        node.pods_made.append(ns)
        args = {"IgnoreUnknown": "1", "K8S_POD_NAMESPACE": "shop", "K8S_POD_NAME": name}
        out.append(Attachment("", f"/run/netns/{ns}", "eth0", {**args, "K8S_POD_UID": uid}))
    write_pods(node.kube_dir, node.pods)
    return out


def reference_conf(data: Path) -> dict:
    return {
        "cniVersion": "1.0.0",
        "name": "reference",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cnibench0",
                "isGateway": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": "10.99.0.0/24"}]],
                    "dataDir": str(data),
                },
            }
        ],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--pods", type=int, default=8, help="pod namespaces reused in turn")
    ap.add_argument("--profile", action="store_true", help="time the daemon's steps")
    ap.add_argument("--cprofile", type=Path, help="a cProfile dump per request into DIR")
    ap.add_argument("--only-netcc", action="store_true", help="the incremental row only")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("run as root (network namespaces, BPF)", file=sys.stderr)
        return 2
    header("CNI ADD latency and pod churn: netcc (daemon + shim) vs bridge + host-local")
    work = Path(tempfile.mkdtemp(prefix="ncbench", dir="/tmp"))
    shim = work / "netcc-cni"
    subprocess.run(
        ["make", "-s", "--no-print-directory", "-o", "system-packages", "-C", str(REPO), "cni",
         f"CNI_BIN={shim}"], check=True, capture_output=True,
    )  # fmt: skip
    out = work / "out"
    compile_in_process(SPEC, out)
    node = DaemonNode(out, shim, interval=30.0)
    profile = work / "profile.jsonl"
    if a.profile:
        node.extra_env["NETCC_DAEMON_PROFILE"] = str(profile)
    if a.cprofile:
        a.cprofile.mkdir(parents=True, exist_ok=True)
        node.extra_env["NETCC_DAEMON_CPROFILE"] = str(a.cprofile.resolve())
    rows = []
    steps = ""
    tc_node: DaemonNode | None = None
    try:
        node.create()
        pods = pod_set(node, a.pods)
        runtime = Runtime(
            [str(node.bin), str(REFERENCE)], node.dir / "cache", node.runtime.host_netns
        )
        netcc = node.conflist()
        rows.append(
            ("netcc (incremental ADD/DEL)", cycles(runtime, netcc, pods, a.cycles, a.warmup))
        )
        if a.profile:
            steps = breakdown(profile, rows)
        if not a.only_netcc:
            node.stop()
            node.extra_env = {"NETCC_DAEMON_FULL_APPLY": "1"}
            node.start()
            rows.append(
                ("netcc (full apply per ADD/DEL)", cycles(runtime, netcc, pods, a.cycles, a.warmup))
            )
            ref = reference_conf(node.dir / "host-local")
            rows.append(("bridge + host-local", cycles(runtime, ref, pods, a.cycles, a.warmup)))
        left = node.host_links() + [str(ip) for ip in node.allocations()]
        if not a.only_netcc:
            # A node of its own: the attach mode is the node's, chosen by its first apply.
            tc_node = DaemonNode(out, shim, interval=30.0)
            tc_node.extra_env["NETCC_ATTACH"] = "tc"
            if a.profile:
                tc_node.extra_env["NETCC_DAEMON_PROFILE"] = str(work / "profile-tc.jsonl")
            tc_node.create()
            tc_pods = pod_set(tc_node, a.pods)
            tc_runtime = Runtime(
                [str(tc_node.bin)], tc_node.dir / "cache", tc_node.runtime.host_netns
            )
            tc_row = cycles(tc_runtime, tc_node.conflist(), tc_pods, a.cycles, a.warmup)
            rows.insert(1, ("netcc, tc hooks (NETCC_ATTACH=tc)", tc_row))
            if a.profile:
                steps += "\n\ntc hooks:\n" + breakdown(work / "profile-tc.jsonl", rows[1:2])
            left += tc_node.host_links() + [str(ip) for ip in tc_node.allocations()]
        if left:
            print(f"# left behind by netcc: {left}")
    finally:
        ns = f"--net=/run/netns/{node.netns}"
        subprocess.run(["nsenter", ns, "ip", "link", "del", "cnibench0"], capture_output=True)
        node.remove()
        if tc_node is not None:
            tc_node.remove()
        subprocess.run(["rm", "-rf", str(work)], check=False)
    print(f"{a.cycles} cycles (after {a.warmup} warm-up), one at a time, {a.pods} pod namespaces\n")
    keys = ("add_p50", "add_p99", "del_p50", "del_p99", "churn")
    heads = ["plugins", "ADD p50 ms", "ADD p99 ms", "DEL p50 ms", "DEL p99 ms", "churn add+del/s"]
    print(table(heads, [(name, *(f"{f[k]:.1f}" for k in keys)) for name, f in rows]))
    if steps:
        print("\nwhere the time goes (medians, ms; warm-up requests included)\n" + steps)
    print("\n" + json.dumps({name: f for name, f in rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
