"""The lab's stand-in for the Kubernetes API server: what a node daemon asks, answered from the
lab's own pod list, on a unix socket.

No kube-apiserver runs in the lab, so the daemons get pods and EndpointSlices the way they
would in a real cluster, through the same client (`netcc.loader.kube`), from this server:

- `GET /api/v1/namespaces/NS/pods/NAME`: a `v1.Pod` (or a `v1.Status` 404) from `pods.json`
  in the lab's state directory, which `netcc lab pod add|del|ready` maintain. The file is read
  on every request, so an answer is never stale.
- `GET /apis/discovery.k8s.io/v1[/namespaces/NS]/endpointslices`: the runtime pods as
  endpoints of OUT's dynamic services (`services.json`; `netcc.lab.endpoints`), listed
  (`limit`, `continue`, `labelSelector` by equality) or watched (`watch=1`,
  `resourceVersion`, `allowWatchBookmarks`, `timeoutSeconds`) as a chunked stream of JSON
  lines, one event each.

`pods.json` carries a `resourceVersion`, bumped by every write (`write_pods`), and the digest
of the `services.json` it was last seen with: when OUT's services change, this server bumps
the version itself, so one version always names one set of slices. A poller notices changes
(a stat every POLL seconds), computes the slices and keeps the last HISTORY versions; a watch
from a version it no longer holds (older, or from before this process started) gets the
API server's `410 Expired` as an ERROR event. Run it as
`python -m netcc.lab.kubeapi STATE_DIR SOCKET [OUT]`; OUT defaults to the lab state's (its
`load` resources), read again when the state changes.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import re
import secrets
import select
import socket
import socketserver
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from netcc.contract.services import SERVICES_FILE, Services, ServicesFormatError
from netcc.contract.services import load as load_services
from netcc.lab import endpoints
from netcc.lab.state import STATE_NAME, LabStateError, lab_lock

PODS_FILE = "pods.json"
POLL = 0.02  # seconds between stats of pods.json and services.json
RESCAN = 1.0  # seconds after which the files are read again even if their stat is the same
HISTORY = 1000  # slice snapshots kept, by resourceVersion
BOOKMARK_EVERY = 1.0
WATCH_TIMEOUT = 1800  # seconds, when the client gives no timeoutSeconds
_POD_PATH = re.compile(r"^/api/v1/namespaces/([a-z0-9.-]+)/pods/([a-z0-9.-]+)$")
_SLICES_PATH = re.compile(
    r"^/apis/discovery\.k8s\.io/v1(?:/namespaces/([a-z0-9.-]+))?/endpointslices$"
)
_DIGITS = re.compile(r"[0-9]{1,18}")
_KEEP: Any = object()

Snapshot = dict[str, dict[str, Any]]  # "namespace/name" -> EndpointSlice


# --- pods.json ----------------------------------------------------------------------------------


def read_doc(state_dir: Path) -> dict[str, Any]:
    """The whole `pods.json`: `pods`, `resourceVersion` (0 when there is none) and whatever
    else it holds."""
    try:
        doc = json.loads((state_dir / PODS_FILE).read_text())
    except (OSError, ValueError):
        doc = {}
    doc = doc if isinstance(doc, dict) else {}
    pods = doc.get("pods")
    rv = doc.get("resourceVersion")
    return {
        **doc,
        "pods": pods if isinstance(pods, dict) else {},
        "resourceVersion": rv if isinstance(rv, int) and not isinstance(rv, bool) else 0,
    }


def read_pods(state_dir: Path) -> dict[str, dict[str, Any]]:
    """The lab's dynamic pods by `namespace/name` (empty when there are none)."""
    return read_doc(state_dir)["pods"]


def write_pods(state_dir: Path, pods: dict[str, dict[str, Any]], *, digest: Any = _KEEP) -> int:
    """Replace the pod list atomically (readers never see half a file), bumping its
    resourceVersion; the new version. `digest`: the services digest to record (None: none).
    Takes the lab's lock for the version's read-modify-write; a caller changing `pods` holds
    it from its own read of them."""
    with lab_lock(state_dir):
        return _write_pods(state_dir, pods, digest)


