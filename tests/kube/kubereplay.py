"""A loopback API server that replays recorded answers (tests/kube/recordings) in the order a
test scripts them, and records every request it got."""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

RECORDINGS = Path(__file__).with_name("recordings")
PATH = "/apis/discovery.k8s.io/v1/endpointslices"


@dataclass
class Reply:
    """One scripted answer. `lines` makes it a chunked stream (a watch); `cut` closes the
    connection after the lines without the final chunk. `query` are parameters the request
    must carry (None: must be absent)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    body: bytes = b""
    lines: list[bytes] | None = None
    cut: bool = False
    path: str = PATH
    query: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]


def recording(name: str) -> dict:
    """A recorded answer: {comment, status, headers, body}."""
    return json.loads((RECORDINGS / name).read_text())


def answer(name: str, **query: str | None) -> Reply:
    """The recorded answer `name` (a .json file) to a request carrying `query`."""
    rec = recording(name)
    body = json.dumps(rec["body"]).encode()
    return Reply(rec["status"], dict(rec["headers"]), body, query=query)


def stream(name: str, *, cut: bool = False, **query: str | None) -> Reply:
    """A watch answer streaming the recorded events of `name` (a .jsonl file)."""
    lines = (RECORDINGS / name).read_bytes().splitlines(keepends=True)
    return Reply(lines=lines, cut=cut, query={"watch": "1", **query})


def raw_stream(*lines: bytes, cut: bool = False, **query: str | None) -> Reply:
    return Reply(lines=list(lines), cut=cut, query={"watch": "1", **query})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        srv = self.server
        with srv.lock:
            srv.requests.append(Request("GET", parts.path, query))
            reply = srv.script.popleft() if srv.script else None
        if reply is None:
            srv.problems.append(f"unscripted request {self.path}")
            return self._send(Reply(503, body=b'{"kind":"Status","code":503}'))
        wrong = [
            f"{k}={query.get(k)!r}, expected {v!r}"
            for k, v in reply.query.items()
            if query.get(k) != v
        ]
        if parts.path != reply.path or wrong:
            srv.problems.append(
                f"{self.path}: path {parts.path!r}, expected {reply.path!r} {wrong}"
            )
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        if reply.lines is None:
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for line in reply.lines:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.flush()
        if reply.cut:
            self.close_connection = True
            return
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    lock: threading.Lock
    script: deque[Reply]
    requests: list[Request]
    problems: list[str]


class ReplayServer:
    """`play(*replies)` appends to the script; `requests` and `problems` say what happened."""

    def __init__(self) -> None:
        self._srv = _Server(("127.0.0.1", 0), _Handler)
        self._srv.lock = threading.Lock()
        self._srv.script, self._srv.requests, self._srv.problems = deque(), [], []
        self.url = f"http://127.0.0.1:{self._srv.server_address[1]}"
        self._thread = threading.Thread(
            target=self._srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def play(self, *replies: Reply) -> None:
        with self._srv.lock:
            self._srv.script.extend(replies)

    @property
    def pending(self) -> int:
        with self._srv.lock:
            return len(self._srv.script)

    @property
    def requests(self) -> list[Request]:
        return list(self._srv.requests)

    @property
    def problems(self) -> list[str]:
        return list(self._srv.problems)

    def close(self) -> None:
        self._srv.shutdown()
        self._srv.server_close()
