"""The userspace backend's failures: a UAPI errno answer becomes a BackendError naming the
error, and a create that fails (the daemon never answers, or hangs) leaves no daemon behind."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from pathlib import Path

import pytest

from netcc.loader.wireguard import uapi
from netcc.loader.wireguard.backend import BackendError
from netcc.loader.wireguard.uapi import UserspaceBackend, process_alive

IFNAME = "netcc-wgr0"


@pytest.fixture
def sockets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """UAPI sockets in a private directory, not the machine's /var/run/wireguard."""
    d = tmp_path / "sock"
    d.mkdir()
    monkeypatch.setattr(uapi, "socket_dir", lambda: d)
    monkeypatch.setattr(uapi, "STANDARD_SOCKET_DIR", d)
    return d


def _answer_once(path: Path, answer: bytes) -> threading.Thread:
    """A fake daemon: answer one UAPI request on `path` with `answer`."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def serve() -> None:
        with server:
            conn, _ = server.accept()
            with conn:
                data = b""
                while not data.endswith(b"\n\n"):
                    data += conn.recv(4096)
                conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"errno=-22\n\n", "errno 22: Invalid argument"),  # wireguard-go's -EINVAL
        (b"errno=22\n\n", "errno 22: Invalid argument"),
        (b"errno=oops\n\n", "malformed UAPI answer (errno=oops)"),
    ],
)
def test_wg_uapi_errno(sockets: Path, answer: bytes, message: str) -> None:
    thread = _answer_once(sockets / f"{IFNAME}.sock", answer)
    with pytest.raises(BackendError) as e:
        UserspaceBackend().read(IFNAME)
    thread.join(5)
    assert message in str(e.value)


FAKE_DAEMON = """#!/bin/bash
# Forks a "wireguard-go IFNAME" that never answers on its socket, then {rest}
(exec -a wireguard-go {python} -c '
import os, sys, time
open(sys.argv[2], "w").write(str(os.getpid()))
time.sleep(60)
' "$1" {pidfile} </dev/null >/dev/null 2>&1 &)
{tail}
"""


@pytest.mark.parametrize("hangs", [False, True], ids=["no-answer", "timeout"])
def test_wg_failed_create_leaves_no_daemon(
    sockets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hangs: bool
) -> None:
    if not os.path.exists("/dev/net/tun"):
        pytest.skip("no /dev/net/tun: UserspaceBackend.available() refuses before starting")
    monkeypatch.setattr(uapi, "TIMEOUT", 0.3)
    pidfile = tmp_path / "daemon.pid"
    script = tmp_path / "bin" / "wireguard-go"
    script.parent.mkdir()
    tail = "exec sleep 30" if hangs else "exit 0"
    script.write_text(
        FAKE_DAEMON.format(python=sys.executable, pidfile=pidfile, tail=tail, rest=tail)
    )
    script.chmod(0o755)
    pid = 0
    try:
        with pytest.raises(BackendError, match=r"does not answer|starting"):
            UserspaceBackend(str(script)).create(IFNAME)
        assert pidfile.exists(), "the fake daemon did not start"
        pid = int(pidfile.read_text())
        assert not process_alive(pid), "the daemon of a failed create was left running"
    finally:
        if pid and process_alive(pid):
            os.kill(pid, signal.SIGKILL)