def _write_pods(state_dir: Path, pods: dict[str, dict[str, Any]], digest: Any) -> int:
    old = read_doc(state_dir)
    doc = {k: v for k, v in old.items() if k not in ("pods", "resourceVersion")}
    if digest is not _KEEP:
        doc.pop("servicesDigest", None)
        if digest is not None:
            doc["servicesDigest"] = digest
    rv = old["resourceVersion"] + 1
    doc |= {"resourceVersion": rv, "pods": dict(sorted(pods.items()))}
    path = state_dir / PODS_FILE
    tmp = path.with_name(f".{PODS_FILE}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return rv


def pod_object(pod: dict[str, Any]) -> dict[str, Any]:
    """A `v1.Pod` as the API server would answer it (the fields netcc reads)."""
    ip = pod.get("ip")
    status: dict[str, Any] = {"phase": "Running" if ip else "Pending"}
    if ip:
        status |= {"podIP": ip, "podIPs": [{"ip": ip}]}
    status["conditions"] = [{"type": "Ready", "status": "True" if pod.get("ready") else "False"}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod["name"],
            "namespace": pod["namespace"],
            "uid": pod["uid"],
            "labels": pod.get("labels", {}),
        },
        "spec": {"nodeName": pod["node"]},
        "status": status,
    }


# --- OUT and its services.json ------------------------------------------------------------------


class LabOut:
    """OUT of the lab whose state is in `state_dir` (its `load` resources'; all nodes share
    one), None without a lab or a load. The state file is read again when it changes."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / STATE_NAME
        self._stamp: tuple[int, ...] | None = None
        self._out: Path | None = None

    def __call__(self) -> Path | None:
        stamp = _stamp(self.path)
        if stamp != self._stamp:
            self._stamp, self._out = stamp, None
            with contextlib.suppress(OSError, ValueError, AttributeError, TypeError, KeyError):
                doc = json.loads(self.path.read_text())
                outs = [r["out"] for r in doc["resources"] if r.get("kind") == "load"]
                self._out = Path(outs[-1]) if outs else None
        return self._out


class _ServicesFile:
    """`OUT/services.json`, parsed again when it changes: (services, digest, stamp). A file
    that does not parse (one being written in place, or a broken one) leaves the last good
    services in use; a missing one means no services."""

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._value: tuple[Services | None, str | None] = (None, None)
        self._bad: str | None = None  # the digest of the last unparsable file, logged once

    def get(
        self, out: Path | None, force: bool = False
    ) -> tuple[Services | None, str | None, tuple[Any, ...]]:
        """`force`: read the file even if its stat is the same."""
        path = out / SERVICES_FILE if out is not None else None
        key = (path, _stamp(path) if path is not None else None)
        if key != self._key or force:
            self._key, data = key, None
            if path is not None and key[1] is not None:
                with contextlib.suppress(OSError):
                    data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()[:16] if data is not None else None
            if data is None:
                self._value = (None, None)
            elif digest != self._value[1]:
                try:
                    self._value = (load_services(data), digest)
                except ServicesFormatError as e:
                    if digest != self._bad:
                        _log(f"{path}: {e}; the last good services stay in use")
                    self._bad = digest
        return (*self._value, key)


def _stamp(path: Path) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _log(message: str) -> None:
    print(f"kubeapi: {message}", file=sys.stderr, flush=True)


# --- the slices, by version ---------------------------------------------------------------------


class SliceStore:
    """The EndpointSlices at each of the last `history` versions the server saw.

    `epoch` counts resets: pods.json's version went back (the file was made anew), so every
    version given out before means nothing now."""

    def __init__(
        self, state_dir: Path, out: Callable[[], Path | None], history: int = HISTORY
    ) -> None:
        self.state_dir = state_dir
        self._out = out
        self._limit = history
        self._services = _ServicesFile()
        self._refreshing = threading.Lock()
        self._cond = threading.Condition()
        self._history: OrderedDict[int, Snapshot] = OrderedDict()
        self._seen: tuple[Any, ...] | None = None
        self._content: tuple[Any, ...] | None = None  # (pods, digest) of the current version
        self._read_at = 0.0
        self._failed = ""
        self.rv = -1
        self.epoch = 0
        self.refresh()
        if not self._history:  # the first refresh failed: start empty
            self._history[0], self.rv = {}, 0

    def refresh(self) -> None:
        """Take in what changed in pods.json or services.json since the last call."""
        with self._refreshing:
            try:
                self._refresh()
                self._failed = ""
            except Exception as e:  # never die; keep serving what was last computed
                # (LabStateError: the state directory went, the lab is going down)
                why = str(e) if isinstance(e, LabStateError) else f"{type(e).__name__}: {e}"
                if why != self._failed:  # once, not every poll
                    _log(f"refresh failed: {why}")
                self._failed = why

    def _refresh(self) -> None:
        stale = time.monotonic() - self._read_at >= RESCAN
        services, digest, skey = self._services.get(self._out(), force=stale)
        path = self.state_dir / PODS_FILE
        seen = (_stamp(path), skey)
        if seen == self._seen and not stale:
            return
        doc = read_doc(self.state_dir)
        if doc.get("servicesDigest") != digest:  # OUT's services changed: a new version
            with lab_lock(self.state_dir):
                doc = read_doc(self.state_dir)
                if doc.get("servicesDigest") != digest:
                    write_pods(self.state_dir, doc["pods"], digest=digest)
            seen = (_stamp(path), skey)
            doc = read_doc(self.state_dir)
        self._seen, self._read_at = seen, time.monotonic()
        rv, content = doc["resourceVersion"], (doc["pods"], doc.get("servicesDigest"))
        if rv == self.rv and content == self._content:
            return
        reset = rv <= self.rv  # pods.json made anew: its versions start again
        prev = self._history[self.rv] if self._history and not reset else {}
        snap: Snapshot = {}
        for s in endpoints.slices(services, doc["pods"], str(rv)):
            key = f"{s['metadata']['namespace']}/{s['metadata']['name']}"
            old = prev.get(key)
            snap[key] = old if old is not None and _same(old, s) else s
        with self._cond:
            if reset:
                _log(f"{PODS_FILE} was made anew (version {rv}): every watch lists again")
                self._history.clear()
                self.epoch += 1
            self._history[rv] = snap
            while len(self._history) > self._limit:
                self._history.popitem(last=False)
            self.rv, self._content = rv, content
            self._cond.notify_all()

    def current(self) -> tuple[int, int, Snapshot]:
        """(version, epoch, slices) now."""
        with self._cond:
            return self.rv, self.epoch, self._history[self.rv]

    def at(self, rv: int, epoch: int) -> Snapshot | None:
        """The slices at version `rv` of `epoch`, None when not held (any more)."""
        with self._cond:
            return self._history.get(rv) if epoch == self.epoch else None

    def oldest(self) -> int:
        with self._cond:
            return next(iter(self._history))

    def wait(self, rv: int, epoch: int, timeout: float) -> None:
        """Until the version is no longer `rv` of `epoch`, or `timeout` seconds."""
        with self._cond:
            self._cond.wait_for(lambda: (self.rv, self.epoch) != (rv, epoch), max(timeout, 0))


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal but for their resourceVersion."""

    def bare(s: dict[str, Any]) -> dict[str, Any]:
        return {**s, "metadata": {**s["metadata"], "resourceVersion": ""}}

    return bare(a) == bare(b)


