"""Services in the lab: backends that say who they are, and clients that count who answered.

A service's backends are the workloads in its namespace whose labels carry every pair of its
selector (no selector, no backends), each serving the service port's `targetPort`: a number, or
a name resolved on that workload by name and protocol (a workload without that port is no
backend of that service port), as Kubernetes' endpoints controller does. This is the lab's own
reading of the spec, independent of the compiler's, so tests can check the datapath against it.

`Servers` listens in every backend's namespace (sockets belong to the namespace their thread was
in when they were made, as in `lab_probe`) and answers each line with `IDENTITY LINE`, or, for
benchmarks, echoes bytes back. `connect_many` opens many TCP connections or UDP exchanges from
one namespace to a VIP:port or a node's nodePort, concurrently under one deadline, and reports
which backend answered each; `Conversation` is one long-lived TCP connection.

Longer than most modules (~550 lines) on purpose: the lab's reading of services (who backs
a port) and the servers and clients that check the datapath against it belong together.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from ipaddress import IPv4Address, ip_address
from pathlib import Path

from netcc.lab import netns as lab_netns
from netcc.lab.plan import LabPlan, LabPlanError, plan_from_doc, resolve_endpoint
from netcc.model.types import Cluster, Service

SVC_PREFIX = "svc:"


class ServiceLabError(ValueError):
    """A service target the lab cannot resolve, or a client that cannot start."""


@dataclass(frozen=True)
class Backend:
    pod: str  # namespace/name
    netns: str
    node: str
    ip: IPv4Address
    port: int  # the resolved targetPort


@dataclass(frozen=True)
class ServicePortPlan:
    """One port of one service, with its backends as the lab reads the spec."""

    service: str  # namespace/name
    name: str | None
    vip: IPv4Address
    port: int
    protocol: str
    node_port: int | None
    backends: tuple[Backend, ...]
    affinity: bool  # sessionAffinity: ClientIP
    local: bool  # externalTrafficPolicy: Local

    def backends_on(self, node: str) -> tuple[Backend, ...]:
        return tuple(b for b in self.backends if b.node == node)


def _selects(service: Service, labels: Iterable[tuple[str, str]]) -> bool:
    have = dict(labels)
    return bool(service.selector) and all(have.get(k) == v for k, v in service.selector)


@dataclass(frozen=True)
class RuntimePod:
    """A pod the lab added at runtime, as a service's backend needs it."""

    key: str
    namespace: str
    labels: tuple[tuple[str, str], ...]
    klass: str  # namespace/name of its workload class
    ready: bool


def service_ports(
    cluster: Cluster, plan: LabPlan, runtime: Sequence[RuntimePod] = ()
) -> list[ServicePortPlan]:
    """Every port of every service, with its backends (in spec order): the static workloads
    the selector picks, and the `runtime` pods it picks that are ready, on their class's
    targetPort."""
    pods = {p.key: p for p in plan.pods}
    classes = {c.key: c for c in cluster.classes}
    found = []
    for svc in cluster.services:
        chosen = [
            w
            for w in cluster.workloads
            if w.namespace == svc.namespace and _selects(svc, w.labels) and w.ips
        ]
        for sp in svc.ports:
            backends = []
            for w in chosen:
                target = sp.target_port
                port = target if isinstance(target, int) else w.resolve_port(target, sp.protocol)
                if port is None:
                    continue
                pod = pods[w.key]
                backends.append(Backend(w.key, pod.netns, pod.node, w.ips[0], port))
            for r in runtime:
                cls, pod = classes.get(r.klass), pods.get(r.key)
                if (
                    not r.ready
                    or cls is None
                    or pod is None
                    or r.namespace != svc.namespace
                    or not _selects(svc, r.labels)
                ):
                    continue
                target = sp.target_port
                port = target if isinstance(target, int) else cls.resolve_port(target, sp.protocol)
                if port is not None:
                    backends.append(Backend(r.key, pod.netns, pod.node, pod.ips[0], port))
            found.append(
                ServicePortPlan(
                    svc.key,
                    sp.name,
                    svc.cluster_ip,
                    sp.port,
                    sp.protocol,
                    sp.node_port if svc.type == "NodePort" else None,
                    tuple(backends),
                    svc.session_affinity == "ClientIP",
                    svc.external_traffic_policy == "Local",
                )
            )
    return found


