"""`netcc load run`: the node daemon's life: take OUT, apply it, serve CNI, keep applying.

1. OUT is *accepted* only if no running pod of this node would be misplaced by it (its class
   gone, or its address outside its class's block: `view.misplaced`). An accepted OUT is
   copied into the data directory (`DATA/artifacts/DIGEST`, checked against its lock again),
   so the daemon keeps applying exactly what it accepted even when OUT changes in place; a
   refused OUT leaves the previous copy in force and is reported (`daemon.json`, read by
   `netcc load status`).
2. The CNI socket is served from the start: DELs (spooled ones first) work at once, ADD
   answers 11 (try again later) until the first apply succeeds.
3. Every `interval` seconds: a new OUT (its lock's digest changed) is considered, the routes
   to the other nodes' podCIDRs are checked (`noderoutes`, unless WireGuard routes them), and
   the accepted OUT applied again with the pods on disk (drift repair).
4. Once the datapath is applied, the CNI network config list is written into the conf dir
   (kubelet takes it as the node's network being ready).
5. Metrics in the Prometheus text format on `metrics_address` (`metrics`): the node's verdict
   counters, map fill, flow event losses, CNI ADD and apply durations, the applied digest.
6. Flow records on `flows_socket` (`flows`): the datapath's flow events with both ends and
   the rule named, for `netcc observe`.

`daemon.json` in the loader's state directory says what the daemon is doing: ready or why
not, the accepted and the refused artifacts, the pods, each class's block usage.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netcc.contract import cni as cni_paths
from netcc.contract.lock import LOCK_NAME
from netcc.loader import state
from netcc.loader.cni.ipam import AddressStore
from netcc.loader.cni.server import CniServer
from netcc.loader.daemon.fastpath import FastPath
from netcc.loader.daemon.handler import Daemon, PodSource, Readiness
from netcc.loader.daemon.lbruntime import ServiceBackends
from netcc.loader.daemon.metrics import DaemonMetrics, MetricsServer, serve
from netcc.loader.daemon.noderoutes import ensure_routes
from netcc.loader.daemon.view import NodeView, ViewError, misplaced, read_view
from netcc.loader.desired import RuntimeEndpoint

log = logging.getLogger("netcc.daemon")

REPORT_FILE = "daemon.json"
CONFLIST_NAME = cni_paths.CONFLIST_NAME
PLUGIN_TYPE = cni_paths.PLUGIN_TYPE
NETWORK_NAME = "netcc"
ACCEPTED = "accepted"  # in the data dir: the digest of the accepted OUT's copy
DATA_BASE = Path(cni_paths.DATA_BASE)
FULL_APPLY_ENV = "NETCC_DAEMON_FULL_APPLY"
"""`1`: every ADD and DEL takes the full apply instead of the incremental one (`fastpath`):
for comparing the two (bench/cni_churn.py) and for diagnosis."""


@dataclass(frozen=True)
class RunConfig:
    """What `netcc load run` was asked to do."""

    out: Path
    node: str
    socket: Path
    data_dir: Path  # the CNI state (addresses) and accepted OUT copies: survives restarts
    pin_root: str | None = None
    state_dir: str | None = None  # the loader's (default /run/netcc/NODE)
    conf_dir: Path | None = None
    wireguard: str = "auto"
    interval: float = 30.0
    metrics_address: str | None = None  # HOST:PORT of /metrics (`metrics`); None: off
    flows_socket: Path | None = None  # where flow records are served (`flows`); None: off

    @property
    def paths(self) -> state.Paths:
        return state.paths_for(self.node, self.pin_root, self.state_dir)


def lock_digest(out: Path) -> str:
    """The sha256 of OUT's lock file: the name of an artifact version."""
    return hashlib.sha256((Path(out) / LOCK_NAME).read_bytes()).hexdigest()


def conflist(socket: Path) -> dict[str, Any]:
    """The network config list the runtime reads: netcc's plugin, talking to `socket`.

    `cniVersion` 1.0.0, which every libcni of the last years reads (containerd 1.7's libcni
    1.1 knows no later one); `cniVersions` (CNI 1.1) lets a newer runtime pick 1.1.0, with GC
    and STATUS."""
    return {
        "cniVersion": "1.0.0",
        "cniVersions": ["1.0.0", "1.1.0"],
        "name": NETWORK_NAME,
        "plugins": [{"type": PLUGIN_TYPE, "socket": str(socket)}],
    }


