"""The node daemon's flow events: read the datapath's ring buffer, name what it says, serve it.

`FlowService` runs beside the CNI server (`netcc.loader.daemon.run`), in three parts:

- `FlowReader` (a thread) opens the ring buffer the applied datapath pinned
  (`MAPS/netcc_events`) once it exists, opens it again when an apply pins another map there
  (its id changed; what the old one still holds is read first), and polls it every
  `POLL_MS`, so an event is a record well within a second. Each event is decoded with the
  accepted artifacts' layout and made a record (`netcc.contract.flows`): its time from
  CLOCK_MONOTONIC to the wall clock, both ends named by `Names`, the verdict from the
  accepted `verdicts.json` in `netcc why`'s words. Every cycle it reads the per-CPU budget
  counters (`netcc_event_budget`) and reports events the datapath could not write as a lost
  record.
- `History` keeps the last `HISTORY` records, like hubble's ring, and hands each new one to
  the clients that follow, through a bounded queue per client: a slow client loses records
  (counted, and told with a lost record), the reader never waits for it.
- `FlowServer` serves the unix socket (mode 0600, root only; the protocol is in
  `netcc.contract.flows`), one thread per client.

Nothing here may stop the daemon's CNI service or its applies: errors are logged, the reader
tries again, and a socket that cannot be served leaves the rest running.
"""

from __future__ import annotations

import contextlib
import errno as errno_mod
import json
import logging
import os
import queue
import re
import select
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from netcc.contract import classes as classes_file
from netcc.contract import flows
from netcc.contract.constants import LB_SCOPE_CLUSTER_IP, LB_SCOPE_NODEPORT_POD
from netcc.contract.events import BUDGET_MAP, EVENTS_MAP
from netcc.contract.layoutfile import Layout
from netcc.contract.mapfile import load_node_maps, out_node_names
from netcc.contract.verdicts import by_number
from netcc.loader import libbpf
from netcc.loader.cni.ipam import Owner
from netcc.loader.mapdata import event_counters
from netcc.loader.maps import BpfMap

log = logging.getLogger("netcc.flows")

POLL_MS = 100  # a ring buffer poll's wait: an event is served within about this
PIN_CHECK = 1.0  # seconds between looks at which map is pinned
POD_TTL = 1.0  # seconds the node's pod table is trusted
POD_RETRY = 0.05  # an unknown address of this node's blocks reads the table again after this
QUEUE = 2048  # records waiting for one following client
MAX_CLIENTS = 32
IO_TIMEOUT = 10.0  # seconds a client may take to read what it asked for
UNREAD = "0.0.0.0"  # the address of an event about a packet whose IPv4 header was not read
NODE_NOTE = re.compile(r"^(?:node (?P<node>\S+)|this node): (?P<what>address|router address)$")

Pods = Callable[[], Mapping[IPv4Address, Owner | None]]


# --- names -----------------------------------------------------------------------------------