@dataclass(frozen=True)
class ServiceTarget:
    """Where a client connects to reach a service port: the VIP, or a node's nodePort."""

    port_plan: ServicePortPlan
    ip: IPv4Address
    port: int
    node: str | None = None  # set for a nodePort

    def describe(self) -> str:
        via = f"nodePort on {self.node}" if self.node else "ClusterIP"
        return f"{self.port_plan.service} {via} {self.ip}:{self.port}/{self.port_plan.protocol}"


def resolve_service(
    ports: Sequence[ServicePortPlan], plan: LabPlan, target: str, port: int, protocol: str
) -> ServiceTarget | None:
    """`svc:NS/NAME` or a ClusterIP with the service port, or a node (name or address) with a
    nodePort; None when `target` names no service (a pod, say). Errors for a service target
    whose port or protocol no service has."""
    protocol = protocol.upper()
    if target.startswith(SVC_PREFIX):
        key = target[len(SVC_PREFIX) :]
        of = [p for p in ports if p.service == key]
        if not of:
            raise ServiceLabError(f"{target}: no such service in the spec")
        for p in of:
            if p.protocol == protocol and p.port == port:
                return ServiceTarget(p, p.vip, p.port)
        have = ", ".join(f"{p.port}/{p.protocol.lower()}" for p in of)
        raise ServiceLabError(f"{target}: no port {port}/{protocol.lower()} (it has {have})")
    try:
        ip = ip_address(target)
    except ValueError:
        ip = None
    if ip is not None and any(p.vip == ip for p in ports):
        for p in ports:
            if p.vip == ip and p.port == port and p.protocol == protocol:
                return ServiceTarget(p, p.vip, p.port)
        raise ServiceLabError(f"{target}: the ClusterIP has no port {port}/{protocol.lower()}")
    node = next((n for n in plan.nodes if target in (n.name, str(n.address))), None)
    if node is not None:
        for p in ports:
            if p.node_port == port and p.protocol == protocol:
                return ServiceTarget(p, node.address, port, node.name)
    return None


# --- servers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Listener:
    netns: str
    ip: str
    port: int
    protocol: str  # TCP | UDP
    identity: str


def listeners_for(ports: Iterable[ServicePortPlan]) -> list[Listener]:
    """One listener per distinct backend endpoint of the given service ports."""
    seen = {
        Listener(b.netns, str(b.ip), b.port, p.protocol, b.pod) for p in ports for b in p.backends
    }
    return sorted(seen, key=lambda x: (x.netns, x.port, x.protocol))


