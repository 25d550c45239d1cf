"""`netcc observe`: the flow records of the node daemons, shaped like `hubble observe`.

Reads the flows socket (`netcc.contract.flows`) of the node daemons: those named with
`--socket`, else every node of the lab when one is up (its state file records the daemons),
else this node's (`/run/netcc/flows.sock`). Several nodes are read at once, one thread each:
`--last N` takes each node's last N matching records and shows the last N of them all by
time; `--follow` then shows every new record as it comes from any node. The nodes' pod tables
name the pods of other nodes, which a node knows only by their class's block.

Filters are sent to the daemons, which filter before sending (hubble's semantics, see
`netcc.contract.flows`). Exit 0, or 1 with a message when no daemon can be read or a filter is
wrong; `--follow` ends on Ctrl-C, or when the output is closed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netcc.contract import flows

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0  # seconds a daemon may take to send what it has (without --follow)
NAMES_REFRESH = 1.0  # seconds between reads of the pod tables for a pod not named yet


class ObserveError(Exception):
    """A daemon that cannot be read, or a filter that is wrong: the message says which."""


@dataclass(frozen=True)
class Source:
    """One node daemon's flows socket: `name` the node (lab) or the path given."""

    name: str
    path: Path


def sources(sockets: list[str] | None) -> list[Source]:
    """The sockets to read: those given, else every lab node's, else this node's."""
    if sockets:
        return [Source(s, Path(s)) for s in sockets]
    from netcc.lab.state import STATE_DIR, LabState, LabStateError

    if LabState.exists(STATE_DIR):
        try:
            daemons = LabState.load(STATE_DIR).of_kind("daemon")
        except LabStateError:
            daemons = []
        found = [
            Source(r["node"], Path(r.get("flows") or Path(r["dir"]) / flows.SOCKET_NAME))
            for r in daemons
            if r.get("node") and (r.get("flows") or r.get("dir"))
        ]
        if found:
            return sorted(found, key=lambda s: s.name)
    return [Source(flows.DEFAULT_SOCKET, Path(flows.DEFAULT_SOCKET))]


