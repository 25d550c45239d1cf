"""HTTP to the API server: https (CA-verified), http (loopback only, for tests) or a unix
socket (the lab), with separate connect and read timeouts and bounded reads.

One connection per request: the daemon asks rarely (once per pod ADD), so there is no pool
to keep healthy, and a watch (issue 14) owns its own connection anyway.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from netcc.loader.kube.errors import ConfigError


@dataclass(frozen=True)
class Endpoint:
    """Where the API server is: `scheme` https, http or unix; `prefix` is a path prefix
    for http(s) (usually empty), `socket_path` the socket for unix."""

    scheme: str
    host: str
    port: int | None
    prefix: str = ""
    socket_path: str = ""

    def __str__(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.socket_path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port else ""
        return f"{self.scheme}://{host}{port}{self.prefix}"


def parse_endpoint(url: str) -> Endpoint:
    """`https://host[:port][/prefix]`, `http://127.0.0.1:port` (loopback only: a bearer
    token never crosses a network in clear) or `unix:///path/to.sock`; ValueError else."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        if parts.netloc or not parts.path.startswith("/"):
            raise ValueError(f"{url}: a unix URL is unix:///absolute/path")
        return Endpoint("unix", "localhost", None, socket_path=parts.path)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{url}: the API server URL must be https://, http:// or unix://")
    if parts.query or parts.fragment or parts.username:
        raise ValueError(f"{url}: no query, fragment or credentials in the API server URL")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ValueError(f"{url}: plain http is allowed to loopback addresses only")
    return Endpoint(parts.scheme, parts.hostname, parts.port, prefix=parts.path.rstrip("/"))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _TimedHTTP(http.client.HTTPConnection):
    """HTTP whose connect has its own timeout; reads then use `read_timeout`."""

    def __init__(self, host: str, port: int | None, connect: float, read: float) -> None:
        super().__init__(host, port, timeout=connect)
        self.read_timeout = read

    def connect(self) -> None:
        super().connect()
        self.sock.settimeout(self.read_timeout)


class _TimedHTTPS(http.client.HTTPSConnection):
    """HTTPS: the TCP connect and TLS handshake under the connect timeout."""

    def __init__(self, host: str, port: int | None, connect: float, read: float, ctx) -> None:
        super().__init__(host, port, timeout=connect, context=ctx)
        self.read_timeout = read

    def connect(self) -> None:
        super().connect()
        self.sock.settimeout(self.read_timeout)


class _UnixHTTP(http.client.HTTPConnection):
    """HTTP over a unix socket (Host: localhost)."""

    def __init__(self, path: str, connect: float, read: float) -> None:
        super().__init__("localhost", timeout=connect)
        self.socket_path = path
        self.read_timeout = read

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
            sock.settimeout(self.read_timeout)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class Transport:
    """Opens one connection per request to `endpoint`."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        ca_file: Path | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
    ) -> None:
        self.endpoint = endpoint
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._tls: ssl.SSLContext | None = None
        if endpoint.scheme == "https":
            try:
                self._tls = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
            except OSError as e:  # ssl.SSLError included
                raise ConfigError(f"CA file {ca_file} is unusable: {e}") from None

    def connection(self, read_timeout: float | None = None) -> http.client.HTTPConnection:
        """A new, not yet connected, connection."""
        e, connect = self.endpoint, self.connect_timeout
        read = self.read_timeout if read_timeout is None else read_timeout
        if e.scheme == "unix":
            return _UnixHTTP(e.socket_path, connect, read)
        if e.scheme == "https":
            return _TimedHTTPS(e.host, e.port, connect, read, self._tls)
        return _TimedHTTP(e.host, e.port, connect, read)


class TooLarge(Exception):
    """A body or line over its bound."""


class TooSlow(Exception):
    """A body that took longer than its deadline."""


def read_body(resp: http.client.HTTPResponse, limit: int, deadline: float) -> bytes:
    """The whole body, at most `limit` bytes, finished before `deadline` (time.monotonic);
    a body shorter than its Content-Length (the connection closed early) raises
    http.client.IncompleteRead."""
    chunks, size = [], 0
    while chunk := resp.read1(65536):
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"response larger than {limit} bytes")
        if time.monotonic() > deadline:
            raise TooSlow("response took too long")
        chunks.append(chunk)
    body = b"".join(chunks)
    if resp.length:  # http.client leaves what Content-Length promised and never came
        raise http.client.IncompleteRead(body, resp.length)
    return body


def read_line(resp: http.client.HTTPResponse, limit: int) -> bytes:
    """One line of a streamed body (b"" at its end), at most `limit` bytes."""
    line = resp.readline(limit + 1)
    if len(line) > limit:
        raise TooLarge(f"a streamed line is longer than {limit} bytes")
    return line
