"""The daemon's CNI socket: one request per connection, dispatched to a Handler.

The shim connects, writes one request, shuts its side down, and reads one response (see
`protocol`). Each connection runs in its own thread, at most `max_connections` at a time
(beyond that the answer is 11, try again later). The socket file is created mode 0600 under
a private temporary name and renamed into place; a lock file next to it keeps a second daemon
from taking it over, and a socket left by a dead daemon is replaced. `stop` finishes the
requests in flight and removes the socket.

The handler's errors become CNI errors: a CniError as raised, an OSError code 5 (I/O), any
other exception code 11 with its type and message; the traceback goes to the daemon's log,
never to the runtime. DELs the shim spooled while the daemon was away are handled on `start`,
every `spool_interval` seconds, and before an ADD or DEL of the same attachment (a spooled
DEL is older than any request that reaches the socket).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import stat
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from netcc.contract import cni as cni_paths
from netcc.loader.cni import spool, timing
from netcc.loader.cni.protocol import (
    DECODE_FAILURE,
    IO_FAILURE,
    LATEST_VERSION,
    MAX_REQUEST_BYTES,
    TRY_AGAIN_LATER,
    Attachment,
    CniError,
    Request,
    Result,
    error_response,
    parse_request,
    success_response,
    version_of,
    version_result,
)

log = logging.getLogger("netcc.cni")

DEFAULT_SOCKET = Path(cni_paths.SOCKET_PATH)


class Handler(Protocol):
    """What the daemon does for each CNI command. Called from many threads at once; the
    runtime serializes the commands of one attachment, but `delete` may see an attachment
    twice (a DEL the shim spooled after a timeout, and the runtime's retry) and must be
    idempotent. Raise CniError to fail with a chosen code."""

    def add(self, req: Request) -> Result | Mapping: ...

    def delete(self, req: Request) -> None: ...

    def check(self, req: Request) -> None: ...

    def status(self, req: Request) -> None: ...

    def gc(self, req: Request) -> None: ...


class ServerError(Exception):
    """The socket cannot be served (another daemon holds it, a non-socket is in the way)."""


class CniServer:
    """Serves the CNI socket for `handler`. Use `start()`/`stop()` or `with CniServer(...)`."""

    def __init__(
        self,
        socket_path: Path,
        handler: Handler,
        *,
        spool_interval: float = 30.0,
        max_connections: int = 64,
        io_timeout: float = 30.0,
    ) -> None:
        self.socket_path = Path(socket_path)
        self.spool_dir = spool.spool_dir(self.socket_path)
        self.handler = handler
        self.spool_interval = spool_interval
        self.io_timeout = io_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self._stopping = threading.Event()
        self._spool_lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._threads_lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._identity: tuple[int, int] | None = None
        self._lock_fd: int | None = None
        self._loops: list[threading.Thread] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Take the socket, finish spooled DELs, then accept requests."""
        parent = self.socket_path.parent
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.spool_dir.mkdir(mode=0o700, exist_ok=True)
        self._lock_fd = lock_exclusive(self.socket_path.with_name(self.socket_path.name + ".lock"))
        try:
            self.process_spool()
            self._listener, self._identity = bind_socket(self.socket_path)
        except BaseException:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise
        self._listener.settimeout(0.2)  # how often the accept loop looks at _stopping
        for target, name in ((self._accept_loop, "cni-accept"), (self._spool_loop, "cni-spool")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._loops.append(t)
        log.info("serving CNI requests on %s", self.socket_path)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop accepting, remove the socket, wait up to `timeout` s for requests in flight."""
        self._stopping.set()
        for t in self._loops:
            t.join(timeout)
        self._loops.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._identity is not None:
            unlink_own(self.socket_path, self._identity)
            self._identity = None
        with self._threads_lock:
            threads = list(self._threads)
        for t in threads:
            t.join(timeout)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> CniServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- requests ----------------------------------------------------------------------------

    def dispatch(self, data: bytes) -> bytes:
        """The response to one request (never raises)."""
        try:
            req = parse_request(data)
        except CniError as e:
            return error_response(e, version_of(data))
        timing.name(req.command)
        try:
            return success_response(self._run(req))
        except CniError as e:
            return error_response(e, req.cni_version)
        except OSError as e:
            log.exception("CNI %s %s failed", req.command, _who(req))
            err = CniError(IO_FAILURE, f"{req.command} failed: {e.strerror or e}", str(e))
            return error_response(err, req.cni_version)
        except Exception as e:
            log.exception("CNI %s %s failed", req.command, _who(req))
            msg = f"{req.command} failed in the netcc daemon ({type(e).__name__}: {e})"[:500]
            return error_response(CniError(TRY_AGAIN_LATER, msg), req.cni_version)

    def _run(self, req: Request) -> Mapping | None:
        h = self.handler
        match req.command:
            case "VERSION":
                return version_result(req.cni_version)
            case "ADD":
                # A spooled DEL of this attachment is older than this ADD: finish it first,
                # or it would later tear down what this ADD builds.
                with timing.step("spool"):
                    spooled = self.process_spool(only=req.attachment)
                if spooled < 0:
                    raise CniError(
                        TRY_AGAIN_LATER,
                        f"an earlier DEL of {req.container_id}/{req.ifname} is not finished yet",
                    )
                result = h.add(req)
                if isinstance(result, Result):
                    return result.to_json(req.cni_version)
                return {**result, "cniVersion": req.cni_version}
            case "DEL":
                with timing.step("spool"):
                    self.process_spool(only=req.attachment)
                h.delete(req)
            case "CHECK":
                h.check(req)
            case "STATUS":
                h.status(req)
            case "GC":
                h.gc(req)
        return None

    # -- the spool ---------------------------------------------------------------------------

    def process_spool(self, only: Attachment | None = None) -> int:
        """Hand spooled DELs (all, or those of `only`) to the handler; returns how many were
        finished, or -1 when one of them failed (it stays for the next round). An unreadable
        file is set aside as `NAME.bad`."""
        done, failed = 0, False
        with self._spool_lock:
            for path in spool.pending(self.spool_dir):
                try:
                    data = spool.read(path)
                    if data is None:
                        continue
                    req = parse_request(data)
                    if req.command != "DEL":
                        raise CniError(DECODE_FAILURE, f"a spooled {req.command}, not a DEL")
                except (OSError, CniError) as e:
                    log.error("spooled DEL %s is unusable (%s); set aside", path, e)
                    with contextlib.suppress(OSError):
                        spool.set_aside(path)
                    continue
                if only is not None and req.attachment != only:
                    continue
                try:
                    self.handler.delete(req)
                except Exception:
                    log.exception("spooled DEL %s failed; retrying later", _who(req))
                    failed = True
                    continue
                spool.remove(path)
                done += 1
                log.info("finished spooled DEL %s", _who(req))
        return -1 if failed else done

    def _spool_loop(self) -> None:
        while not self._stopping.wait(self.spool_interval):
            try:
                self.process_spool()
            except Exception:
                log.exception("processing the DEL spool failed")

    # -- connections -------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError as e:
                if self._stopping.is_set():
                    return
                log.error("accept on %s failed: %s", self.socket_path, e)
                self._stopping.wait(0.2)
                continue
            if not self._slots.acquire(blocking=False):
                # Read the request first (briefly): closing on unread data resets the
                # connection, and the shim would see no answer at all.
                conn.settimeout(0.5)
                with contextlib.suppress(OSError, CniError):
                    _receive(conn)
                busy = CniError(TRY_AGAIN_LATER, "the netcc daemon is busy; try again later")
                _answer(conn, error_response(busy, LATEST_VERSION))
                continue
            conn.settimeout(self.io_timeout)
            t = threading.Thread(target=self._serve, args=(conn,), name="cni-request", daemon=True)
            with self._threads_lock:
                self._threads.add(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with timing.request():
                try:
                    with timing.step("receive"):
                        data = _receive(conn)
                except (OSError, CniError) as e:
                    err = e if isinstance(e, CniError) else CniError(IO_FAILURE, f"reading: {e}")
                    log.warning("unreadable CNI request: %s", err.msg)
                    _answer(conn, error_response(err, LATEST_VERSION))
                    return
                response = self.dispatch(data)
                with timing.step("answer"):
                    _answer(conn, response)
        finally:
            self._slots.release()
            with self._threads_lock:
                self._threads.discard(threading.current_thread())


def _who(req: Request) -> str:
    pod = req.pod if "K8S_POD_NAME" in req.args else None
    where = f" (pod {pod})" if pod else ""
    return f"{req.container_id}/{req.ifname}{where}" if req.container_id else req.config.name


def _receive(conn: socket.socket) -> bytes:
    """The request: everything up to the shim's shutdown of its side."""
    chunks, size = [], 0
    while chunk := conn.recv(65536):
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            raise CniError(DECODE_FAILURE, f"request larger than {MAX_REQUEST_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(conn: socket.socket, response: bytes) -> None:
    with conn:
        try:
            conn.sendall(response)
        except OSError as e:
            log.warning("the CNI shim left before its answer: %s", e)


def lock_exclusive(path: Path) -> int:
    """Hold `path` locked for the daemon's lifetime; ServerError if another daemon holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ServerError(f"another netcc daemon serves {path.with_suffix('')}") from None
    return fd


def unlink_own(path: Path, identity: tuple[int, int]) -> None:
    """Remove the socket at `path` if it is still the one bound (`identity`: its st_dev and
    st_ino); a socket another daemon bound there since is left alone."""
    with contextlib.suppress(FileNotFoundError):
        st = os.lstat(path)
        if (st.st_dev, st.st_ino) == identity:
            os.unlink(path)


def bind_socket(path: Path) -> tuple[socket.socket, tuple[int, int]]:
    """A listening socket at `path`, mode 0600 from its first moment; replaces a socket a
    dead daemon left (we hold the lock), refuses anything else in the way."""
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise ServerError(f"{path} exists and is not a socket; not replacing it")
    private = tempfile.mkdtemp(prefix=".s", dir=path.parent)  # mode 0700: nobody connects
    tmp = os.path.join(private, "s")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(tmp)
        os.chmod(tmp, 0o600)
        sock.listen(128)
        os.rename(tmp, path)  # atomic: a stale socket is replaced, never missing
        st = os.lstat(path)
    except BaseException:
        sock.close()
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(private)
    return sock, (st.st_dev, st.st_ino)