class NodeRunner:
    """One node's daemon: the Daemon (CNI commands) and what keeps it going."""

    def __init__(self, cfg: RunConfig, pods: PodSource, slices: Any = None) -> None:
        """`slices`: the KubeClient the EndpointSlice watch lists and watches with (None:
        no watch; the live backends stay as recorded)."""
        self.cfg = cfg
        self.services = ServiceBackends(cfg.node, cfg.paths, cfg.data_dir)
        self.services.on_change = self._reported_soon
        self._report_due = threading.Event()
        self.slices = slices
        self.watcher: Any = None
        self.store = AddressStore(cfg.data_dir / "ipam")
        fast = None if os.environ.get(FULL_APPLY_ENV) == "1" else FastPath(cfg.paths)
        self.daemon = Daemon(cfg.node, self.store, pods, self._apply, fast)
        self.daemon.on_change = self.report
        self.metrics = DaemonMetrics(cfg.node, cfg.paths, lambda: self.daemon.readiness.ready)
        self.metrics_server: MetricsServer | None = None
        self.server = CniServer(cfg.socket, self.metrics.instrument(self.daemon))
        self.flows: Any = None  # the FlowService, once started
        self.refused: dict[str, str] | None = None
        self.last_error = ""
        self.stopping = threading.Event()
        self._conf_written = False

    # -- artifacts ---------------------------------------------------------------------------

    def _apply(self, view: NodeView, runtime: list[RuntimeEndpoint]) -> Any:
        from netcc.loader.apply import apply

        with self.metrics.applying():  # every full apply: the periodic one, ADD's, DEL's
            return apply(
                view.out,
                self.cfg.node,
                pin_root=self.cfg.pin_root,
                state_dir=self.cfg.state_dir,
                wireguard=self.cfg.wireguard,
                runtime=runtime,
                services=self.services.overlay,
            )

    def _use(self, view: NodeView) -> None:
        """The live backends follow the accepted OUT (its dynamic service ports)."""
        from netcc.loader.artifacts import read_artifacts

        entries = read_artifacts(view.out, self.cfg.node).maps.get("netcc_lb_services", [])
        self.services.use(view.digest, view.services, list(entries), view.address)

    def _watch(self) -> None:
        """Start the EndpointSlice watch once OUT has service ports runtime pods back."""
        if self.watcher is not None or self.slices is None or not self.services.active:
            return
        from netcc.loader.kube.endpointslices import SliceWatcher

        def synced() -> None:
            self.services.synced(self.watcher.cache.services())

        self.watcher = SliceWatcher(self.slices, self.services.changed, on_synced=synced)
        threading.Thread(target=self._reporter, name="report", daemon=True).start()
        thread = threading.Thread(
            target=self.watcher.run, args=(self.stopping,), name="endpointslices", daemon=True
        )
        thread.start()
        log.info("watching EndpointSlices for the live backends of services over classes")

    def _static(self, out: Path) -> list[str]:
        from netcc.loader.artifacts import ENDPOINTS, read_artifacts

        art = read_artifacts(out, self.cfg.node)
        return [str(e["key"]["ip"]) for e in art.maps[ENDPOINTS]]

    def _view(self, out: Path) -> NodeView:
        from netcc.loader.errors import ApplyError

        try:
            return read_view(out, self.cfg.node, self._static(out))
        except ApplyError as e:
            raise ViewError(str(e)) from None

    def consider(self) -> bool:
        """Take OUT if it is new and misplaces no running pod; True when it was taken."""
        source = self.cfg.out
        try:
            digest = lock_digest(source)
        except OSError as e:
            self._refuse("?", f"cannot read {source}/{LOCK_NAME}: {e.strerror or e}")
            return False
        with self.daemon.lock:
            current = self.daemon.view
            if current is not None and current.digest == digest:
                return False
            running = self.store.allocations()
            pods = sorted((str(ip), o.klass if o else "") for ip, o in running.items())
            if self.refused is not None and self.refused.get("_key") == (digest, pods):
                return False  # refused already, and the pods that decided it still run
            try:
                view = self._view(source)
            except ViewError as e:
                self._refuse(digest, str(e))
                return False
            problems = misplaced(view, running)
            if problems:
                self._refuse(digest, "misplaced pods: " + "; ".join(problems), pods)
                return False
            try:
                kept = self._keep(source, view.digest)
                view = self._view(kept)
            except (OSError, ViewError) as e:
                self._refuse(digest, f"cannot keep a copy of it: {e}")
                return False
            self._use(view)
            self.daemon.view = view
            self.refused = None
            state.write_atomic(self.cfg.data_dir / ACCEPTED, view.digest.encode() + b"\n")
            log.info("accepted artifacts %s", view.digest[:12])
            return True

    def _refuse(self, digest: str, reason: str, pods: Any = None) -> None:
        key = (digest, pods)
        if self.refused is None or self.refused.get("_key") != key:
            log.error("refusing artifacts %s of %s: %s", digest[:12], self.cfg.out, reason)
        self.refused = {"digest": digest, "out": str(self.cfg.out), "reason": reason, "_key": key}
        if self.daemon.view is None:
            self.daemon.readiness = Readiness(False, f"artifacts refused: {reason}")

    def _keep(self, source: Path, digest: str) -> Path:
        """A copy of OUT under the data dir (older copies removed)."""
        base = self.cfg.data_dir / "artifacts"
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        dest = base / digest
        if not dest.exists():
            tmp = base / f".tmp-{digest}"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(source, tmp, symlinks=True)
            os.rename(tmp, dest)
        for old in base.iterdir():
            if old != dest:
                shutil.rmtree(old, ignore_errors=True)
        return dest

    def _previous(self) -> NodeView | None:
        """The copy accepted before a restart, if any (used when OUT is refused now)."""
        try:
            digest = (self.cfg.data_dir / ACCEPTED).read_text().strip()
            return self._view(self.cfg.data_dir / "artifacts" / digest)
        except (OSError, ViewError) as e:
            log.warning("no previously accepted artifacts to fall back on: %s", e)
            return None

    # -- life --------------------------------------------------------------------------------

    def start(self) -> None:
        """Accept OUT (or fall back on the copy accepted before), serve the socket (spooled
        DELs first), then apply once."""
        self.cfg.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.consider() and self.daemon.view is None:
            previous = self._previous()
            if previous is not None:
                self._use(previous)
                self.daemon.view = previous
                log.warning("applying the previously accepted artifacts %s", previous.digest[:12])
        self.server.start()
        self._start_flows()
        self.tick(consider=False)

    def _start_flows(self) -> None:
        """Read the datapath's flow events and serve them (`flows`); a failure is logged and
        leaves CNI and the applies alone."""
        from netcc.loader.daemon.flows import FlowService

        if self.cfg.flows_socket is None:
            return
        try:
            self.flows = FlowService(
                self.cfg.node,
                self.cfg.paths.maps,
                self.cfg.flows_socket,
                lambda: self.daemon.view,
                self.store.allocations,
            )
            self.flows.start()
        except Exception as e:
            log.error("flow events are not served: %s: %s", type(e).__name__, e)
            if self.flows is not None:
                self.flows.stop()
            self.flows = None

    def tick(self, consider: bool = True) -> None:
        """One round: a new OUT, then the apply (drift repair), then the report."""
        if consider:
            self.consider()
        self._watch()
        view = self.daemon.view
        if view is not None and not view.tunnel:
            try:
                for change in ensure_routes(view.routes):
                    log.info("%s", change)
            except Exception as e:  # the pods of this node are served all the same
                log.error("routes to the other nodes' pod CIDRs: %s", e)
        if self.daemon.view is not None:
            try:
                self.daemon.apply_now()
                self.last_error = ""
            except Exception as e:
                self.last_error = f"{type(e).__name__}: {e}"
                log.error("apply failed: %s", self.last_error)
                if not self.daemon.readiness.ready:
                    self.daemon.readiness = Readiness(False, f"apply failed: {e}")
        try:
            if self.daemon.readiness.ready:
                self._write_conflist()
            self.report()
        except OSError as e:  # the next round tries again; the daemon goes on serving
            log.error("writing the conflist or the report failed: %s", e)

    def run(self) -> None:
        """Serve the metrics (`cfg.metrics_address`; a failure there is logged, never
        fatal), start, then tick every `interval` seconds until `stopping` is set."""
        self.metrics_server = serve(self.metrics.registry, self.cfg.metrics_address)
        try:
            self.start()
        except BaseException:
            self._stop_metrics()
            raise
        try:
            while not self.stopping.wait(self.cfg.interval):
                try:
                    self.tick()
                except Exception:  # a round that failed: the next one tries again
                    log.exception("a round of the daemon failed")
        finally:
            self.server.stop()
            if self.flows is not None:
                self.flows.stop()
            self._stop_metrics()
            with contextlib.suppress(OSError):
                self.report(running=False)

    def _stop_metrics(self) -> None:
        if self.metrics_server is not None:
            self.metrics_server.close()
            self.metrics_server = None

    def _reported_soon(self) -> None:
        self._report_due.set()

    def _reporter(self) -> None:
        """Write the report after live backends change (at most one write per round)."""
        while not self.stopping.is_set():
            if self._report_due.wait(0.5) and not self.stopping.is_set():
                self._report_due.clear()
                try:
                    self.report()
                except OSError as e:
                    log.error("writing the report failed: %s", e)

    def _services_report(self) -> dict[str, Any] | None:
        doc = self.services.report()
        if doc is not None and self.watcher is not None:
            stats = self.watcher.stats
            doc["watch"] = {
                "synced": stats.synced,
                "resourceVersion": stats.resource_version,
                "lists": stats.lists,
                "relists": stats.relists,
                "events": stats.events,
                "errors": stats.errors,
                "lastError": stats.last_error,
            }
        return doc

    def _write_conflist(self) -> None:
        if self._conf_written or self.cfg.conf_dir is None:
            return
        self.cfg.conf_dir.mkdir(parents=True, exist_ok=True)
        data = json.dumps(conflist(self.cfg.socket), indent=1, sort_keys=True) + "\n"
        state.write_atomic(self.cfg.conf_dir / CONFLIST_NAME, data.encode())
        self._conf_written = True
        log.info("wrote %s", self.cfg.conf_dir / CONFLIST_NAME)

    def report(self, running: bool = True) -> dict[str, Any]:
        """Write `daemon.json` into the loader's state dir; the document."""
        d = self.daemon
        with d.lock:
            view = d.view
            records = self.store.allocations()
            doc = {
                "node": self.cfg.node,
                "pid": os.getpid(),
                "running": running,
                "ready": d.readiness.ready,
                "reason": d.readiness.reason,
                "out": str(self.cfg.out),
                "socket": str(self.cfg.socket),
                "accepted": None
                if view is None
                else {"digest": view.digest, "copy": str(view.out)},
                "refused": self.refused
                and {k: v for k, v in self.refused.items() if not k.startswith("_")},
                "lastError": self.last_error,
                "lastApply": _apply_summary(d.last_applied, d.applies),
                "pods": d.pods_report(records),
                "blocks": d.blocks_report(records),
                "services": self._services_report(),
                "updatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            sdir = self.cfg.paths.state_dir
            sdir.mkdir(parents=True, exist_ok=True)
            data = (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()
            _replace(sdir / REPORT_FILE, data)  # under the lock: one writer at a time
        return doc


def _replace(path: Path, data: bytes) -> None:
    """Write the report whole or not at all (renamed over), without fsync: it says what the
    daemon is doing now, and a daemon that starts writes it again."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _apply_summary(result: Any, count: int) -> dict[str, Any] | None:
    """The last full apply: its status (`unchanged` when pods added incrementally were
    found in place) and how many have succeeded."""
    status = getattr(result, "status", None)
    return None if status is None else {"status": str(status), "count": count}


def read_report(state_dir: Path) -> dict[str, Any] | None:
    """The daemon's last `daemon.json` in a loader state dir, if a daemon ran there."""
    try:
        doc = json.loads((Path(state_dir) / REPORT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None