class Servers:
    """Backend servers in their namespaces, served by one background thread until closed.

    `echo=False`: each line `L\\n` a client sends is answered with `IDENTITY L\\n` (UDP: each
    datagram). `echo=True`: bytes come back as they are and the server closes a TCP connection
    after its first answer (the connect-echo-close of a benchmark)."""

    def __init__(self, listeners: Sequence[Listener], echo: bool = False) -> None:
        self.listeners = list(listeners)
        self.echo = echo
        self.stack = ExitStack()
        self.sel = selectors.DefaultSelector()
        self.wake_r, self.wake_w = socket.socketpair()
        self.thread = threading.Thread(target=self._loop, name="netcc-lab-servers", daemon=True)
        self.served: Counter[str] = Counter()
        self.conns: dict[socket.socket, bytes] = {}  # accepted, with what is unanswered yet
        self.stopping = False

    def __enter__(self) -> Servers:
        try:
            for ln in self.listeners:
                with lab_netns.entered(ln.netns):
                    self._open(ln)
        except BaseException:
            self._close_all()
            raise
        self.sel.register(self.wake_r, selectors.EVENT_READ, ("wake", b""))
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping = True
        with suppress(OSError):
            self.wake_w.send(b"x")
        self.thread.join(timeout=5)
        self._close_all()

    def _close_all(self) -> None:
        for conn in self.conns:
            conn.close()
        self.conns.clear()
        self.stack.close()
        self.sel.close()
        self.wake_r.close()
        self.wake_w.close()

    def _open(self, ln: Listener) -> None:
        kind = socket.SOCK_STREAM if ln.protocol == "TCP" else socket.SOCK_DGRAM
        s = self.stack.enter_context(socket.socket(socket.AF_INET, kind))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # beside another Servers
        s.setblocking(False)
        s.bind((ln.ip, ln.port))
        if ln.protocol == "TCP":
            s.listen(4096)
        what = "accept" if ln.protocol == "TCP" else "udp"
        self.sel.register(s, selectors.EVENT_READ, (what, ln.identity.encode()))

    def _loop(self) -> None:
        while not self.stopping:
            for key, _ in self.sel.select(1.0):
                what, ident = key.data
                s: socket.socket = key.fileobj  # type: ignore[assignment]
                if what == "wake":
                    return
                if what == "accept":
                    self._accept(s, ident)
                elif what == "udp":
                    with suppress(OSError):
                        data, peer = s.recvfrom(65535)
                        s.sendto(data if self.echo else ident + b" " + data, peer)
                        self.served[ident.decode()] += 1
                else:
                    self._serve(s, ident)

    def _accept(self, s: socket.socket, ident: bytes) -> None:
        for _ in range(64):
            try:
                conn, _peer = s.accept()
            except OSError:
                return
            conn.setblocking(False)
            self.conns[conn] = b""
            self.sel.register(conn, selectors.EVENT_READ, ("conn", ident))

    def _serve(self, s: socket.socket, ident: bytes) -> None:
        try:
            data = s.recv(65535)
        except OSError:
            data = b""
        if data and self.echo:
            with suppress(OSError):
                s.send(data)
            self.served[ident.decode()] += 1
            data = b""  # one answer per benchmark connection, then close
        elif data:
            *lines, self.conns[s] = (self.conns[s] + data).split(b"\n")
            s.settimeout(2.0)  # a long answer may not fit the socket's buffer at once
            for line in lines:
                with suppress(OSError):
                    s.sendall(ident + b" " + line + b"\n")
                self.served[ident.decode()] += 1
            s.setblocking(False)
            return
        self.sel.unregister(s)
        self.conns.pop(s, None)
        s.close()


# --- clients ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    ok: bool
    backend: str | None  # who answered
    detail: str
    sport: int = 0


@dataclass
class _Conn:
    index: int
    sock: socket.socket
    token: bytes
    got: bytes = b""


def tune_client(netns: str) -> None:
    """Many short connections from one address: the whole port range, TIME-WAIT reuse."""
    with lab_netns.entered(netns):
        for key, value in (
            ("net/ipv4/ip_local_port_range", "1024 65535"),
            ("net/ipv4/tcp_tw_reuse", "1"),
        ):
            with open(f"/proc/sys/{key}", "w") as f:
                f.write(value)