def _diff(have: Snapshot, now: Snapshot, rv: int) -> list[tuple[str, dict[str, Any]]]:
    """The watch events from `have` to `now` (version `rv`): by version, deletions last."""
    changed = [
        (key, "ADDED" if key not in have else "MODIFIED", obj)
        for key, obj in now.items()
        if have.get(key) is not obj and have.get(key) != obj
    ]
    changed.sort(key=lambda e: (int(e[2]["metadata"]["resourceVersion"]), e[0]))
    gone = [
        (key, "DELETED", {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(rv)}})
        for key, obj in sorted(have.items())
        if key not in now
    ]
    return [(kind, obj) for _, kind, obj in changed + gone]


# --- requests -----------------------------------------------------------------------------------


class BadRequest(ValueError):
    """A request this server refuses with 400."""


@dataclass(frozen=True)
class SliceQuery:
    """What a list or watch of EndpointSlices asks."""

    namespace: str | None
    selector: tuple[tuple[str, str, str], ...]  # (key, op, value); op: = != exists !exists
    watch: bool
    resource_version: str
    bookmarks: bool
    timeout: float
    limit: int
    cont: str

    @classmethod
    def parse(cls, namespace: str | None, params: dict[str, str]) -> SliceQuery:
        """BadRequest for a value this server cannot serve."""
        rv = params.get("resourceVersion", "")
        if rv and not _DIGITS.fullmatch(rv):
            raise BadRequest(f"invalid resource version: {rv!r}")
        return cls(
            namespace,
            _selector(params.get("labelSelector", "")),
            params.get("watch", "") in ("1", "true", "True"),
            rv,
            params.get("allowWatchBookmarks", "") in ("1", "true", "True"),
            _number(params, "timeoutSeconds") or WATCH_TIMEOUT,
            _number(params, "limit"),
            params.get("continue", ""),
        )

    def matches(self, obj: dict[str, Any]) -> bool:
        meta = obj["metadata"]
        if self.namespace is not None and meta["namespace"] != self.namespace:
            return False
        labels = meta.get("labels") or {}
        return all(_holds(labels, *requirement) for requirement in self.selector)

    def view(self, snap: Snapshot) -> Snapshot:
        return {k: s for k, s in snap.items() if self.matches(s)}


