"""The node daemon's metrics, in the Prometheus text format (`prometheus_client`).

`netcc load run --metrics-address HOST:PORT` (default `:9967`, `off`: none) serves
`/metrics` from a thread of its own. Each scrape reads the node's pinned maps (`NodeCollector`):

    netcc_policy_verdict_packets_total{policy,rule,direction,verdict}   and _bytes_total
        packets and bytes per verdict of the applied version's table (`verdicts.json`), summed
        over CPUs: `rule` is the rule's index under `policy`, `default-deny` (every pod's
        default deny of one direction summed: no per-pod label), or a reserved verdict's name
        (`DROP_SPOOFED`, `ALLOW_FROM_HOST`, ...); `verdict` is allowed or dropped
    netcc_drops_total{reason}                  dropped packets: a reserved drop's name without
                                               `DROP_`, lower-case (`spoofed`), or
                                               `policy_denied` (the default denies)
    netcc_map_entries{map}, netcc_map_capacity{map}     conntrack, NodePort NAT, LB maps
    netcc_flow_events_total, netcc_flow_events_lost_total{reason="budget"|"ring"}
    netcc_artifacts_info{node,digest} 1        the applied version (sha256 of its lock)
    netcc_daemon_ready                         1 once the datapath is applied (ADD served)

and what the daemon observes itself (`DaemonMetrics`): `netcc_cni_add_duration_seconds`
(histogram), `netcc_cni_requests_total{command,result}`, `netcc_apply_duration_seconds`
(histogram), `netcc_applies_total{result}`, `netcc_apply_last_success_timestamp_seconds`, and
`netcc_metrics_errors_total{part}` (scrapes that could not read a part of the kernel's state).
Every label takes a bounded set of values: the policies and rules of OUT, fixed names.

Labels and counters are read from one version: under the node's state lock, taken shared and
without waiting (`state.locked` is the appliers'), so an apply that renumbers the verdicts
(and moves the counters to a new `netcc_stats`) is never read half-way; a scrape during an
apply serves the previous reading. Counting the entries of a map costs a syscall per key (a
262,144-entry conntrack table: a quarter of a million), so counts are kept for `FILL_TTL`
seconds. A failure here never reaches the CNI server or the applies: a part that cannot be
read is left out of that scrape and counted.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from netcc.contract.cni import METRICS_PORT
from netcc.contract.events import BUDGET_MAP
from netcc.loader import libbpf, state

log = logging.getLogger("netcc.metrics")

DEFAULT_ADDRESS = f":{METRICS_PORT}"
OFF = "off"
STATS_MAP = "netcc_stats"
FILL_MAPS = (
    "netcc_ct",
    "netcc_lb_nat",
    "netcc_lb_affinity",
    "netcc_lb_services",
    "netcc_lb_backends",
)
FILL_TTL = 5.0  # seconds a map's entry count is served before it is counted again
DEFAULT_DENY = "default-deny"
POLICY_DENIED = "policy_denied"
ALLOWED, DROPPED, UNKNOWN = "allowed", "dropped", "unknown"
EVENT_LOSSES = (("budget", "lost_budget"), ("ring", "lost_ring"))
RESULTS = ("success", "error")
CNI_COMMANDS = ("add", "del", "check", "status", "gc")
READ_PARTS = ("verdicts", "maps", "readiness")
CNI_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
APPLY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


# --- what labels a verdict gets (pure) ----------------------------------------------------


@dataclass(frozen=True, order=True)
class VerdictLabels:
    policy: str
    rule: str
    direction: str
    verdict: str  # allowed | dropped | unknown

    def values(self) -> list[str]:
        return [self.policy, self.rule, self.direction, self.verdict]


VERDICT_LABELS = ("policy", "rule", "direction", "verdict")


def verdict_labels(entry: Mapping[str, Any]) -> VerdictLabels:
    """The labels of a `verdicts.json` entry: a rule by policy and index, a default deny by
    direction alone (every pod's summed), a reserved verdict by its name."""
    action = entry.get("action")
    verdict = ALLOWED if action == "allow" else DROPPED if action == "drop" else UNKNOWN
    direction = str(entry.get("direction", ""))
    if "policy" in entry:
        return VerdictLabels(str(entry["policy"]), str(entry.get("index", "")), direction, verdict)
    if "pod" in entry:
        return VerdictLabels("", DEFAULT_DENY, direction, verdict)
    return VerdictLabels("", str(entry.get("name", UNKNOWN)), direction, verdict)


def drop_reason(entry: Mapping[str, Any]) -> str | None:
    """`netcc_drops_total`'s reason for a verdict that drops, None for an allow."""
    if entry.get("action") != "drop":
        return None
    if "pod" in entry:
        return POLICY_DENIED
    return str(entry.get("name", UNKNOWN)).removeprefix("DROP_").lower()


# --- what one scrape read -----------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """The applied version's verdict counters and event counters, read together."""

    digest: str
    verdicts: Mapping[int, Mapping[str, Any]]  # number -> its verdicts.json entry
    counters: Mapping[int, tuple[int, int]]  # number -> (packets, bytes), over CPUs
    events: Mapping[str, int] | None = None  # sent, lost_budget, lost_ring; None: no map


@dataclass(frozen=True)
class Fill:
    entries: int
    capacity: int


def verdict_families(reading: Reading) -> list[Any]:
    """Packets and bytes per verdict label set, and drops per reason (pure)."""
    packets = CounterMetricFamily(
        "netcc_policy_verdict_packets",
        "Packets judged on this node, per policy rule, default deny or reserved verdict.",
        labels=VERDICT_LABELS,
    )
    nbytes = CounterMetricFamily(
        "netcc_policy_verdict_bytes",
        "Bytes judged on this node, per policy rule, default deny or reserved verdict.",
        labels=VERDICT_LABELS,
    )
    drops = CounterMetricFamily(
        "netcc_drops", "Packets dropped on this node, per reason.", labels=("reason",)
    )
    by_labels: dict[VerdictLabels, list[int]] = {}
    by_reason: dict[str, int] = {}
    for number, entry in reading.verdicts.items():
        got = reading.counters.get(number, (0, 0))
        total = by_labels.setdefault(verdict_labels(entry), [0, 0])
        total[0] += got[0]
        total[1] += got[1]
        reason = drop_reason(entry)
        if reason is not None:
            by_reason[reason] = by_reason.get(reason, 0) + got[0]
    for labels, (p, b) in sorted(by_labels.items()):
        packets.add_metric(labels.values(), p)
        nbytes.add_metric(labels.values(), b)
    for reason, p in sorted(by_reason.items()):
        drops.add_metric([reason], p)
    return [packets, nbytes, drops]


def event_families(events: Mapping[str, int] | None) -> list[Any]:
    sent = CounterMetricFamily(
        "netcc_flow_events", "Flow events the datapath wrote into its ring buffer."
    )
    lost = CounterMetricFamily(
        "netcc_flow_events_lost",
        "Flow events not written: over a CPU's budget, or the ring buffer full.",
        labels=("reason",),
    )
    if events is not None:
        sent.add_metric([], events.get("sent", 0))
        for reason, key in EVENT_LOSSES:
            lost.add_metric([reason], events.get(key, 0))
    return [sent, lost]


def fill_families(fill: Mapping[str, Fill]) -> list[Any]:
    entries = GaugeMetricFamily(
        "netcc_map_entries",
        f"Entries of a state map (counted at most every {FILL_TTL:g} s).",
        labels=("map",),
    )
    capacity = GaugeMetricFamily(
        "netcc_map_capacity", "Entries a state map can hold (max_entries).", labels=("map",)
    )
    for name, f in sorted(fill.items()):
        entries.add_metric([name], f.entries)
        capacity.add_metric([name], f.capacity)
    return [entries, capacity]


def info_families(node: str, digest: str | None, ready: bool | None) -> list[Any]:
    info = GaugeMetricFamily(
        "netcc_artifacts_info",
        "The artifacts applied on this node: the sha256 of their lock file.",
        labels=("node", "digest"),
    )
    if digest:
        info.add_metric([node, digest], 1)
    up = GaugeMetricFamily(
        "netcc_daemon_ready", "1 once the node's datapath is applied and CNI ADD is served."
    )
    if ready is not None:
        up.add_metric([], 1 if ready else 0)
    return [info, up]


# --- reading the kernel -------------------------------------------------------------------


class Busy(Exception):
    """An apply holds the node's state lock: its maps and state may not agree right now."""


@contextlib.contextmanager
def applied_version(paths: state.Paths) -> Iterator[dict[str, Any] | None]:
    """The applied state document (None: nothing applied), with the node's state lock held
    shared for the block; Busy at once when an apply or a pod change holds it."""
    try:
        fd = os.open(paths.state_dir / ".lock", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield None  # never applied here
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(str(paths.state_dir)) from None
        yield state.load_state(paths)
    finally:
        os.close(fd)


def read_counters(paths: state.Paths) -> Reading | None:
    """The applied version's table, its verdict counters and event counters, read under the
    state lock (Busy if an apply holds it); None when nothing is applied."""
    from netcc.loader import migrate
    from netcc.loader.mapdata import Layout, event_counters
    from netcc.loader.maps import BpfMap

    with applied_version(paths) as doc:
        if doc is None:
            return None
        layout = Layout(json.loads(state.read_copy(paths, state.LAYOUT_COPY)))
        table = migrate.verdict_table(
            json.loads(state.read_copy(paths, state.VERDICTS_COPY)), doc.get("stale_verdict")
        )
        counters = {}
        with BpfMap.pinned(paths.maps / STATS_MAP, layout) as stats:
            for number in table:
                key = number.to_bytes(4, "little")
                values = [stats.unpack_value(v) for v in stats.get_percpu(key)]
                counters[number] = (
                    sum(v["packets"] for v in values),
                    sum(v["bytes"] for v in values),
                )
        events = None
        if BUDGET_MAP in layout.maps and (paths.maps / BUDGET_MAP).exists():
            with BpfMap.pinned(paths.maps / BUDGET_MAP, layout) as budget:
                events = event_counters(budget)
        return Reading(str(doc["digest"]), table, counters, events)


def count_keys(fd: int, key_size: int, limit: int) -> int:
    """The keys of a hash map, at most `limit` steps of walking (`libbpf.map_count`)."""
    return libbpf.map_count(fd, key_size, limit)


@dataclass
class FillCache:
    """Each state map's entry count, counted at most every `ttl` seconds."""

    ttl: float = FILL_TTL
    clock: Callable[[], float] = time.monotonic
    _found: dict[str, tuple[float, Fill]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def read(self, paths: state.Paths) -> dict[str, Fill]:
        with self._lock:  # one count at a time, however many scrapers
            now = self.clock()
            out = {}
            for name in FILL_MAPS:
                cached = self._found.get(name)
                if cached is not None and now - cached[0] < self.ttl:
                    out[name] = cached[1]
                    continue
                pin = paths.maps / name
                if not pin.exists():
                    self._found.pop(name, None)
                    continue
                fd = libbpf.obj_get(pin)
                try:
                    info = libbpf.map_info(fd)
                    limit = 2 * info["max_entries"] + 1
                    fill = Fill(count_keys(fd, info["key_size"], limit), info["max_entries"])
                finally:
                    os.close(fd)
                self._found[name] = (now, fill)
                out[name] = fill
            return out


# --- the collector and the daemon's own instruments ---------------------------------------


class NodeCollector(Collector):
    """Reads one node's maps at scrape time (see the module's docstring)."""

    def __init__(
        self,
        node: str,
        paths: state.Paths,
        ready: Callable[[], bool | None],
        errors: Counter,
        read: Callable[[state.Paths], Reading | None] = read_counters,
        fill: Callable[[state.Paths], Mapping[str, Fill]] | None = None,
    ) -> None:
        self.node = node
        self.paths = paths
        self.ready = ready
        self.errors = errors
        self.read = read
        self.fill = fill or FillCache().read
        self._last: Reading | None = None
        self._logged: set[str] = set()

    def _failed(self, part: str, e: BaseException) -> None:
        self.errors.labels(part).inc()
        if part not in self._logged:  # once per part: a scrape a second must not flood
            self._logged.add(part)
            log.warning("metrics: cannot read the %s of node %s: %s", part, self.node, e)

    def collect(self) -> Iterable[Any]:
        reading = self._last
        try:
            reading = self.read(self.paths)
            self._last = reading
        except Busy:
            pass  # an apply is changing them: the previous reading, consistent in itself
        except Exception as e:
            self._failed("verdicts", e)
        try:
            fill = dict(self.fill(self.paths))
        except Exception as e:
            self._failed("maps", e)
            fill = {}
        try:
            ready = self.ready()
        except Exception as e:
            self._failed("readiness", e)
            ready = None
        empty = Reading("", {}, {})
        yield from verdict_families(reading or empty)
        yield from event_families(reading.events if reading else None)
        yield from fill_families(fill)
        yield from info_families(self.node, reading.digest if reading else None, ready)


class DaemonMetrics:
    """The daemon's registry (its own, never the library's global one): the collector of the
    node's maps and the instruments the daemon observes."""

    def __init__(
        self,
        node: str,
        paths: state.Paths,
        ready: Callable[[], bool | None] = lambda: None,
        **collector: Any,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.errors = Counter(
            "netcc_metrics_errors",
            "Scrapes that could not read a part of the node's state (logged once per part).",
            ["part"],
            registry=None,  # registered after the collector: a scrape counts its own failures
        )
        self.cni_add = Histogram(
            "netcc_cni_add_duration_seconds",
            "Time the daemon took to answer a CNI ADD, success or error.",
            buckets=CNI_BUCKETS,
            registry=r,
        )
        self.cni_requests = Counter(
            "netcc_cni_requests", "CNI requests answered.", ["command", "result"], registry=r
        )
        self.apply_duration = Histogram(
            "netcc_apply_duration_seconds",
            "Time a full apply of the accepted artifacts took, success or error.",
            buckets=APPLY_BUCKETS,
            registry=r,
        )
        self.applies = Counter(
            "netcc_applies", "Full applies of the accepted artifacts.", ["result"], registry=r
        )
        self.last_success = Gauge(
            "netcc_apply_last_success_timestamp_seconds",
            "When the last full apply succeeded (Unix time).",
            registry=r,
        )
        for result in RESULTS:  # every series from the first scrape: rate() sees the first
            self.applies.labels(result)
            for command in CNI_COMMANDS:
                self.cni_requests.labels(command, result)
        for part in READ_PARTS:
            self.errors.labels(part)
        self.collector = NodeCollector(node, paths, ready, self.errors, **collector)
        r.register(self.collector)
        r.register(self.errors)

    @contextlib.contextmanager
    def applying(self) -> Iterator[None]:
        """Observes a full apply around the block (its duration and result)."""
        start = time.monotonic()
        try:
            yield
        except BaseException:
            self.applies.labels("error").inc()
            raise
        finally:
            self.apply_duration.observe(time.monotonic() - start)
        self.applies.labels("success").inc()
        self.last_success.set(time.time())

    def instrument(self, handler: Any) -> InstrumentedHandler:
        """`handler` (the daemon's CNI commands) with every command counted and ADD timed."""
        return InstrumentedHandler(handler, self)

    def names(self) -> set[str]:
        """The name of every sample this registry can give (for checking dashboards)."""
        return {s.name for family in self.registry.collect() for s in family.samples}


class InstrumentedHandler:
    """A CNI handler (`netcc.loader.cni.server.Handler`) observed by `DaemonMetrics`."""

    def __init__(self, handler: Any, metrics: DaemonMetrics) -> None:
        self.handler = handler
        self.metrics = metrics

    def _observed(self, command: str, call: Callable[[], Any]) -> Any:
        start = time.monotonic()
        result = "error"
        try:
            got = call()
            result = "success"
            return got
        finally:
            with contextlib.suppress(Exception):  # a metric never fails a CNI command
                if command == "add":
                    self.metrics.cni_add.observe(time.monotonic() - start)
                self.metrics.cni_requests.labels(command, result).inc()

    def add(self, req: Any) -> Any:
        return self._observed("add", lambda: self.handler.add(req))

    def delete(self, req: Any) -> None:
        return self._observed("del", lambda: self.handler.delete(req))

    def check(self, req: Any) -> None:
        return self._observed("check", lambda: self.handler.check(req))

    def status(self, req: Any) -> None:
        return self._observed("status", lambda: self.handler.status(req))

    def gc(self, req: Any) -> None:
        return self._observed("gc", lambda: self.handler.gc(req))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handler, name)


# --- serving ------------------------------------------------------------------------------


def parse_address(text: str) -> tuple[str, int] | None:
    """`HOST:PORT` (HOST empty: every address; `[::]:PORT` for IPv6), or `off`: None.
    ValueError when it is neither."""
    if text.strip().lower() == OFF:
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"metrics address {text!r}: give HOST:PORT, :PORT or {OFF}")
    host = host.removeprefix("[").removesuffix("]")
    return (host or "0.0.0.0", int(port))


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape a second would flood the daemon's log


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class MetricsServer:
    """`/metrics` of `registry` over HTTP, served by a thread of its own until `close()`."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        server = type("Server", (_Server,), {"address_family": _family(host)})
        self.httpd = server((host, port), _QuietHandler)
        self.httpd.set_app(make_wsgi_app(registry))
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)
        self.thread.start()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def serve(registry: CollectorRegistry, address: str | None) -> MetricsServer | None:
    """Start serving on `address` (`parse_address`); None when it is off or cannot be
    served (logged: the daemon goes on without metrics)."""
    try:
        where = parse_address(address or OFF)
        if where is None:
            return None
        server = MetricsServer(registry, *where)
    except (OSError, ValueError) as e:
        log.error("metrics are not served on %s: %s", address, e)
        return None
    host, port = server.address
    log.info("serving metrics on http://%s:%d/metrics", host, port)
    return server


__all__ = [
    "DEFAULT_ADDRESS",
    "DaemonMetrics",
    "Fill",
    "MetricsServer",
    "NodeCollector",
    "Reading",
    "drop_reason",
    "parse_address",
    "serve",
    "verdict_labels",
]
