"""The `netcc lab` commands: up, probe, status, wg, pod add|del|ready, daemon restart, down.
Wired in by `add_lab_commands`.

Test hooks (environment): `NETCC_LAB_FAIL_AFTER=N` makes `up` fail after N namespaces, and
with `NETCC_LAB_FAIL_HARD=1` the process kills itself there (SIGKILL) instead of raising, so
that `down` has to clean up a lab that crashed half-way.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

EXIT_DENIED = 4


def add_lab_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add `lab up|probe|status|wg|pod|daemon|down` to the `netcc` command line."""
    lab = subparsers.add_parser(
        "lab", help="a spec's cluster made of network namespaces, with the datapath loaded"
    )
    sub = lab.add_subparsers(dest="lab_command", required=True)

    u = sub.add_parser("up", help="build the cluster, compile the spec and load every node")
    u.add_argument("spec")
    u.add_argument(
        "--external",
        nargs="+",
        action="extend",
        default=[],
        metavar="IP",
        help="addresses of an outside host (netcc-external)",
    )
    u.add_argument("--artifacts", metavar="OUT", help="load OUT instead of compiling SPEC")
    u.add_argument("--no-load", action="store_true", help="no loader: a lab without policy")
    u.add_argument("--json", action="store_true", help="print the inventory as JSON")
    u.set_defaults(func=cmd_up)

    p = sub.add_parser("probe", help="a real TCP or UDP exchange; exit 0 allowed, 4 denied")
    p.add_argument("src", help="namespace/workload, node name or external IP")
    p.add_argument(
        "dst",
        help="namespace/workload, node name or external IP; a service: svc:NS/NAME, its "
        "ClusterIP, or a node with a nodePort as PORT",
    )
    p.add_argument("port_proto", metavar="PORT/PROTO", help="e.g. 8080/tcp or 53/udp")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for the echo")
    p.add_argument(
        "--count", type=int, default=1, help="connections to a service, counted per backend"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_probe)

    s = sub.add_parser("status", help="the lab's inventory and each node's loader status")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)

    w = sub.add_parser("wg", help="`wg show` of a node's WireGuard tunnel, beside its daemon")
    w.add_argument("node")
    w.add_argument("wg_args", nargs="*", metavar="ARG", help="after `wg show IFNAME`, e.g. peers")
    w.set_defaults(func=cmd_wg)

    pod = sub.add_parser("pod", help="runtime pods: networked through the node's CNI daemon")
    psub = pod.add_subparsers(dest="pod_command", required=True)
    pa = psub.add_parser("add", help="make the pod's namespace and run CNI ADD on its node")
    pa.add_argument("pod", metavar="NS/NAME")
    pa.add_argument("--node", required=True, metavar="NODE")
    pa.add_argument("--labels", default="", metavar="K=V[,K=V...]", help="the pod's labels")
    pa.add_argument(
        "--ready",
        action="store_true",
        help="publish the pod ready in its services' EndpointSlices at once (default: not "
        "ready, as a pod whose readiness probe has not passed yet; see `lab pod ready`)",
    )
    pa.add_argument("--json", action="store_true")
    pa.set_defaults(func=cmd_pod_add)
    pd = psub.add_parser("del", help="run CNI DEL and remove the pod's namespace")
    pd.add_argument("pod", metavar="NS/NAME")
    pd.add_argument("--json", action="store_true")
    pd.set_defaults(func=cmd_pod_del)
    pr = psub.add_parser(
        "ready",
        help="set whether a runtime pod is ready (its readiness probe passes), as its "
        "services' EndpointSlices publish it; returns once every node daemon uses the change",
    )
    pr.add_argument("pod", metavar="NS/NAME")
    pr.add_argument("ready", choices=("true", "false"))
    pr.add_argument(
        "--no-wait", action="store_true", help="return at once, without waiting for the daemons"
    )
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(func=cmd_pod_ready)

    dm = sub.add_parser("daemon", help="the node daemons that serve runtime pods")
    dsub = dm.add_subparsers(dest="daemon_command", required=True)
    dr = dsub.add_parser(
        "restart", help="stop a node's daemon if it runs and start it again; waits until ready"
    )
    dr.add_argument("node")
    dr.set_defaults(func=cmd_daemon_restart)

    d = sub.add_parser("down", help="remove everything the lab made")
    d.set_defaults(func=cmd_down)


def _error(error: BaseException | str) -> int:
    print(f"netcc: error: {error}", file=sys.stderr)
    for note in getattr(error, "__notes__", []):
        print(note, file=sys.stderr)
    return 1


def _known_errors() -> tuple[type[BaseException], ...]:
    from netcc.contract.lock import LockError
    from netcc.lab.core import LabBuildError, LabError, LabPlanError, LabStateError
    from netcc.loader.libbpf import BpfError

    return LabError, LabPlanError, LabStateError, LabBuildError, LockError, BpfError