@dataclass
class Names:
    """Who an address is, from the accepted OUT and this node's runtime pods: a pod of this
    node (the CNI's address store), a static workload, a class pod of another node (by its
    class's block), a node's address or router address, a service address, or the world."""

    node: str
    static: dict[str, tuple[str, str]] = field(default_factory=dict)  # ip -> (workload, node)
    hosts: dict[str, tuple[str, bool]] = field(default_factory=dict)  # ip -> (node, router)
    blocks: list[tuple[IPv4Network, str, str]] = field(default_factory=list)  # (block, class, node)
    services: dict[tuple[str, int, int], str] = field(default_factory=dict)  # (ip, port, proto)
    nodeports: dict[tuple[int, int], str] = field(default_factory=dict)  # (port, proto): pods'
    vips: dict[str, str] = field(default_factory=dict)  # service address -> service

    @classmethod
    def of_out(cls, out: Path, node: str) -> Names:
        """The names OUT gives, seen from `node`."""
        names = cls(node)
        wanted = ("netcc_endpoints", "netcc_ipcache", "netcc_lb_services")
        cidrs: dict[str, IPv4Network] = {}
        for n in out_node_names(out):
            maps = load_node_maps(out, n, wanted)
            for e in maps.get("netcc_endpoints", []):
                if e.get("note"):
                    names.static[str(e["key"]["ip"])] = (str(e["note"]), n)
            for e in maps.get("netcc_ipcache", []):
                m = NODE_NOTE.match(str(e.get("note", "")))
                if m:
                    names.hosts[str(e["key"]["ip"])] = (m["node"] or n, m["what"] != "address")
            for e in maps.get("netcc_lb_services", []):
                names._service(e)
            doc = json.loads((out / "nodes" / n / "node.json").read_text())
            if doc.get("podCIDR"):
                cidrs[n] = IPv4Network(doc["podCIDR"])
        path = out / classes_file.CLASSES_FILE
        if path.is_file():
            for c in classes_file.load(path.read_bytes()).classes:
                for n, cidr in sorted(cidrs.items()):
                    with contextlib.suppress(ValueError):
                        block = classes_file.block_cidr(cidr, c.offset, c.size)
                        names.blocks.append((block, c.key, n))
        return names

    def _service(self, e: Mapping[str, Any]) -> None:
        key, note = e["key"], str(e.get("note", ""))
        name = note.split(" ", 1)[0] if "/" in note.split(" ", 1)[0] else note
        port, proto = int(key["port"]), int(key["proto"])
        scope = int(key.get("scope", LB_SCOPE_CLUSTER_IP))
        if scope == LB_SCOPE_NODEPORT_POD:
            self.nodeports[(port, proto)] = name
            return
        self.services[(str(key["vip"]), port, proto)] = name
        if scope == LB_SCOPE_CLUSTER_IP:
            self.vips.setdefault(str(key["vip"]), name)

    def block_of(self, ip: str) -> tuple[str, str] | None:
        """(class, node) of the class block holding `ip`, if one does."""
        addr = IPv4Address(ip)
        for block, klass, node in self.blocks:
            if addr in block:
                return klass, node
        return None

    def service(self, ip: str, port: int, proto: int) -> str | None:
        """The service a packet to ip:port was sent to (a cluster IP, a node's nodePort)."""
        found = self.services.get((ip, port, proto))
        if found is None and ip in self.hosts:
            found = self.nodeports.get((port, proto))
        return found


class PodTable:
    """This node's runtime pods (ip -> owner), read from the CNI's address store at most
    every POD_TTL seconds, and again soon for an address of this node's blocks it lacks."""

    def __init__(self, pods: Pods) -> None:
        self._read = pods
        self._pods: dict[str, Owner | None] = {}
        self._at = float("-inf")
        self._lock = threading.Lock()

    def get(self, ip: str, local_block: bool) -> Owner | None:
        with self._lock:
            now = time.monotonic()
            stale = now - self._at > POD_TTL
            if stale or (local_block and ip not in self._pods and now - self._at > POD_RETRY):
                self._pods = {str(a): o for a, o in self._read().items()}
                self._at = now
            return self._pods.get(ip)

    def table(self, node: str) -> dict[str, dict[str, str]]:
        """The pod table of `{"request": "pods"}`: every runtime pod of this node, read now."""
        pods = {str(a): o for a, o in self._read().items()}
        with self._lock:
            self._pods, self._at = pods, time.monotonic()
        return {
            ip: {"pod": f"{o.namespace}/{o.name}", "class": o.klass, "node": node}
            for ip, o in sorted(pods.items())
            if o is not None and o.name
        }


@dataclass
class Catalog:
    """What records are made with, from one accepted version of OUT."""

    digest: str
    layout: Layout
    verdicts: dict[int, dict[str, Any]]
    names: Names

    @classmethod
    def of_out(cls, out: Path, node: str, digest: str) -> Catalog:
        return cls(
            digest,
            Layout.from_file(out / "bpf" / "layout.json"),
            by_number(json.loads((out / "verdicts.json").read_text())),
            Names.of_out(out, node),
        )