def _holds(labels: dict[str, str], key: str, op: str, value: str) -> bool:
    if op == "=":
        return labels.get(key) == value
    if op == "!=":
        return labels.get(key) != value
    return (key in labels) == (op == "exists")


def _number(params: dict[str, str], name: str) -> int:
    text = params.get(name, "")
    if text and not _DIGITS.fullmatch(text):
        raise BadRequest(f"{name} must be a non-negative integer, not {text!r}")
    return int(text or 0)


def _selector(text: str) -> tuple[tuple[str, str, str], ...]:
    """An equality-based label selector: `k=v`, `k==v`, `k!=v`, `k`, `!k`, comma-separated."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = re.fullmatch(r"(!?)([A-Za-z0-9./_-]+)(?:\s*(==|=|!=)\s*([A-Za-z0-9._-]*))?", part)
        if m is None:
            raise BadRequest(f"unable to parse requirement {part!r} (only equality is served)")
        bang, key, op, value = m.groups()
        if bang and op:
            raise BadRequest(f"unable to parse requirement {part!r}")
        if op:
            out.append((key, "!=" if op == "!=" else "=", value))
        else:
            out.append((key, "!exists" if bang else "exists", ""))
    return tuple(out)


def _encode_continue(rv: int, epoch: int, after: str) -> str:
    raw = json.dumps({"rv": rv, "epoch": epoch, "after": after}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_continue(token: str) -> tuple[int, int, str]:
    try:
        doc = json.loads(base64.urlsafe_b64decode(token.encode()))
        rv, epoch, after = doc["rv"], doc["epoch"], doc["after"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise BadRequest("continue key is not valid") from None
    if not (isinstance(rv, int) and isinstance(epoch, int) and isinstance(after, str)):
        raise BadRequest("continue key is not valid")
    return rv, epoch, after


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _bookmark(rv: int) -> dict[str, Any]:
    meta = {"resourceVersion": str(rv)}
    return {"kind": endpoints.KIND, "apiVersion": endpoints.API_VERSION, "metadata": meta}


def _list_item(s: dict[str, Any]) -> dict[str, Any]:
    """A list's item, as the API server writes it: without kind and apiVersion."""
    return {k: v for k, v in s.items() if k not in ("kind", "apiVersion")}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # chunked watch streams; every response closes
    timeout = 30  # a watch whose client stops reading ends when a write blocks this long

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        if m := _POD_PATH.match(path):
            self._pod(*m.groups())
            return
        if m := _SLICES_PATH.match(path):
            try:
                q = SliceQuery.parse(m.group(1), params)
                if q.watch:
                    self._watch(q)
                else:
                    self._list(q)
            except BadRequest as e:
                self._send(400, _status(400, "BadRequest", str(e)))
            return
        self._send(404, _status(404, "NotFound", f"the lab serves no {self.path}"))

    def _pod(self, namespace: str, name: str) -> None:
        pod = read_pods(self.server.state_dir).get(f"{namespace}/{name}")
        if pod is None:
            self._send(404, _status(404, "NotFound", f'pods "{name}" not found'))
            return
        self._send(200, pod_object(pod))

    def _list(self, q: SliceQuery) -> None:
        store = self.server.store
        store.refresh()
        after = ""
        if q.cont:
            rv, epoch, after = _decode_continue(q.cont)
            snap = store.at(rv, epoch)
            if snap is None:
                message = (
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter."
                )
                self._send(410, _status(410, "Expired", message))
                return
        else:
            rv, epoch, snap = store.current()
        items = sorted((k, s) for k, s in q.view(snap).items() if k > after)
        page = items[: q.limit] if q.limit else items
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if len(page) < len(items):
            meta["continue"] = _encode_continue(rv, epoch, page[-1][0])
            meta["remainingItemCount"] = len(items) - len(page)
        doc = {"kind": "EndpointSliceList", "apiVersion": endpoints.API_VERSION}
        self._send(200, doc | {"metadata": meta, "items": [_list_item(s) for _, s in page]})

    def _watch(self, q: SliceQuery) -> None:
        store = self.server.store
        store.refresh()
        now_rv, epoch, _ = store.current()
        have: Snapshot | None = {}
        have_rv = -1  # from "" or "0": every slice, as ADDED, then the changes
        if q.resource_version not in ("", "0"):
            have_rv = int(q.resource_version)
            have = store.at(have_rv, epoch)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            if have is None:
                self._expired(have_rv, now_rv if have_rv > now_rv else store.oldest())
            else:
                self._stream(q, have_rv, epoch, q.view(have))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client went away (or stopped reading): the watch ends
            pass

    def _stream(self, q: SliceQuery, have_rv: int, epoch: int, have: Snapshot) -> None:
        store = self.server.store
        deadline = time.monotonic() + q.timeout
        bookmark = time.monotonic() + BOOKMARK_EVERY
        while True:
            rv, now_epoch, snap = store.current()
            if now_epoch != epoch:
                self._expired(have_rv, rv)
                return
            if rv != have_rv:
                now = q.view(snap)
                for kind, obj in _diff(have, now, rv):
                    self._event(kind, obj)
                have, have_rv = now, rv
            t = time.monotonic()
            if t >= deadline or self.server.closing.is_set():
                return
            if q.bookmarks and t >= bookmark:
                self._event("BOOKMARK", _bookmark(have_rv))
                bookmark = t + BOOKMARK_EVERY
            if self._client_gone():
                raise ConnectionResetError
            until = min(deadline, bookmark if q.bookmarks else deadline, t + 1.0)
            store.wait(have_rv, epoch, until - time.monotonic())

    def _expired(self, rv: int, held: int) -> None:
        """410 Expired, as the API server ends a watch from a version it no longer has (a
        version above `held`, the newest, is one of a pod list made anew)."""
        message = (
            f"too old resource version: {rv} ({held})"
            if rv <= held
            else f"resource version {rv} is not this server's (it is at {held}): list again"
        )
        self._event("ERROR", _status(410, "Expired", message))

    def _event(self, kind: str, obj: dict[str, Any]) -> None:
        line = json.dumps({"type": kind, "object": obj}).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))

    def _client_gone(self) -> bool:
        """Whether the client closed its end (a watch's client only ever reads)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _send(self, code: int, doc: dict[str, Any]) -> None:
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def address_string(self) -> str:
        return "lab"

    def log_message(self, *args: Any) -> None:  # quiet
        pass


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(
        self,
        socket_path: str,
        state_dir: Path,
        out: Callable[[], Path | None] | None = None,
        history: int = HISTORY,
    ) -> None:
        """`out`: where OUT is now (default: the lab state's, `LabOut`)."""
        self.state_dir = state_dir
        self.store = SliceStore(state_dir, out or LabOut(state_dir), history)
        self.closing = threading.Event()  # set by server_close: watches end
        with contextlib.suppress(FileNotFoundError):
            os.unlink(socket_path)
        super().__init__(socket_path, _Handler)
        os.chmod(socket_path, 0o600)
        self._poller = threading.Thread(target=self._poll, name="kubeapi-poll", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self.closing.wait(POLL):
            try:
                self.store.refresh()
            except Exception as e:  # never die: the next poll tries again
                _log(f"refresh failed: {type(e).__name__}: {e}")

    def server_close(self) -> None:
        self.closing.set()
        super().server_close()


def serve(state_dir: Path, socket_path: str, out: Path | None = None) -> None:
    """Serve until killed; `out`: a fixed OUT instead of the lab state's."""
    with _Server(socket_path, state_dir, (lambda: out) if out else None) as server:
        server.serve_forever()


if __name__ == "__main__":
    serve(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]) if len(sys.argv) > 3 else None)