def connect_many(
    src_netns: str,
    src_ip: str,
    dst_ip: str,
    port: int,
    protocol: str,
    count: int,
    timeout: float = 2.0,
    concurrency: int = 64,
) -> list[Answer]:
    """`count` connections (TCP) or exchanges from new sockets (UDP), at most `concurrency` at a
    time, all under one deadline; each answer names the backend that replied."""
    protocol = protocol.upper()
    if protocol not in ("TCP", "UDP"):
        raise ServiceLabError(f"{protocol}: services here speak TCP or UDP")
    answers: dict[int, Answer] = {}
    live: dict[int, _Conn] = {}
    with selectors.DefaultSelector() as sel, lab_netns.entered(src_netns):
        # Sockets are made here, inside the source's namespace, as the thread stays there.
        deadline = time.monotonic() + timeout
        started = 0

        def finish(c: _Conn, ok: bool, backend: str | None, detail: str) -> None:
            sport = 0
            with suppress(OSError):
                sport = c.sock.getsockname()[1]
            answers[c.index] = Answer(ok, backend, detail, sport)
            with suppress(KeyError, ValueError):
                sel.unregister(c.sock)
            c.sock.close()
            live.pop(c.index, None)

        def start(i: int) -> None:
            kind = socket.SOCK_STREAM if protocol == "TCP" else socket.SOCK_DGRAM
            s = socket.socket(socket.AF_INET, kind)
            s.setblocking(False)
            c = _Conn(i, s, f"netcc-svc {i} {os.getpid()}".encode())
            live[i] = c
            try:
                s.bind((src_ip, 0))
                if protocol == "TCP":
                    err = s.connect_ex((dst_ip, port))
                    if err not in (0, errno.EINPROGRESS):
                        finish(c, False, None, os.strerror(err))
                        return
                    sel.register(s, selectors.EVENT_WRITE, c)
                else:
                    s.connect((dst_ip, port))
                    s.send(c.token + b"\n")
                    sel.register(s, selectors.EVENT_READ, c)
            except OSError as e:
                finish(c, False, None, f"{e.strerror}")

        while len(answers) < count:
            while started < count and len(live) < concurrency:
                start(started)
                started += 1
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for key, mask in sel.select(min(left, 0.2)):
                c: _Conn = key.data
                if mask & selectors.EVENT_WRITE:
                    err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        finish(c, False, None, f"connect: {os.strerror(err)}")
                        continue
                    try:
                        c.sock.send(c.token + b"\n")
                    except OSError as e:
                        finish(c, False, None, f"send: {e.strerror}")
                        continue
                    sel.modify(c.sock, selectors.EVENT_READ, c)
                    continue
                try:
                    data = c.sock.recv(65535)
                except OSError as e:
                    finish(c, False, None, f"receive: {e.strerror}")
                    continue
                c.got += data
                if c.got.endswith(b" " + c.token + b"\n"):
                    finish(c, True, c.got[: -len(c.token) - 2].decode(), "answered")
                elif not data or (protocol == "UDP"):
                    finish(c, False, None, "wrong or no answer")
        for c in list(live.values()):
            finish(c, False, None, f"no answer within {timeout:g} s")
        for i in range(started, count):
            answers[i] = Answer(False, None, "not started (deadline)")
    return [answers[i] for i in range(count)]


def spread(answers: Iterable[Answer]) -> Counter[str]:
    """How many answers each backend gave."""
    return Counter(a.backend for a in answers if a.ok and a.backend)