def describe(ip: str, port: int, names: Names, pods: PodTable) -> dict[str, Any]:
    """One end of a flow (`flows.endpoint`)."""
    if ip == UNREAD:
        return flows.endpoint(ip, port, "unknown")
    block = names.block_of(ip)
    local = block is not None and block[1] == names.node
    if block is None or local:
        owner = pods.get(ip, local)
        if owner is not None and owner.name:
            pod = f"{owner.namespace}/{owner.name}"
            return flows.endpoint(
                ip, port, "pod", owner.klass, pod=pod, namespace=owner.namespace, node=names.node
            )
    if ip in names.static:
        workload, node = names.static[ip]
        return flows.endpoint(
            ip, port, "workload", workload=workload, namespace=workload.split("/")[0], node=node
        )
    if block is not None:
        klass, node = block
        return flows.endpoint(ip, port, "class", klass, namespace=klass.split("/")[0], node=node)
    if ip in names.hosts:
        node, router = names.hosts[ip]
        return flows.endpoint(ip, port, "node", node=node, router=router)
    if ip in names.vips:
        svc = names.vips[ip]
        return flows.endpoint(ip, port, "service", service=svc, namespace=svc.split("/")[0])
    return flows.endpoint(ip, port, "world")


def make_record(
    event: Mapping[str, Any], catalog: Catalog, pods: PodTable, clock_offset_ns: int
) -> dict[str, Any]:
    """The flow record of one decoded `flow_event`."""
    ported = int(event["proto"]) in flows.PORTED
    sport, dport = (int(event["sport"]), int(event["dport"])) if ported else (0, 0)
    names = catalog.names
    src = describe(str(event["saddr"]), sport, names, pods)
    dst = describe(str(event["daddr"]), dport, names, pods)
    service = None
    if str(event["svc_addr"]) != UNREAD:
        vip, vport = str(event["svc_addr"]), int(event["svc_port"])
        name = names.service(vip, vport, int(event["proto"])) or "?"
        service = {"name": name, "ip": vip, "port": vport}
    return flows.flow_record(
        int(event["time_ns"]) + clock_offset_ns,
        names.node,
        event,
        src,
        dst,
        catalog.verdicts.get(int(event["verdict"])),
        service,
    )


def clock_offset_ns() -> int:
    """Wall clock minus CLOCK_MONOTONIC (the clock of the events' `time_ns`)."""
    return time.time_ns() - time.monotonic_ns()


# --- history ---------------------------------------------------------------------------------


class Follower:
    """A following client's queue: records that match its filter, at most QUEUE waiting; what
    does not fit is counted in `lost`."""

    def __init__(self, flt: flows.Filter, size: int = QUEUE) -> None:
        self.filter = flt
        self.records: queue.Queue[dict[str, Any]] = queue.Queue(size)
        self.lost = 0

    def offer(self, record: dict[str, Any]) -> None:
        if not flows.matches(record, self.filter):
            return
        try:
            self.records.put_nowait(record)
        except queue.Full:
            self.lost += 1

    def take_lost(self) -> int:
        lost, self.lost = self.lost, 0  # lost only grows in offer, under History's lock
        return lost