def _print_inventory(inv: dict[str, Any]) -> None:
    for name, n in inv.get("nodes", {}).items():
        print(f"node     {name:<28} {n['address']:<16} {n['netns']}")
    for key, w in inv.get("workloads", {}).items():
        print(f"pod      {key:<28} {','.join(w['ips']):<16} {w['netns']}  (on {w['node']})")
    for key, p in inv.get("pods", {}).items():
        ips = ",".join(p["ips"]) or "-"
        print(f"pod      {key:<28} {ips:<16} {p['netns']}  (on {p['node']}, class {p['class']})")
    if "external" in inv:
        e = inv["external"]
        print(f"external {'':<28} {','.join(e['ips']):<16} {e['netns']}")


def cmd_up(args: argparse.Namespace) -> int:
    from netcc.lab import core as lab

    fail_after = os.environ.get("NETCC_LAB_FAIL_AFTER")
    try:
        report = lab.up(
            args.spec,
            external=args.external,
            artifacts=args.artifacts,
            load=not args.no_load,
            fail_after=int(fail_after) if fail_after else None,
            hard=os.environ.get("NETCC_LAB_FAIL_HARD") == "1",
        )
    except _known_errors() as e:
        return _error(e)
    if args.json:
        print(json.dumps(report.inventory, indent=2))
    else:
        _print_inventory(report.inventory)
        if report.out:
            print(f"loaded {report.out} on {len(report.loaded)} node(s)")
        else:
            print("no loader: every packet passes")
    t = report.timings
    parts = ", ".join(f"{k} {v:.2f} s" for k, v in t.items() if k != "total")
    print(f"netcc: lab up in {t['total']:.2f} s ({parts})", file=sys.stderr)
    return 0


def _port_proto(text: str) -> tuple[int, str]:
    """PORT/PROTO in ASCII (`int()` would take '٦'), protocol defaulting to TCP."""
    from netcc.fsguard import shown

    port, _, proto = text.partition("/")
    proto = (proto or "TCP").upper() if proto.isascii() else ""
    if not (port.isascii() and port.isdigit() and len(port) <= 5) or proto not in PROTOCOLS:
        raise ValueError(f"{shown(text)}: expected PORT/PROTO, e.g. 8080/tcp or 53/udp")
    return int(port), proto


PROTOCOLS = ("TCP", "UDP")  # what lab probes speak


def cmd_probe(args: argparse.Namespace) -> int:
    from netcc.lab import core as lab
    from netcc.lab import services

    try:
        port, proto = _port_proto(args.port_proto)
        s = services.probe_running_lab(
            args.src, args.dst, port, proto, max(args.count, 1), args.timeout
        )
        if s is not None:
            return _print_service_probe(s, args.json)
        r = lab.probe(args.src, args.dst, port, proto, timeout=args.timeout)
    except (ValueError, *_known_errors()) as e:
        return _error(e)
    if args.json:
        print(json.dumps(r.to_json(), indent=2))
    else:
        verdict = "allowed" if r.allowed else "denied"
        print(
            f"{r.src} ({r.src_ip}) -> {r.dst} ({r.dst_ip}) {r.port}/{r.protocol}: "
            f"{verdict} ({r.detail})"
        )
        for h in r.decided_by:
            mark = "pass" if h["passed"] else "DROP"
            print(f"  {h['node']} {h['direction']:<7} {mark}  verdict {h['verdict']}  {h['rule']}")
        if r.counted:
            moved = ", ".join(f"{c['node']} {c['name']} +{c['packets']}" for c in r.counted)
            print(f"  counters moved on the loaded nodes: {moved}")
        if r.trace_error:
            print(f"  warning: no trace of the compiled datapath: {r.trace_error}")
        if r.trace_agrees is False:
            print("  warning: the compiled datapath's trace (above) disagrees with the packets")
    return 0 if r.allowed else EXIT_DENIED


def _print_service_probe(r: Any, as_json: bool) -> int:
    """A service probe: how many connections were answered, and by which backend."""
    doc = r.to_json()
    if as_json:
        print(json.dumps(doc, indent=2))
    else:
        verdict = "allowed" if r.allowed else "denied"
        print(
            f"{r.src} ({r.src_ip}) -> {doc['service']}: {verdict} "
            f"({doc['answered']}/{doc['connections']} answered)"
        )
        for backend, n in doc["backends"].items():
            print(f"  backend {backend:<28} {n}")
        for detail, n in doc["failed"].items():
            print(f"  failed  {detail:<28} {n}")
    return 0 if r.allowed else EXIT_DENIED


def cmd_status(args: argparse.Namespace) -> int:
    from netcc.lab import core as lab

    try:
        doc = lab.status()
    except _known_errors() as e:
        return _error(e)
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(f"lab {doc['status']}" + (f", artifacts {doc['out']}" if doc.get("out") else ""))
    _print_inventory(doc)
    for node, info in doc.get("loader", {}).items():
        print(f"loader   {node:<28} {_loader_summary(info)}")
    return 0


