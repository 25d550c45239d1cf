"""The `netcc load` commands: apply, run, status, detach (what runs on every node).

`cli/main.py` calls `add_load_commands(subparsers)`. Each command returns its exit code:
0 on success (status: everything expected is attached), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _node_args(p: argparse.ArgumentParser, node_required: bool) -> None:
    p.add_argument("--node", required=node_required, metavar="NAME", help="node name in OUT")
    p.add_argument(
        "--pin-root",
        metavar="DIR",
        help="bpffs directory for this node's pins (default /sys/fs/bpf/netcc/NODE)",
    )
    p.add_argument(
        "--state-dir",
        metavar="DIR",
        help="where the applied state is kept (default $NETCC_STATE_BASE or /run/netcc, /NODE)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _print_json(doc: Any) -> None:
    print(json.dumps(doc, indent=2, sort_keys=True))


def _error(args: argparse.Namespace, message: str, log: str = "", **extra: Any) -> int:
    if log:
        print(log.rstrip(), file=sys.stderr)
    print(f"netcc: error: {message}", file=sys.stderr)
    if args.json:
        _print_json({"ok": False, "error": message, "log": log, **extra})
    return 1


def cmd_apply(args: argparse.Namespace) -> int:
    from netcc.loader.apply import ApplyError, apply, format_result
    from netcc.loader.libbpf import BpfError

    try:
        result = apply(
            args.out,
            args.node,
            pin_root=args.pin_root,
            state_dir=args.state_dir,
            wireguard=args.wireguard,
        )
    except ApplyError as e:
        return _error(args, str(e), e.log, rolled_back=e.rolled_back)
    except (BpfError, OSError, ValueError) as e:
        return _error(args, str(e), getattr(e, "log", ""))
    for w in result.warnings:
        print(f"netcc: warning: {w}", file=sys.stderr)
    if args.json:
        _print_json({"ok": True, **result.to_json()})
    else:
        print(format_result(result))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from netcc.loader.libbpf import BpfError
    from netcc.loader.status import StatusError, format_status, status

    try:
        report = status(args.node, args.pin_root, args.state_dir)
    except (StatusError, OSError, ValueError, BpfError) as e:
        return _error(args, str(e))  # exit 1: not ready
    if args.json:
        _print_json(report)
    else:
        print(format_status(report, args.all))
    return 0 if report["ok"] else 1


def cmd_detach(args: argparse.Namespace) -> int:
    from netcc.loader.detach import detach
    from netcc.loader.libbpf import BpfError

    try:
        report = detach(args.node, args.pin_root, args.state_dir)
    except (OSError, ValueError, BpfError) as e:
        return _error(args, str(e))
    if args.json:
        _print_json(report)
    else:
        if not report["nodes"]:
            print("netcc: nothing applied in this network namespace")
        for n in report["nodes"]:
            print(f"netcc: {n['node']}: detached")
            for d in n["done"]:
                print(f"  {d}")
            for p in n["problems"]:
                print(f"netcc: warning: {n['node']}: {p}", file=sys.stderr)
    return 0 if report["ok"] else 1


def _flows_socket(given: str | None, cni_socket: Any) -> Any:
    """--flows-socket: the path given, None for `off`, else flows.sock beside the CNI socket
    (/run/netcc/flows.sock by default)."""
    from pathlib import Path

    from netcc.contract.flows import SOCKET_NAME

    if given == "off":
        return None
    return Path(given) if given else cni_socket.parent / SOCKET_NAME


def cmd_run(args: argparse.Namespace) -> int:
    """The node daemon, until SIGTERM or SIGINT (`netcc.loader.daemon.run`)."""
    import logging
    import signal
    from pathlib import Path

    from netcc.loader.cni.server import DEFAULT_SOCKET, ServerError
    from netcc.loader.daemon.metrics import parse_address
    from netcc.loader.daemon.run import DATA_BASE, NodeRunner, RunConfig
    from netcc.loader.kube import KubeClient, KubeError

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s netcc %(name)s %(levelname)s %(message)s"
    )
    try:
        parse_address(args.metrics_address)  # a bad one is an error here, not a log line later
        pods = KubeClient(args.kube) if args.kube else KubeClient.in_cluster()
        cfg = RunConfig(
            out=Path(args.out),
            node=args.node,
            socket=Path(args.socket or DEFAULT_SOCKET),
            data_dir=Path(args.data_dir) if args.data_dir else DATA_BASE / args.node,
            pin_root=args.pin_root,
            state_dir=args.state_dir,
            conf_dir=Path(args.cni_conf_dir) if args.cni_conf_dir else None,
            wireguard=args.wireguard,
            interval=args.interval,
            metrics_address=args.metrics_address,
            flows_socket=_flows_socket(args.flows_socket, Path(args.socket or DEFAULT_SOCKET)),
        )
        runner = NodeRunner(cfg, pods, slices=pods)
    except (KubeError, ValueError) as e:
        return _error(args, str(e))

    def stop(signum: int, frame: Any) -> None:
        runner.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        runner.run()
    except (ServerError, OSError) as e:
        return _error(args, str(e))
    return 0


def add_load_commands(subparsers: Any) -> None:
    """Add `load apply|status|detach` to the `netcc` command's subparsers."""
    load = subparsers.add_parser(
        "load", help="attach OUT's datapath to this node's pod interfaces, report, detach"
    )
    sub = load.add_subparsers(dest="load_command", required=True)
    a = sub.add_parser(
        "apply",
        help="check OUT's lock, load or update the datapath, attach it to the pods' interfaces",
    )
    a.add_argument("out", metavar="OUT")
    _node_args(a, node_required=True)
    a.add_argument(
        "--wireguard",
        choices=["auto", "kernel", "userspace"],
        default="auto",
        help="WireGuard backend when OUT plans a tunnel: the kernel module (generic netlink), "
        "a userspace daemon (wireguard-go, UAPI), or auto: the kernel's if it works here",
    )
    a.set_defaults(func=cmd_apply)
    r = sub.add_parser(
        "run",
        help="the node daemon: apply OUT, serve the CNI socket, keep applying (drift repair)",
    )
    r.add_argument("out", metavar="OUT")
    _node_args(r, node_required=True)
    r.add_argument("--socket", metavar="PATH", help="the CNI socket (default /run/netcc/cni.sock)")
    r.add_argument(
        "--data-dir",
        metavar="DIR",
        help="pod addresses and accepted artifacts, kept across restarts "
        "(default /var/lib/netcc/NODE)",
    )
    r.add_argument(
        "--kube",
        metavar="URL",
        help="the Kubernetes API (https://..., or unix:///PATH for the lab's); default: "
        "in-cluster service account",
    )
    r.add_argument(
        "--cni-conf-dir",
        metavar="DIR",
        help="write the CNI network config list here once the datapath is applied",
    )
    r.add_argument(
        "--interval", type=float, default=30.0, help="seconds between re-applies (default 30)"
    )
    r.add_argument(
        "--wireguard",
        choices=["auto", "kernel", "userspace"],
        default="auto",
        help="WireGuard backend when OUT plans a tunnel",
    )
    r.add_argument(
        "--metrics-address",
        metavar="HOST:PORT",
        default=":9967",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (default :9967, every "
        "address; `off`: none)",
    )
    r.add_argument(
        "--flows-socket",
        metavar="PATH",
        help="serve flow records (`netcc observe`) on this unix socket (default flows.sock "
        "beside the CNI socket: /run/netcc/flows.sock; `off`: none)",
    )
    r.set_defaults(func=cmd_run)
    s = sub.add_parser("status", help="what is attached, which artifacts, verdict counters")
    _node_args(s, node_required=False)
    s.add_argument("--all", action="store_true", help="list every verdict's counters")
    s.set_defaults(func=cmd_status)
    d = sub.add_parser("detach", help="remove every program, link, filter, map and pin")
    _node_args(d, node_required=False)
    d.set_defaults(func=cmd_detach)
