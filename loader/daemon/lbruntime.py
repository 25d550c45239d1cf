"""The node daemon's live service backends: what the EndpointSlice watch reports, kept on
disk, reconciled into the LB maps.

- `changed(service, slices)` (the watch's callback) records the service's slices in the data
  directory (one small file per service, renamed into place, so a change costs the work of
  one service), recomputes that service's entries (`lbservices.Reconciler`) and writes the
  difference on the applied datapath (`lbwriter`). When the accepted OUT is not the applied
  one yet, the next full apply puts the entries.
- The full apply asks `overlay()` under the node's lock: the reconciler's entries replace
  OUT's for the dynamic rows, so drift repair never undoes a live backend.
- A restarted daemon reads the recorded slices before its first apply, so the datapath keeps
  its live backends across the restart; the watch's first list then brings them up to date,
  and `synced(seen)` forgets the services the list no longer has.
- A new OUT gets a new reconciler, fed every recorded service.

Locks: `_lock` serialises changes (one writer); `_compute` guards the reconciler's entries
and is never held while the node's state lock is taken, and the full apply takes it inside
the state lock, so the two orders never cross.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from netcc.contract import services as dyn
from netcc.loader import state
from netcc.loader.daemon.fastpath import NotApplied
from netcc.loader.daemon.lbservices import Reconciler, SliceLike
from netcc.loader.daemon.lbwriter import LbWriter
from netcc.loader.desired import ServiceOverlay
from netcc.loader.kube.endpointslices import EndpointSlice, SliceEndpoint, SlicePort

log = logging.getLogger("netcc.daemon.services")

RECORD_DIR = "endpoints"
LATENCY_SAMPLES = 1024


class ServiceBackends:
    """Live backends for one node daemon (see the module doc)."""

    def __init__(self, node: str, paths: state.Paths, data_dir: Path) -> None:
        self.node = node
        self.paths = paths
        self.dir = Path(data_dir) / RECORD_DIR
        self.writer = LbWriter(paths)
        self._lock = threading.Lock()
        self._compute = threading.Lock()
        self.inputs: dict[str, tuple[SliceLike, ...]] = self._read_records()
        self.reconciler: Reconciler | None = None
        self.digest: str | None = None
        self.node_address: str | None = None
        self.is_synced = False
        self.events = 0
        self.writes = 0
        self.pending = False  # a change waits for the full apply (OUT not applied yet)
        self.last_error = ""
        self.latency: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self.on_change: Callable[[], None] | None = None  # after a change was made

    # -- OUT ---------------------------------------------------------------------------------

    def use(
        self,
        digest: str,
        services: dyn.Services | None,
        entries: list[dict[str, Any]],
        address: str | None,
    ) -> None:
        """Take the accepted OUT: its dynamic ports, and this node's `netcc_lb_services`
        entries; every recorded service is reconciled again (pure: the full apply writes)."""
        with self._lock:
            if digest == self.digest:
                return
            rec = None
            if services is not None:
                rec = Reconciler(self.node, services, entries)
                for service, slices in sorted(self.inputs.items()):
                    rec.update(service, slices)
            with self._compute:
                self.reconciler, self.digest, self.node_address = rec, digest, address
            self.pending = False

    @property
    def active(self) -> bool:
        return self.reconciler is not None

    # -- changes -----------------------------------------------------------------------------

    def changed(self, service: str, slices: Iterable[SliceLike]) -> None:
        """The watch's callback: `service` has these slices now."""
        started = time.monotonic()
        slices = tuple(slices)
        with self._lock:
            self.events += 1
            if slices:
                self.inputs[service] = slices
            else:
                self.inputs.pop(service, None)
            self._record(service, slices)
            rec, digest = self.reconciler, self.digest
            if rec is None or digest is None:
                return
            with self._compute:
                change = rec.update(service, slices)
            if not change:
                return
            try:
                self.writer.write(digest, change, self.node_address)
                self.writes += 1
                self.latency.append(time.monotonic() - started)
                self.last_error = ""
            except NotApplied as e:
                self.pending = True
                log.info("service %s: waits for the full apply (%s)", service, e)
            except Exception as e:  # a full map, a vanished pin: the full apply repairs
                self.pending = True
                self.last_error = f"service {service}: {e}"
                log.error("writing the backends of %s failed: %s", service, e)
            if self.on_change is not None:
                self.on_change()

    def synced(self, seen: Iterable[str]) -> None:
        """The watch listed everything: forget recorded services it does not have."""
        seen = set(seen)
        for service in sorted(set(self.inputs) - seen):
            self.changed(service, ())
        self.is_synced = True

    def overlay(self) -> ServiceOverlay | None:
        """For the full apply, under the node's lock."""
        with self._compute:
            rec = self.reconciler
            if rec is None:
                return None
            overlay = ServiceOverlay(rec.rows, rec.overlay())
        self.pending = False
        return overlay

    # -- the record on disk ------------------------------------------------------------------

    def _path(self, service: str) -> Path:
        return self.dir / (hashlib.sha256(service.encode()).hexdigest()[:32] + ".json")

    def _record(self, service: str, slices: tuple[SliceLike, ...]) -> None:
        path = self._path(service)
        if not slices:
            path.unlink(missing_ok=True)
            return
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        doc = {"service": service, "slices": [_slice_doc(s) for s in slices]}
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(doc, sort_keys=True))
        os.replace(tmp, path)

    def _read_records(self) -> dict[str, tuple[SliceLike, ...]]:
        out: dict[str, tuple[SliceLike, ...]] = {}
        if not self.dir.is_dir():
            return out
        for path in sorted(self.dir.glob("*.json")):
            try:
                doc = json.loads(path.read_text())
                out[doc["service"]] = tuple(_slice_of(doc["service"], s) for s in doc["slices"])
            except (OSError, ValueError, KeyError, TypeError) as e:
                log.warning("ignoring the unreadable record %s: %s", path, e)
        return out

    # -- the report --------------------------------------------------------------------------

    def report(self) -> dict[str, Any] | None:
        """The live backends as written (taken between changes, never in the middle of one)."""
        with self._lock, self._compute:
            rec = self.reconciler
            ports = rec.report() if rec is not None else None
        if ports is None:
            return None
        lat = sorted(self.latency)
        return {
            "synced": self.is_synced,
            "events": self.events,
            "writes": self.writes,
            "pending": self.pending,
            "lastError": self.last_error,
            "writeSeconds": {
                "p50": _quantile(lat, 0.5),
                "p99": _quantile(lat, 0.99),
                "samples": len(lat),
            },
            "ports": ports,
        }


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(q * len(values)))], 6)


def _slice_doc(s: SliceLike) -> dict[str, Any]:
    return {
        "name": s.name,
        "ports": [[p.name, p.port, p.protocol] for p in s.ports],
        "endpoints": [
            [e.address, e.ready, e.serving, e.terminating, e.node_name] for e in s.endpoints
        ],
    }


def _slice_of(service: str, doc: dict[str, Any]) -> EndpointSlice:
    namespace, name = service.split("/", 1)
    return EndpointSlice(
        namespace=namespace,
        name=str(doc["name"]),
        service=name,
        address_type="IPv4",
        ports=tuple(
            SlicePort(str(n), p if p is None else int(p), str(pr)) for n, p, pr in doc["ports"]
        ),
        endpoints=tuple(
            SliceEndpoint(str(a), bool(r), bool(s), bool(t), str(nn))
            for a, r, s, t, nn in doc["endpoints"]
        ),
        resource_version="",
    )