def cmd_wg(args: argparse.Namespace) -> int:
    import subprocess

    from netcc.lab import wireguard
    from netcc.lab.state import STATE_DIR, LabState
    from netcc.loader.wireguard.backend import BackendError

    try:
        print(wireguard.show_node(LabState.load(STATE_DIR), args.node, *args.wg_args), end="")
    except subprocess.CalledProcessError as e:
        return _error(f"wg show failed: {(e.stderr or '').strip() or e}")
    except (ValueError, BackendError, *_known_errors()) as e:
        return _error(e)
    return 0


def _loader_summary(info: Any) -> str:
    """One line from what the loader says about a node (`--json` has all of it)."""
    if isinstance(info, dict) and isinstance(info.get("nodes"), list):  # its status report
        lines = []
        for n in info["nodes"]:
            hooks = [h for i in n.get("interfaces", []) for h in i.get("hooks", {}).values()]
            bits = [
                "OK" if n.get("ok") else "NOT OK",
                f"artifacts {str(n.get('digest', ''))[:12]} ({n.get('mode')})",
                f"{len(n.get('interfaces', []))} interface(s)",
                f"{sum(1 for h in hooks if h.get('ok'))}/{len(hooks)} hook(s) ok",
            ]
            if n.get("pending"):
                bits.append(f"{len(n['pending'])} pod(s) pending")
            bits += [f"problem: {p}" for p in n.get("problems", [])]
            lines.append(", ".join(bits))
        return "; ".join(lines)
    if isinstance(info, dict) and "status" in info:  # what apply returned
        hooks, endpoints = info.get("hooks") or [], info.get("endpoints") or []
        return (
            f"{info['status']}, artifacts {str(info.get('digest', ''))[:12]} "
            f"({info.get('mode')}), {len(hooks)} hook(s), {len(endpoints)} endpoint(s)"
        )
    return json.dumps(info)


def _print_pod(doc: dict[str, Any], as_json: bool, verb: str) -> None:
    if as_json:
        print(json.dumps(doc, indent=2))
    else:
        ips = ",".join(doc["ips"]) or "-"
        ready = {True: ", ready", False: ", not ready"}.get(doc.get("ready"), "")
        print(
            f"{verb} pod {doc['pod']} on {doc['node']}: {ips} class {doc['class']} "
            f"({doc['netns']}){ready}"
        )


def cmd_pod_add(args: argparse.Namespace) -> int:
    from netcc.lab import pods

    try:
        doc = pods.add(args.pod, args.node, pods.parse_labels(args.labels), ready=args.ready)
    except (pods.PodError, *_known_errors()) as e:
        return _error(e)
    _print_pod(doc, args.json, "added")
    return _not_applied(doc)


def _not_applied(doc: dict[str, Any]) -> int:
    """1, and why, when daemons did not show a readiness change in time."""
    from netcc.lab import pods

    if not doc.get("notApplied"):
        return 0
    print(
        f"netcc: error: the daemons of {', '.join(doc['notApplied'])} did not show the change "
        f"within {pods.APPLY_WAIT:g} s (their logs: /run/netcc/lab/nodes/NODE/daemon.log)",
        file=sys.stderr,
    )
    return 1


def cmd_pod_del(args: argparse.Namespace) -> int:
    from netcc.lab import pods

    try:
        doc = pods.delete(args.pod)
    except (pods.PodError, *_known_errors()) as e:
        return _error(e)
    _print_pod(doc, args.json, "deleted")
    return 0


def cmd_pod_ready(args: argparse.Namespace) -> int:
    from netcc.lab import pods

    try:
        doc = pods.set_ready(args.pod, args.ready == "true", wait=not args.no_wait)
    except (pods.PodError, *_known_errors()) as e:
        return _error(e)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"pod {doc['pod']} on {doc['node']}: {'ready' if doc['ready'] else 'not ready'}")
    return _not_applied(doc)


def cmd_daemon_restart(args: argparse.Namespace) -> int:
    from netcc.lab import runtime
    from netcc.lab.core import WIREGUARD_BACKEND
    from netcc.lab.state import STATE_DIR, LabState

    try:
        pid = runtime.restart_daemon(LabState.load(STATE_DIR), args.node, WIREGUARD_BACKEND)
    except (runtime.LabRuntimeError, *_known_errors()) as e:
        return _error(e)
    print(f"daemon of {args.node} running (pid {pid}), its datapath applied")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from netcc.lab import core as lab

    try:
        report = lab.down()
    except _known_errors() as e:
        return _error(e)
    for what in report.removed:
        print(f"removed {what}")
    for warning in report.warnings:
        print(f"netcc: warning: {warning}", file=sys.stderr)
    for problem in report.problems:
        print(f"netcc: error: {problem}", file=sys.stderr)
    return 1 if report.problems else 0