class Conversation:
    """One long-lived TCP connection from a namespace; each `say` is one answered line."""

    def __init__(
        self, src_netns: str, src_ip: str, dst_ip: str, port: int, timeout: float = 2.0
    ) -> None:
        with lab_netns.entered(src_netns):
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.bind((src_ip, 0))
            self.sock.connect((dst_ip, port))
        except OSError:
            self.sock.close()
            raise
        self.backend: str | None = None
        self.buf = b""

    def say(self, text: str) -> str:
        """Send one line, return the identity of the backend that answered it."""
        self.sock.sendall(text.encode() + b"\n")
        while b"\n" not in self.buf:
            data = self.sock.recv(65535)
            if not data:
                raise ConnectionError("the connection was closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        who, _, echoed = line.decode().partition(" ")  # identities have no spaces
        if echoed != text:
            raise ConnectionError(f"wrong answer {line!r}")
        self.backend = who
        return who

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Conversation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- `netcc lab probe` with a service as target ----------------------------------------------


@dataclass
class ServiceProbeReport:
    src: str
    src_ip: str
    target: str  # what was reached, described
    dst_ip: str
    port: int
    protocol: str
    answers: list[Answer]
    backends: list[str]  # every backend the lab expects for this target

    @property
    def allowed(self) -> bool:
        return any(a.ok for a in self.answers)

    def to_json(self) -> dict:
        failed = Counter(a.detail for a in self.answers if not a.ok)
        return {
            "verdict": "allow" if self.allowed else "deny",
            "src": self.src,
            "src_ip": self.src_ip,
            "service": self.target,
            "dst_ip": self.dst_ip,
            "port": self.port,
            "protocol": self.protocol,
            "connections": len(self.answers),
            "answered": sum(1 for a in self.answers if a.ok),
            "backends": {b: spread(self.answers).get(b, 0) for b in self.backends},
            "failed": dict(sorted(failed.items())),
        }


def lab_service_ports(
    spec: str | Path, plan: LabPlan, runtime: Sequence[RuntimePod] = ()
) -> list[ServicePortPlan]:
    """The service ports of the spec a lab was made from (with its ready runtime pods)."""
    from netcc.frontend import parse_spec

    path = Path(spec)
    try:
        text = path.read_bytes()
    except OSError as e:
        raise ServiceLabError(f"the lab's spec {path}: {e.strerror}") from None
    from netcc.sources.bundle import SourceError
    from netcc.sources.readers import disk_bundle

    try:
        bundle = disk_bundle(text, path)
    except SourceError as e:
        raise ServiceLabError(str(e)) from None
    cluster, _ = parse_spec(text, str(path), bundle)
    return service_ports(cluster, plan, runtime)


def probe_service(
    plan: LabPlan,
    spec: str | Path,
    src: str,
    target: str,
    port: int,
    protocol: str,
    count: int = 1,
    timeout: float = 1.0,
    runtime: Sequence[RuntimePod] = (),
) -> ServiceProbeReport | None:
    """`count` real connections from SRC to a service target (None if `target` is no service),
    with servers started for the duration in every backend of that service port (static
    workloads, and the ready ones of the lab's `runtime` pods)."""
    try:
        ports = lab_service_ports(spec, plan, runtime)
    except ServiceLabError:
        if target.startswith(SVC_PREFIX):
            raise
        return None  # the spec is gone: no services to know of, the target is something else
    resolved = resolve_service(ports, plan, target, port, protocol)
    if resolved is None:
        return None
    try:
        s = resolve_endpoint(plan, src)
    except LabPlanError as e:
        raise ServiceLabError(str(e)) from None
    p = resolved.port_plan
    with Servers(listeners_for([p])):
        answers = connect_many(
            s.netns, str(s.ip), str(resolved.ip), resolved.port, p.protocol, count, timeout
        )
    return ServiceProbeReport(
        src,
        str(s.ip),
        resolved.describe(),
        str(resolved.ip),
        resolved.port,
        p.protocol,
        answers,
        sorted({b.pod for b in p.backends}),
    )


def probe_running_lab(
    src: str, target: str, port: int, protocol: str, count: int = 1, timeout: float = 1.0
) -> ServiceProbeReport | None:
    """`probe_service` in the lab that is up (None if `target` is no service of its spec)."""
    from netcc.lab.state import STATE_DIR, LabState

    state = LabState.load(STATE_DIR)
    if state.doc.get("status") != "up":
        raise ServiceLabError("the lab is not up (half-made?); run `netcc lab down`")
    from netcc.lab.kubeapi import read_pods
    from netcc.lab.pods import with_runtime_pods

    plan = with_runtime_pods(plan_from_doc(state.doc["plan"]), state)
    listed = read_pods(state.path.parent)
    runtime = [
        RuntimePod(
            r["key"],
            r["key"].split("/", 1)[0],
            tuple(sorted(listed.get(r["key"], {}).get("labels", {}).items())),
            r.get("class") or "",
            bool(listed.get(r["key"], {}).get("ready")),
        )
        for r in state.of_kind("pod")
        if r.get("ips")
    ]
    return probe_service(
        plan, state.doc["spec"], src, target, port, protocol, count, timeout, runtime
    )
