"""The live backends of Services: EndpointSlices (discovery.k8s.io/v1), listed and watched
like client-go's reflector does for kube-proxy.

`EndpointSlice.from_json` checks one object (BadResponse naming the field, never a traceback).
`SliceCache` holds the IPv4 slices that belong to a Service and says which services an event
or a relist changed. `SliceWatcher` lists all namespaces in pages, watches from the list's
resourceVersion with bookmarks, lists again on 410 Gone, and backs off with jitter on errors.
RBAC: `list` and `watch` on `endpointslices.discovery.k8s.io`, cluster-wide.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from netcc.loader.cni import names
from netcc.loader.kube.client import KubeClient
from netcc.loader.kube.errors import (
    Action,
    BadResponse,
    ConfigError,
    Forbidden,
    Gone,
    KubeError,
    Unauthorized,
    Unavailable,
)

log = logging.getLogger("netcc.kube")

PATH = "/apis/discovery.k8s.io/v1/endpointslices"
RESOURCE = "endpointslices.discovery.k8s.io"
SERVICE_LABEL = "kubernetes.io/service-name"
PROTOCOLS = ("TCP", "UDP", "SCTP")
WATCH_MARGIN = 30
"""Seconds of silence past a watch's timeoutSeconds before the connection counts as dead."""
RBAC_HINT = (
    f"the node's service account needs `list` and `watch` on {RESOURCE}"
    " in all namespaces (a ClusterRole and ClusterRoleBinding)"
)
_LIST = Action("list", RESOURCE)
_WATCH = Action("watch", RESOURCE)
_KINDS = {
    dict: "an object",
    list: "a list",
    str: "a string",
    bool: "true or false",
    int: "an integer",
}
_MAX_SHOWN = 300


class _Problem(ValueError):
    """What is wrong with one field, before the slice's name is put in front."""