class History:
    """The last `size` records, and the clients following new ones."""

    def __init__(self, size: int = flows.HISTORY) -> None:
        self._records: deque[dict[str, Any]] = deque(maxlen=size)
        self._followers: set[Follower] = set()
        self._lock = threading.Lock()

    def add(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._records.append(record)
            for f in self._followers:
                f.offer(record)

    def last(self, n: int, flt: flows.Filter) -> list[dict[str, Any]]:
        """The last `n` records that match, oldest first."""
        with self._lock:
            return self._last(n, flt)

    def _last(self, n: int, flt: flows.Filter) -> list[dict[str, Any]]:
        if n <= 0:
            return []
        found: list[dict[str, Any]] = []
        for r in reversed(self._records):
            if flows.matches(r, flt):
                found.append(r)
                if len(found) == n:
                    break
        return found[::-1]

    def follow(self, n: int, flt: flows.Filter) -> tuple[list[dict[str, Any]], Follower]:
        """The last `n` records that match, and a follower of every later one (none missed,
        none twice); `unfollow` it when done."""
        follower = Follower(flt)
        with self._lock:
            self._followers.add(follower)
            return self._last(n, flt), follower

    @property
    def following(self) -> int:
        """How many clients follow."""
        with self._lock:
            return len(self._followers)

    def unfollow(self, follower: Follower) -> None:
        with self._lock:
            self._followers.discard(follower)

    def with_lost(self, follower: Follower) -> int:
        with self._lock:
            return follower.take_lost()


# --- the reader ------------------------------------------------------------------------------


def _pinned_id(path: Path) -> int | None:
    """The id of the map pinned at `path`, None when nothing is."""
    if not path.exists():
        return None
    try:
        fd = libbpf.obj_get(path)
    except (libbpf.BpfError, OSError) as e:
        if getattr(e, "errno", None) == errno_mod.ENOENT:
            return None
        raise
    try:
        return int(libbpf.map_info(fd)["id"])
    finally:
        os.close(fd)


class FlowReader:
    """Reads the pinned ring buffer into `history` (see the module's doc). `catalog()` gives
    what records are made with (None: no accepted artifacts yet)."""

    def __init__(
        self,
        node: str,
        maps_dir: Path,
        catalog: Callable[[], Catalog | None],
        pods: PodTable,
        history: History,
    ) -> None:
        self.node = node
        self.maps_dir = Path(maps_dir)
        self.catalog = catalog
        self.pods = pods
        self.history = history
        self.stopping = threading.Event()
        self.records = 0  # events made records
        self.failures = 0  # events that could not be
        self._ring: libbpf.RingBuffer | None = None
        self._ring_fd: int | None = None
        self.ring_id: int | None = None
        self._budget: BpfMap | None = None
        self._budget_id: int | None = None
        self._lost: tuple[int, int] | None = None  # (budget, ring) counted so far
        self._checked = float("-inf")
        self._current: Catalog | None = None
        self._offset = clock_offset_ns()
        self._said: dict[str, float] = {}

    # -- life --

    def run(self) -> None:
        """Until `stopping`: a cycle every POLL_MS; errors logged, the next cycle retries."""
        try:
            while not self.stopping.is_set():
                try:
                    if not self.cycle():
                        self.stopping.wait(POLL_MS / 1000)
                except Exception as e:
                    self._say(f"reading flow events failed: {type(e).__name__}: {e}")
                    self.release()
                    self.stopping.wait(1.0)
        finally:
            self.release()

    def cycle(self) -> bool:
        """One round: (re)open the maps when due, hand what the ring holds to the history
        (waiting up to POLL_MS), report losses. False when there is nothing to read yet."""
        self._current = self.catalog()
        if self._current is None:
            return False
        now = time.monotonic()
        if self._ring is None or now - self._checked >= PIN_CHECK:
            self._checked = now
            self._reopen()
        if self._ring is None:
            return False
        self._offset = clock_offset_ns()
        self._ring.poll(POLL_MS)
        self._report_lost()
        return True

    def _reopen(self) -> None:
        ring_id = _pinned_id(self.maps_dir / EVENTS_MAP)
        if ring_id != self.ring_id:
            if self._ring is not None:
                with contextlib.suppress(libbpf.BpfError):
                    self._ring.consume()  # what the old ring still holds
            self._close_ring()
            if ring_id is not None:
                self._open_ring()
        budget_id = _pinned_id(self.maps_dir / BUDGET_MAP)
        if budget_id != self._budget_id:
            if self._budget is not None:
                self._budget.close()
                self._budget = None
            self._budget_id = None
            if budget_id is not None and self._current is not None:
                self._budget = BpfMap.pinned(self.maps_dir / BUDGET_MAP, self._current.layout)
                self._budget_id = int(self._budget.info()["id"])
                if self._lost is None:
                    self._lost = self._lost_counts()  # earlier losses are not news

    def _open_ring(self) -> None:
        fd = libbpf.obj_get(self.maps_dir / EVENTS_MAP)
        try:
            self.ring_id = int(libbpf.map_info(fd)["id"])
            self._ring = libbpf.RingBuffer(fd, self._on_record)
        except BaseException:
            os.close(fd)
            self.ring_id = None
            raise
        self._ring_fd = fd
        log.info(
            "reading flow events from %s (map id %d)", self.maps_dir / EVENTS_MAP, self.ring_id
        )

    def _close_ring(self) -> None:
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        if self._ring_fd is not None:
            os.close(self._ring_fd)
            self._ring_fd = None
        self.ring_id = None

    def release(self) -> None:
        """Close the maps (`run` does when it ends; a caller driving `cycle` itself calls
        it, from the same thread)."""
        self._close_ring()
        if self._budget is not None:
            self._budget.close()
            self._budget = None
        self._budget_id = None

    def close(self) -> None:
        """Ask `run` to end (it releases the maps)."""
        self.stopping.set()

    # -- records --

    def _on_record(self, raw: bytes) -> None:
        catalog = self._current
        try:
            assert catalog is not None
            event = catalog.layout.unpack("flow_event", raw[: catalog.layout.size("flow_event")])
            record = make_record(event, catalog, self.pods, self._offset)
        except Exception as e:  # one bad record: counted, never the reader's end
            self.failures += 1
            self._say(f"a flow event could not be read: {type(e).__name__}: {e}")
            return
        self.records += 1
        self.history.add(record)

    def _lost_counts(self) -> tuple[int, int]:
        assert self._budget is not None
        got = event_counters(self._budget)
        return got["lost_budget"], got["lost_ring"]

    def _report_lost(self) -> None:
        if self._budget is None:
            return
        now = self._lost_counts()
        before = self._lost or (0, 0)
        # a counter that went down is a new map that counted from 0
        grew = [n - b if n >= b else n for n, b in zip(now, before, strict=True)]
        self._lost = now
        if any(grew):
            self.history.add(flows.lost_record(time.time_ns(), self.node, *grew))

    def _say(self, message: str) -> None:
        """Log `message`, at most once a minute."""
        now = time.monotonic()
        if now - self._said.get(message, float("-inf")) >= 60:
            self._said[message] = now
            log.error("%s", message)


# --- the socket --------------------------------------------------------------------------------


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def _read_line(conn: socket.socket) -> bytes:
    """The request line (up to its newline, or the client's shutdown)."""
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > flows.MAX_REQUEST_BYTES:
            raise flows.FlowFormatError(f"request longer than {flows.MAX_REQUEST_BYTES} bytes")
    return data.split(b"\n", 1)[0]


def _gone(conn: socket.socket) -> bool:
    """Whether the client closed its end (it sends nothing after its request)."""
    readable, _, _ = select.select([conn], [], [], 0)
    if not readable:
        return False
    try:
        return conn.recv(4096, socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


class FlowServer:
    """The flows socket (see `netcc.contract.flows`): serves `history` and `pods`."""

    def __init__(self, path: Path, node: str, history: History, pods: PodTable) -> None:
        self.path = Path(path)
        self.node = node
        self.history = history
        self.pods = pods
        self.stopping = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        self._listener: socket.socket | None = None
        self._identity: tuple[int, int] | None = None
        self._lock_fd: int | None = None
        self._threads: set[threading.Thread] = set()
        self._threads_lock = threading.Lock()
        self._accept: threading.Thread | None = None

    def start(self) -> None:
        """Take the socket (mode 0600 from its first moment, a lock file beside it so that a
        second daemon cannot take it over), then accept clients."""
        from netcc.loader.cni.server import bind_socket, lock_exclusive

        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock_fd = lock_exclusive(self.path.with_name(self.path.name + ".lock"))
        try:
            self._listener, self._identity = bind_socket(self.path)
        except BaseException:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise
        self._listener.settimeout(0.2)
        self._accept = threading.Thread(target=self._accept_loop, name="flows-accept", daemon=True)
        self._accept.start()
        log.info("serving flow records on %s", self.path)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, end every client, remove the socket."""
        self.stopping.set()
        if self._accept is not None:
            self._accept.join(timeout)
            self._accept = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._identity is not None:
            from netcc.loader.cni.server import unlink_own

            unlink_own(self.path, self._identity)
            self._identity = None
        with self._threads_lock:
            threads = list(self._threads)
        for t in threads:
            t.join(timeout)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self.stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError as e:
                if self.stopping.is_set():
                    return
                log.error("accept on %s failed: %s", self.path, e)
                self.stopping.wait(0.2)
                continue
            if not self._slots.acquire(blocking=False):
                with conn:
                    conn.settimeout(1.0)
                    with contextlib.suppress(OSError):
                        self._send(conn, [{"type": "error", "error": "too many clients"}])
                continue
            t = threading.Thread(target=self._client, args=(conn,), name="flows-client")
            t.daemon = True
            with self._threads_lock:
                self._threads.add(t)
            t.start()

    def _client(self, conn: socket.socket) -> None:
        try:
            with conn:
                conn.settimeout(IO_TIMEOUT)
                self._serve(conn)
        except OSError as e:  # the client went away
            log.debug("flows client: %s", e)
        except Exception:
            log.exception("serving a flows client failed")
        finally:
            self._slots.release()
            with self._threads_lock:
                self._threads.discard(threading.current_thread())

    def _serve(self, conn: socket.socket) -> None:
        if _peer_uid(conn) not in (0, os.getuid()):
            self._send(conn, [{"type": "error", "error": "flow records are for root only"}])
            return
        try:
            req = flows.parse_request(_read_line(conn))
        except flows.FlowFormatError as e:
            self._send(conn, [{"type": "error", "error": str(e)}])
            return
        end = {"type": "end", "node": self.node}
        if req.request == "pods":
            pods = {"type": "pods", "node": self.node, "pods": self.pods.table(self.node)}
            self._send(conn, [pods, end])
            return
        if not req.follow:
            self._send(conn, [*self.history.last(req.last, req.filter), end])
            return
        past, follower = self.history.follow(req.last, req.filter)
        try:
            self._send(conn, [*past, {"type": "live", "node": self.node}])
            self._follow(conn, follower)
        finally:
            self.history.unfollow(follower)

    def _follow(self, conn: socket.socket, follower: Follower) -> None:
        while not self.stopping.is_set():
            batch = []
            try:
                batch.append(follower.records.get(timeout=0.5))
                while len(batch) < 256:
                    batch.append(follower.records.get_nowait())
            except queue.Empty:
                pass
            lost = self.history.with_lost(follower)
            if lost:
                batch.append(flows.lost_record(time.time_ns(), self.node, queue=lost))
            if batch:
                self._send(conn, batch)
            elif _gone(conn):
                return

    @staticmethod
    def _send(conn: socket.socket, records: Iterable[Mapping[str, Any]]) -> None:
        conn.sendall("".join(flows.dumps(r) + "\n" for r in records).encode())


# --- the service -------------------------------------------------------------------------------


class FlowService:
    """The reader, the history and the socket of one node daemon. `view()` gives the
    accepted artifacts (an object with `out`, `node` and `digest`, or None)."""

    def __init__(
        self,
        node: str,
        maps_dir: Path,
        socket_path: Path | None,
        view: Callable[[], Any],
        pods: Pods,
    ) -> None:
        self.node = node
        self._view = view
        self._catalog: Catalog | None = None
        self._failed: str | None = None
        self.history = History()
        self.pods = PodTable(pods)
        self.reader = FlowReader(node, maps_dir, self.catalog, self.pods, self.history)
        self.server = (
            None if socket_path is None else FlowServer(socket_path, node, self.history, self.pods)
        )
        self._thread: threading.Thread | None = None

    def catalog(self) -> Catalog | None:
        """The catalog of the accepted artifacts, made again when they change."""
        view = self._view()
        if view is None:
            return None
        if self._catalog is None or self._catalog.digest != view.digest:
            if self._failed == view.digest:
                return self._catalog
            try:
                self._catalog = Catalog.of_out(Path(view.out), self.node, view.digest)
                self._failed = None
            except Exception as e:  # an older catalog serves until this one can be read
                self._failed = view.digest
                log.error("flow events: cannot read artifacts %s: %s", view.digest[:12], e)
        return self._catalog

    def start(self) -> None:
        """Serve the socket (ServerError, OSError when it cannot be), then read."""
        if self.server is not None:
            self.server.start()
        self._thread = threading.Thread(target=self.reader.run, name="flows", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.reader.close()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        if self.server is not None:
            self.server.stop()