def _connect(src: Source, request: flows.Request, timeout: float | None) -> socket.socket:
    """A connection to `src` that sent `request`; ObserveError saying what to do if none."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(CONNECT_TIMEOUT)
    where = f"{src.name}: " if src.name != str(src.path) else ""
    try:
        sock.connect(str(src.path))
        sock.sendall((json.dumps(request.to_json()) + "\n").encode())
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        raise ObserveError(
            f"{where}no node daemon serves flow records at {src.path}: is `netcc load run` "
            "running on that node (--flows-socket)?"
        ) from None
    except PermissionError:
        sock.close()
        raise ObserveError(
            f"{where}{src.path}: permission denied (flow records are root's)"
        ) from None
    except OSError as e:
        sock.close()
        raise ObserveError(f"{where}cannot read {src.path}: {e.strerror or e}") from None
    sock.settimeout(timeout)
    return sock


def _records(src: Source, sock: socket.socket) -> Iterator[dict[str, Any]]:
    """The JSON lines the daemon sends, until it closes; ObserveError on an error line."""
    with sock, sock.makefile("rb") as f:
        for line in f:
            try:
                doc = json.loads(line)
            except ValueError:
                raise ObserveError(
                    f"{src.name}: the daemon sent something else than JSON"
                ) from None
            if doc.get("type") == "error":
                raise ObserveError(f"{src.name}: {doc.get('error')}")
            yield doc


class PodNames:
    """Every node's runtime pods (ip -> {"pod", "class", "node"}), read again at most every
    NAMES_REFRESH seconds when a record names a pod only by its class."""

    def __init__(self, srcs: list[Source]) -> None:
        self.srcs = srcs
        self.pods: dict[str, dict[str, Any]] = {}
        self._at = float("-inf")

    def refresh(self) -> None:
        self._at = time.monotonic()
        found: dict[str, dict[str, Any]] = {}
        for src in self.srcs:
            try:
                for doc in _records(src, _connect(src, flows.Request("pods"), READ_TIMEOUT)):
                    if doc.get("type") == "pods":
                        found.update(doc.get("pods") or {})
            except (ObserveError, OSError):
                continue  # the node's pods stay known by their class
        self.pods = found

    def complete(self, record: dict[str, Any]) -> dict[str, Any]:
        if record.get("type") != "flow":
            return record
        unnamed = [
            e["ip"]
            for e in (record.get("source"), record.get("destination"))
            if isinstance(e, dict) and e.get("kind") == "class"
        ]
        if not unnamed:
            return record
        if any(ip not in self.pods for ip in unnamed) and (
            time.monotonic() - self._at >= NAMES_REFRESH
        ):
            self.refresh()
        return flows.complete(record, self.pods)


class Output:
    """Prints records as text or JSON lines, flushing each one when following."""

    def __init__(self, as_json: bool, flush: bool) -> None:
        self.as_json = as_json
        self.flush = flush

    def show(self, record: dict[str, Any]) -> None:
        if record.get("type") not in ("flow", "lost"):
            return
        print(flows.dumps(record) if self.as_json else flows.format_line(record))
        if self.flush:
            sys.stdout.flush()


def _by_time(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(records, key=lambda r: str(r.get("time", "")))  # RFC 3339, fixed width


def _read_all(srcs: list[Source], request: flows.Request) -> tuple[list[dict], list[str]]:
    """Every node's answer to `request` (without --follow), read at once; the records and
    the errors of the nodes that could not be read."""
    got: dict[str, list[dict[str, Any]]] = {}
    errors: dict[str, str] = {}

    def read(src: Source) -> None:
        try:
            sock = _connect(src, request, READ_TIMEOUT)
            got[src.name] = [r for r in _records(src, sock) if r.get("type") in ("flow", "lost")]
        except ObserveError as e:
            errors[src.name] = str(e)
        except OSError as e:
            errors[src.name] = f"{src.name}: reading {src.path} failed: {e.strerror or e}"

    threads = [threading.Thread(target=read, args=(s,), daemon=True) for s in srcs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    merged = [r for name in sorted(got) for r in got[name]]
    return merged, [errors[n] for n in sorted(errors)]


def _follow(srcs: list[Source], request: flows.Request, names: PodNames, out: Output) -> int:
    """Each node's last records merged by time, then every new one as it comes, until every
    daemon closed its stream (1) or the user stops it (Ctrl-C: 0)."""
    connected, errors = [], []
    for src in srcs:
        try:
            connected.append((src, _connect(src, request, None)))
        except ObserveError as e:
            errors.append(str(e))
    for e in errors:
        print(f"netcc: {'warning' if connected else 'error'}: {e}", file=sys.stderr)
    if not connected:
        return 1
    names.refresh()
    events: queue.Queue[tuple[str, str, Any]] = queue.Queue()

    def read(src: Source, sock: socket.socket) -> None:
        try:
            for doc in _records(src, sock):
                events.put((src.name, "record", doc))
        except ObserveError as e:
            events.put((src.name, "error", str(e)))
        except OSError as e:
            events.put((src.name, "error", f"{src.name}: reading failed: {e.strerror or e}"))
        events.put((src.name, "closed", None))

    for src, sock in connected:
        threading.Thread(target=read, args=(src, sock), daemon=True).start()
    pending = {src.name for src, _ in connected}  # still sending their history
    streaming = set(pending)
    history: list[dict[str, Any]] = []
    replayed, failed = False, set()
    while streaming:
        try:
            name, what, doc = events.get(timeout=0.5)
        except queue.Empty:
            continue
        if what == "error":
            print(f"netcc: warning: {doc}", file=sys.stderr)
            failed.add(name)
        elif what == "closed":
            streaming.discard(name)
            pending.discard(name)
            if name not in failed:
                print(f"netcc: warning: {name}: the node daemon ended the stream", file=sys.stderr)
        elif doc.get("type") == "live":
            pending.discard(name)
        elif name in pending:
            history.append(doc)
            continue
        else:
            out.show(names.complete(doc))
            continue
        if not pending and not replayed:  # every node's history is in: merged by time
            replayed = True
            for r in _by_time(history)[-request.last :] if request.last else []:
                out.show(names.complete(r))
            sys.stdout.flush()
    return 1


def cmd_observe(args: argparse.Namespace) -> int:
    try:
        flt = flows.parse_filter(
            {
                "node": args.node,
                "pod": args.pod,
                "fromPod": args.from_pod,
                "toPod": args.to_pod,
                "namespace": args.namespace,
                "verdict": args.verdict,
                "protocol": args.protocol,
                "port": args.port,
            }
        )
    except flows.FlowFormatError as e:
        print(f"netcc: error: {e}", file=sys.stderr)
        return 1
    last = args.last if args.last is not None else (0 if args.follow else flows.DEFAULT_LAST)
    request = flows.Request("flows", min(last, flows.HISTORY), args.follow, flt)
    srcs = sources(args.socket)
    by_node = not args.socket and flt.node  # lab nodes: read only those the filter names
    read = [s for s in srcs if not by_node or s.name in flt.node] or srcs
    names = PodNames(srcs)
    out = Output(args.json, args.follow)
    try:
        if args.follow:
            return _follow(read, request, names, out)
        records, errors = _read_all(read, request)
        for e in errors:
            level = "warning" if len(errors) < len(read) else "error"
            print(f"netcc: {level}: {e}", file=sys.stderr)
        if len(errors) == len(read):
            return 1
        shown = _by_time(records)[-last:] if last else []
        if any(_unnamed(r) for r in shown):
            names.refresh()
        for r in shown:
            out.show(flows.complete(r, names.pods) if r.get("type") == "flow" else r)
        sys.stdout.flush()
        return 0
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # the reader of the output went away (`| head`)
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _unnamed(record: dict[str, Any]) -> bool:
    return any(
        isinstance(e, dict) and e.get("kind") == "class"
        for e in (record.get("source"), record.get("destination"))
    )


def _nonnegative(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of records")
    return int(text)


def add_observe_command(subparsers: Any) -> None:
    """Register `observe`."""
    o = subparsers.add_parser(
        "observe",
        help="the datapath's flows, as the node daemons name them (like hubble observe)",
    )
    many = {"action": "append", "default": []}
    o.add_argument("--node", metavar="NAME", help="flows judged on this node", **many)
    o.add_argument(
        "--pod",
        metavar="NS/NAME",
        help="flows from or to pods of this name prefix (NS/ for a namespace)",
        **many,
    )
    o.add_argument("--from-pod", metavar="NS/NAME", help="flows from these pods", **many)
    o.add_argument("--to-pod", metavar="NS/NAME", help="flows to these pods", **many)
    o.add_argument("--namespace", metavar="NS", help="flows from or to this namespace", **many)
    o.add_argument("--verdict", metavar="VERDICT", help="forwarded (or allowed), dropped", **many)
    o.add_argument("--protocol", metavar="PROTO", help="TCP, UDP, SCTP, ICMP or a number", **many)
    o.add_argument("--port", metavar="PORT", help="either end's port", **many)
    o.add_argument("-f", "--follow", action="store_true", help="show new flows as they come")
    o.add_argument(
        "--last",
        type=_nonnegative,
        metavar="N",
        help=f"the last N flows (default {flows.DEFAULT_LAST}, none with --follow)",
    )
    o.add_argument("--json", action="store_true", help="one JSON record per line")
    o.add_argument(
        "--socket",
        metavar="PATH",
        action="append",
        help="a node daemon's flows socket (repeatable; default: every lab node's when a lab "
        f"is up, else {flows.DEFAULT_SOCKET})",
    )
    o.set_defaults(func=cmd_observe)