def _shown(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _field(obj: dict, key: str, kind: type, where: str, default):
    """`obj[key]` when it is a `kind`; `default` when it is missing or null."""
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        path = f"{where}.{key}" if where else key
        raise _Problem(f"{path} must be {_KINDS[kind]}, not {_shown(value)}")
    return value


def _name(value: str, path: str, problem: Callable[[str], str | None]) -> str:
    if why := problem(value):
        raise _Problem(f"{path} {_shown(value)} {why}")
    return value


@dataclass(frozen=True)
class SliceEndpoint:
    """One endpoint of a slice: its first address and its conditions."""

    address: str
    ready: bool
    serving: bool
    terminating: bool
    node_name: str = ""

    @classmethod
    def from_json(cls, doc: object, path: str, address_type: str) -> SliceEndpoint:
        if not isinstance(doc, dict):
            raise _Problem(f"{path} must be an object, not {_shown(doc)}")
        addresses = _field(doc, "addresses", list, path, [])
        if not addresses:
            raise _Problem(f"{path}.addresses is empty")
        address = _address(addresses[0], f"{path}.addresses[0]", address_type)
        cond = _field(doc, "conditions", dict, path, {})
        where = f"{path}.conditions"
        ready = _field(cond, "ready", bool, where, True)  # nil: unknown, taken as ready
        serving = _field(cond, "serving", bool, where, ready)
        terminating = _field(cond, "terminating", bool, where, False)
        node = _field(doc, "nodeName", str, path, "")
        if node:
            _name(node, f"{path}.nodeName", names.pod_name_problem)
        return cls(address, ready, serving, terminating, node)


def _address(value: object, path: str, address_type: str) -> str:
    if not isinstance(value, str):
        raise _Problem(f"{path} must be a string, not {_shown(value)}")
    parse = {"IPv4": ipaddress.IPv4Address, "IPv6": ipaddress.IPv6Address}.get(address_type)
    if parse is None:
        if len(value) > 253:  # FQDN
            raise _Problem(f"{path} is longer than 253 characters")
        return value
    try:
        return str(parse(value))
    except ValueError:
        raise _Problem(f"{path} {_shown(value)} is not an {address_type} address") from None


@dataclass(frozen=True)
class SlicePort:
    """A port of a slice; `port` None means all ports."""

    name: str
    port: int | None
    protocol: str = "TCP"

    @classmethod
    def from_json(cls, doc: object, path: str) -> SlicePort:
        if not isinstance(doc, dict):
            raise _Problem(f"{path} must be an object, not {_shown(doc)}")
        name = _field(doc, "name", str, path, "")
        port = _field(doc, "port", int, path, None)
        if port is not None and not 1 <= port <= 65535:
            raise _Problem(f"{path}.port {port} is not in 1..65535")
        protocol = _field(doc, "protocol", str, path, "TCP")
        if protocol not in PROTOCOLS:
            raise _Problem(f"{path}.protocol {_shown(protocol)} is not one of {PROTOCOLS}")
        return cls(name, port, protocol)


@dataclass(frozen=True)
class EndpointSlice:
    """What the datapath needs of an EndpointSlice."""

    namespace: str
    name: str
    service: str
    address_type: str
    ports: tuple[SlicePort, ...]
    endpoints: tuple[SliceEndpoint, ...]
    resource_version: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def service_key(self) -> str:
        """`namespace/service`, or "" for a slice of no service."""
        return f"{self.namespace}/{self.service}" if self.service else ""

    @classmethod
    def from_json(cls, doc: object) -> EndpointSlice:
        """An EndpointSlice from the API's JSON (a list item, a watch event's object);
        BadResponse naming the first field that is wrong."""
        what = "an EndpointSlice"
        try:
            if not isinstance(doc, dict):
                raise _Problem(f"is not a JSON object but {_shown(doc)}")
            kind = _field(doc, "kind", str, "", "EndpointSlice")  # list items have none
            if kind != "EndpointSlice":
                raise _Problem(f"kind is {_shown(kind)}")
            meta = _field(doc, "metadata", dict, "", {})
            namespace = _field(meta, "namespace", str, "metadata", "")
            name = _field(meta, "name", str, "metadata", "")
            _name(namespace, "metadata.namespace", names.namespace_problem)
            _name(name, "metadata.name", names.pod_name_problem)
            what = f"EndpointSlice {namespace}/{name}"
            rv = _field(meta, "resourceVersion", str, "metadata", "")
            labels = _field(meta, "labels", dict, "metadata", {})
            service = _field(labels, SERVICE_LABEL, str, "metadata.labels", "")
            if service:
                _name(service, f"metadata.labels[{SERVICE_LABEL}]", names.namespace_problem)
            address_type = _field(doc, "addressType", str, "", "")
            if not address_type:
                raise _Problem("addressType is missing")
            ports = tuple(
                SlicePort.from_json(p, f"ports[{i}]")
                for i, p in enumerate(_field(doc, "ports", list, "", []))
            )
            endpoints = tuple(
                SliceEndpoint.from_json(e, f"endpoints[{i}]", address_type)
                for i, e in enumerate(_field(doc, "endpoints", list, "", []))
            )
        except _Problem as e:
            raise BadResponse(f"{what}: {e}") from None
        return cls(namespace, name, service, address_type, ports, endpoints, rv)


def _same(a: EndpointSlice, b: EndpointSlice) -> bool:
    """Equal but for the resourceVersion (a write that changed nothing we use)."""
    return replace(a, resource_version="") == replace(b, resource_version="")


class SliceCache:
    """Pure: the current slices by (namespace, name), grouped by service. Only IPv4 slices
    of a service are held; any other slice is treated as absent."""

    def __init__(self) -> None:
        self._slices: dict[tuple[str, str], EndpointSlice] = {}
        self._services: dict[str, set[tuple[str, str]]] = {}

    @staticmethod
    def keeps(s: EndpointSlice) -> bool:
        return s.address_type == "IPv4" and bool(s.service)

    def apply(self, kind: str, s: EndpointSlice) -> set[str]:
        """A watch event (ADDED, MODIFIED, DELETED); the service keys it changed."""
        if kind == "DELETED" or (kind in ("ADDED", "MODIFIED") and not self.keeps(s)):
            return self.remove(s.namespace, s.name)
        if kind not in ("ADDED", "MODIFIED"):
            raise ValueError(f"unknown event type {kind!r}")
        old = self._slices.get(s.key)
        if old is not None and _same(old, s):
            self._slices[s.key] = s
            return set()
        self.remove(s.namespace, s.name)
        self._put(s)
        return {s.service_key} | ({old.service_key} if old else set())

    def remove(self, namespace: str, name: str) -> set[str]:
        """Forget a slice; the service it belonged to, if it was held."""
        old = self._slices.pop((namespace, name), None)
        if old is None:
            return set()
        keys = self._services[old.service_key]
        keys.discard(old.key)
        if not keys:
            del self._services[old.service_key]
        return {old.service_key}

    def replace(self, slices: Iterable[EndpointSlice]) -> set[str]:
        """A relist: hold exactly `slices`; the services whose slices changed, appeared or
        vanished."""
        new = {s.key: s for s in slices if self.keeps(s)}
        changed: set[str] = set()
        for key in self._slices.keys() | new.keys():
            old, cur = self._slices.get(key), new.get(key)
            if old is None or cur is None or not _same(old, cur):
                changed |= {s.service_key for s in (old, cur) if s is not None}
        self._slices, self._services = {}, {}
        for s in new.values():
            self._put(s)
        return changed

    def service_slices(self, key: str) -> tuple[EndpointSlice, ...]:
        """The slices of service `namespace/name`, sorted by name."""
        return tuple(sorted((self._slices[k] for k in self._services.get(key, ())), key=_by_name))

    def services(self) -> set[str]:
        return set(self._services)

    def __len__(self) -> int:
        return len(self._slices)

    def _put(self, s: EndpointSlice) -> None:
        self._slices[s.key] = s
        self._services.setdefault(s.service_key, set()).add(s.key)


def _by_name(s: EndpointSlice) -> str:
    return s.name


@dataclass
class WatchStats:
    """Counters of a SliceWatcher, for the daemon's status."""

    lists: int = 0  # complete lists (every page)
    pages: int = 0
    relists: int = 0  # complete lists after the first (after a 410)
    watches: int = 0  # watch requests
    reconnects: int = 0  # watches from the last resourceVersion without a list before
    events: int = 0  # ADDED, MODIFIED, DELETED
    bookmarks: int = 0
    gone: int = 0  # 410s: an expired resourceVersion or continue token
    errors: int = 0  # failed requests and malformed objects
    callback_errors: int = 0
    last_error: str = ""
    synced: bool = False  # a first list is complete
    resource_version: str = ""


class SliceWatcher:
    """Keeps a SliceCache current and calls `on_change(service_key, slices)` for every
    service whose slices changed (an empty tuple when all are gone). `run(stop)` loops;
    `step()` does one list or one watch and returns the delay before the next step."""

    def __init__(
        self,
        client: KubeClient,
        on_change: Callable[[str, tuple[EndpointSlice, ...]], None],
        *,
        on_synced: Callable[[], None] | None = None,
        timeout_seconds: int = 300,
        page_size: int = 500,
        backoff: tuple[float, float] = (0.5, 30.0),
        sleep: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if timeout_seconds < 1 or page_size < 1 or not 0 < backoff[0] <= backoff[1]:
            raise ValueError("timeout_seconds, page_size and backoff must be positive")
        self.client = client
        self.on_change = on_change
        self.on_synced = on_synced
        self.timeout_seconds = timeout_seconds
        self.page_size = page_size
        self.backoff = backoff
        self.cache = SliceCache()
        self.stats = WatchStats()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._need_list = True
        self._after_list = False
        self._failures = 0  # failed steps since the last progress
        self._gone_streak = 0  # 410s since the last watch event

    def run(self, stop: threading.Event) -> None:
        """List and watch until `stop` is set (checked between steps and events; a watch
        that brings nothing ends at the server's timeout)."""
        while not stop.is_set():
            delay = self.step(stop)
            if delay > 0 and not stop.is_set():
                if self._sleep is not None:
                    self._sleep(delay)
                else:
                    stop.wait(delay)

    def step(self, stop: threading.Event | None = None) -> float:
        """One list (all its pages) or one watch (until its stream ends); the seconds to wait
        before the next step. Never raises for what the API server or the data do."""
        stop = stop if stop is not None else threading.Event()
        try:
            return self._list(stop) if self._need_list else self._watch(stop)
        except Gone as e:
            return self._gone(e)
        except KubeError as e:
            return self._failed(e)
        except Exception as e:  # a bug or data no check foresaw: log it, never die
            log.exception("EndpointSlice watch failed unexpectedly")
            return self._failed(e)

    # -- list ---------------------------------------------------------------------------------

    def _list(self, stop: threading.Event) -> float:
        slices: list[EndpointSlice] = []
        token, rv = "", ""
        while True:
            if stop.is_set():
                return 0.0
            query = {"limit": str(self.page_size)}
            if token:
                query["continue"] = token
            doc = self.client.get_json(PATH, _LIST, query)
            self.stats.pages += 1
            meta = doc.get("metadata")
            items = doc.get("items")
            items = [] if items is None else items
            if not isinstance(meta, dict) or not isinstance(items, list):
                raise BadResponse(f"{_LIST}: the answer is not an EndpointSliceList")
            rv, nxt = meta.get("resourceVersion"), meta.get("continue") or ""
            if not isinstance(rv, str) or not rv or not isinstance(nxt, str):
                raise BadResponse(f"{_LIST}: the list has no resourceVersion or a bad continue")
            for item in items:
                try:
                    slices.append(EndpointSlice.from_json(item))
                except BadResponse as e:
                    self._bad_object(e)
            if not nxt:
                break
            if nxt == token:
                raise BadResponse(f"{_LIST}: the API server sent the same continue token again")
            token = nxt
        changed = self.cache.replace(slices)
        first = not self.stats.synced
        self.stats.lists += 1
        if not first:
            self.stats.relists += 1
        self.stats.resource_version = rv
        self._need_list, self._after_list, self._failures = False, True, 0
        log.info(
            "listed EndpointSlices at resourceVersion %s: %d IPv4 slices of services",
            rv,
            len(self.cache),
        )
        self._notify(changed)
        if first:
            self.stats.synced = True
            if self.on_synced is not None:
                try:
                    self.on_synced()
                except Exception:
                    self.stats.callback_errors += 1
                    log.exception("on_synced failed")
        return 0.0

    # -- watch --------------------------------------------------------------------------------

    def _watch(self, stop: threading.Event) -> float:
        if not self._after_list:
            self.stats.reconnects += 1
        self._after_list = False
        self.stats.watches += 1
        query = {
            "watch": "1",
            "resourceVersion": self.stats.resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.timeout_seconds),
        }
        timeout = self.timeout_seconds + WATCH_MARGIN
        seen = 0
        with contextlib.closing(self.client.stream_json_lines(PATH, _WATCH, query, timeout)) as s:
            for event in s:
                self._event(event)
                seen += 1
                self._failures = self._gone_streak = 0
                if stop.is_set():
                    return 0.0
        if seen:
            return 0.0  # the server's timeout: watch again at once
        self._failures += 1  # a watch that ended with nothing: not an error, not progress
        return self._backoff(self._failures)

    def _event(self, event: dict) -> None:
        kind, obj = event.get("type"), event.get("object")
        if not isinstance(kind, str) or not isinstance(obj, dict):
            raise BadResponse(f"{_WATCH}: a watch event without a type and an object")
        if kind == "ERROR":
            raise _status_error(obj)
        meta = obj.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        rv = meta.get("resourceVersion")
        rv = rv if isinstance(rv, str) else ""
        if kind == "BOOKMARK":
            if not rv:
                raise BadResponse(f"{_WATCH}: a bookmark without a resourceVersion")
            self.stats.bookmarks += 1
            self.stats.resource_version = rv
            return
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            log.warning("ignoring a watch event of type %s", _shown(kind))
            return
        self.stats.events += 1
        try:
            s = EndpointSlice.from_json(obj)
        except BadResponse as e:
            self._bad_object(e)
            ns, name = meta.get("namespace"), meta.get("name")
            ok = isinstance(ns, str) and isinstance(name, str)
            changed = self.cache.remove(ns, name) if ok else set()  # unknown now: absent
        else:
            changed = self.cache.apply(kind, s)
        if rv:
            self.stats.resource_version = rv
        self._notify(changed)

    # -- outcomes -----------------------------------------------------------------------------

    def _notify(self, keys: set[str]) -> None:
        for key in sorted(keys):
            try:
                self.on_change(key, self.cache.service_slices(key))
            except Exception:
                self.stats.callback_errors += 1
                log.exception("on_change(%s) failed", key)

    def _bad_object(self, e: BadResponse) -> None:
        self.stats.errors += 1
        self.stats.last_error = str(e)
        log.error("ignoring a malformed EndpointSlice (taken as absent): %s", e)

    def _gone(self, e: Gone) -> float:
        """410: list again, at once the first time, then with backoff (no list loop)."""
        self.stats.gone += 1
        self.stats.last_error = str(e)
        self._need_list = True
        self._gone_streak += 1
        delay = 0.0 if self._gone_streak == 1 else self._backoff(self._gone_streak - 1)
        log.info("%s; listing EndpointSlices again in %.1f s", e, delay)
        return delay

    def _failed(self, e: Exception) -> float:
        self.stats.errors += 1
        self.stats.last_error = str(e) or type(e).__name__
        self._failures += 1
        if isinstance(e, Forbidden | Unauthorized | ConfigError):
            delay = self._jitter(self.backoff[1])
            hint = f"; {RBAC_HINT}" if isinstance(e, Forbidden) else ""
            log.error("%s%s; retrying in %.1f s", e, hint, delay)
            return delay
        delay = self._backoff(self._failures)
        if isinstance(e, Unavailable) and e.retry_after is not None:
            delay = max(delay, min(e.retry_after, self.backoff[1]))
        log.warning("%s; retrying in %.1f s", self.stats.last_error, delay)
        return delay

    def _backoff(self, n: int) -> float:
        """The delay after `n` failures in a row: doubling from backoff[0], capped."""
        base, cap = self.backoff
        return self._jitter(min(cap, base * 2 ** min(n - 1, 62)))

    def _jitter(self, delay: float) -> float:
        """Uniform in [3/4, 5/4] of `delay`, kept within [backoff[0], backoff[1]]."""
        base, cap = self.backoff
        low, high = max(base, 0.75 * min(delay, cap)), min(cap, 1.25 * delay)
        return low + (high - low) * self._rng.random()


def _status_error(obj: dict) -> KubeError:
    """The error an ERROR watch event's Status stands for."""
    code, reason, message = obj.get("code"), obj.get("reason"), obj.get("message")
    text = " ".join(message.split()) if isinstance(message, str) else ""
    text = text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"
    said = f" {code}" if isinstance(code, int) else ""
    said += f" {reason[:40]}" if isinstance(reason, str) else ""
    msg = f"{_WATCH}: the watch ended with an error{said}: {text}"
    if code == 410 or reason in ("Expired", "Gone"):
        return Gone(msg)
    details = obj.get("details")
    retry = details.get("retryAfterSeconds") if isinstance(details, dict) else None
    ok = isinstance(retry, int) and not isinstance(retry, bool) and retry >= 0
    return Unavailable(msg, retry_after=float(retry) if ok else None)
