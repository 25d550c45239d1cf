"""Real TCP and UDP probes between the lab's namespaces.

A socket belongs to the network namespace its thread was in when it was created. So a probe
needs no helper process: the listener is opened after entering the destination's namespace,
the client after entering the source's, and one selector loop in this thread drives both
ends (TCP: connect, send a token, read its echo; UDP: send a datagram, read its echo). Many
probes run in one batch, concurrently, under one deadline, so a batch of denied probes costs
one timeout, not one each. Every socket is closed when the batch ends, whatever happens.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import time
from collections.abc import Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass

from netcc.lab import netns as lab_netns

DEFAULT_TIMEOUT = 1.0
MAX_BATCH = 800  # probes in flight at once (each holds up to two sockets)


@dataclass(frozen=True)
class Probe:
    """One connection attempt from (src_netns, src_ip) to dst_ip:port in dst_netns."""

    src_netns: str
    src_ip: str
    dst_netns: str
    dst_ip: str
    port: int
    protocol: str  # TCP | UDP


@dataclass(frozen=True)
class ProbeResult:
    probe: Probe
    allowed: bool
    detail: str  # how it ended: echo, silence or an error
    seconds: float


@dataclass
class _Client:
    index: int
    sock: socket.socket
    token: bytes
    started: float
    got: bytes = b""


def run_probes(probes: Sequence[Probe], timeout: float = DEFAULT_TIMEOUT) -> list[ProbeResult]:
    """Run every probe at once; each is allowed when its echo comes back within `timeout`."""
    for p in probes:
        if p.protocol not in ("TCP", "UDP"):
            raise ValueError(f"probes speak TCP or UDP, not {p.protocol}")
    results: list[ProbeResult] = []
    for start in range(0, len(probes), MAX_BATCH):
        with ExitStack() as stack:
            results += _Batch(probes[start : start + MAX_BATCH], timeout, stack).run()
    return results


class _Batch:
    def __init__(self, probes: Sequence[Probe], timeout: float, stack: ExitStack) -> None:
        self.probes = list(probes)
        self.timeout = timeout
        self.sel = stack.enter_context(selectors.DefaultSelector())
        self.stack = stack
        self.results: dict[int, ProbeResult] = {}

    def _socket(self, kind: int) -> socket.socket:
        s = self.stack.enter_context(socket.socket(socket.AF_INET, kind))
        s.setblocking(False)
        return s

    def _listen(self) -> None:
        ends = sorted({(p.dst_netns, p.dst_ip, p.port, p.protocol) for p in self.probes})
        for netns, ip, port, proto in ends:
            with lab_netns.entered(netns):
                if proto == "TCP":
                    s = self._socket(socket.SOCK_STREAM)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind((ip, port))
                    s.listen(1024)
                    self.sel.register(s, selectors.EVENT_READ, ("accept", None))
                else:
                    s = self._socket(socket.SOCK_DGRAM)
                    s.bind((ip, port))
                    self.sel.register(s, selectors.EVENT_READ, ("udp-echo", None))

    def _start(self) -> None:
        by_netns: dict[str, list[int]] = {}
        for i, p in enumerate(self.probes):
            by_netns.setdefault(p.src_netns, []).append(i)
        for netns, indexes in by_netns.items():
            with lab_netns.entered(netns):
                for i in indexes:
                    self._start_one(i)

    def _start_one(self, i: int) -> None:
        p = self.probes[i]
        token = f"netcc-probe {i} {os.getpid()}\n".encode()
        kind = socket.SOCK_STREAM if p.protocol == "TCP" else socket.SOCK_DGRAM
        s = self._socket(kind)
        s.bind((p.src_ip, 0))
        client = _Client(i, s, token, time.monotonic())
        if p.protocol == "TCP":
            err = s.connect_ex((p.dst_ip, p.port))
            if err not in (0, errno.EINPROGRESS):
                self._done(client, False, os.strerror(err))
                return
            self.sel.register(s, selectors.EVENT_WRITE, ("connecting", client))
        else:
            try:
                s.connect((p.dst_ip, p.port))
                s.send(token)
            except OSError as e:
                self._done(client, False, f"send: {e.strerror}")
                return
            self.sel.register(s, selectors.EVENT_READ, ("reading", client))

    def _done(self, client: _Client, allowed: bool, detail: str) -> None:
        self.results[client.index] = ProbeResult(
            self.probes[client.index], allowed, detail, time.monotonic() - client.started
        )
        with suppress(KeyError, ValueError):
            self.sel.unregister(client.sock)
        client.sock.close()

    def _event(self, key: selectors.SelectorKey) -> None:
        what, client = key.data
        s: socket.socket = key.fileobj  # type: ignore[assignment]
        if what == "accept":
            try:
                conn, _ = s.accept()
            except BlockingIOError:
                return
            conn.setblocking(False)
            self.stack.enter_context(conn)
            self.sel.register(conn, selectors.EVENT_READ, ("tcp-echo", None))
        elif what == "tcp-echo":
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if data:
                s.send(data)
            else:
                self.sel.unregister(s)
                s.close()
        elif what == "udp-echo":
            try:
                data, peer = s.recvfrom(4096)
                s.sendto(data, peer)
            except OSError:
                pass
        elif what == "connecting":
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._done(client, False, f"connect: {os.strerror(err)}")
                return
            s.send(client.token)
            self.sel.modify(s, selectors.EVENT_READ, ("reading", client))
        elif what == "reading":
            try:
                data = s.recv(4096)
            except OSError as e:
                self._done(client, False, f"receive: {e.strerror}")
                return
            client.got += data
            if client.got == client.token:
                ms = (time.monotonic() - client.started) * 1000
                self._done(client, True, f"echo in {ms:.1f} ms")
            elif not data or not client.token.startswith(client.got):
                self._done(client, False, "wrong or no echo")

    def run(self) -> list[ProbeResult]:
        self._listen()
        self._start()
        deadline = time.monotonic() + self.timeout
        while len(self.results) < len(self.probes):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for key, _ in self.sel.select(left):
                self._event(key)
        for key in list(self.sel.get_map().values()):
            _what, client = key.data
            if client is not None and client.index not in self.results:
                self._done(client, False, f"no answer within {self.timeout:g} s")
        return [self.results[i] for i in range(len(self.probes))]
