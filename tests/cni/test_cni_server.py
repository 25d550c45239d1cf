"""netcc.loader.cni.server on its own: the socket file, the spool, limits, envelopes."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time
from pathlib import Path

import pytest
from cnitest import POD_ARGS, FakeHandler, netconf

from netcc.loader.cni import spool
from netcc.loader.cni.server import CniServer, ServerError


def ask(socket_path: Path, request: dict | bytes, timeout: float = 10) -> dict:
    """What the shim does: one request, end of stream, one response."""
    data = request if isinstance(request, bytes) else json.dumps(request).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(socket_path))
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return json.loads(b"".join(chunks))


def request(socket_path: Path, command: str = "ADD", cid: str = "c1", **conf: object) -> dict:
    return {
        "command": command,
        "containerID": cid,
        "netns": "/var/run/netns/x",
        "ifname": "eth0",
        "args": POD_ARGS,
        "path": "/opt/cni/bin",
        "config": json.dumps(netconf(socket_path, **conf)),
    }


def test_the_socket_is_0600_and_removed_on_stop(socket_path, handler):
    with CniServer(socket_path, handler) as srv:
        st = os.lstat(socket_path)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
        assert ask(socket_path, request(socket_path))["code"] == 0
    assert not socket_path.exists()
    assert [p.name for p in socket_path.parent.iterdir() if p.name.startswith(".s")] == []
    srv.stop()  # twice is harmless


def test_a_stale_socket_is_replaced(socket_path, handler):
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(socket_path))
    stale.close()
    with CniServer(socket_path, handler):
        assert ask(socket_path, request(socket_path))["code"] == 0


def test_a_second_daemon_and_non_sockets_are_refused(socket_path, handler):
    with CniServer(socket_path, handler), pytest.raises(ServerError, match="another netcc daemon"):
        CniServer(socket_path, handler).start()
    socket_path.write_text("not a socket")
    with pytest.raises(ServerError, match="not a socket"):
        CniServer(socket_path, handler).start()
    assert socket_path.read_text() == "not a socket"
    socket_path.unlink()
    with CniServer(socket_path, handler):  # the failed starts left the lock free
        pass


def test_stop_waits_for_requests_in_flight(socket_path, handler):
    handler.delay["ADD"] = 0.5
    srv = CniServer(socket_path, handler)
    srv.start()
    answers = []
    t = threading.Thread(target=lambda: answers.append(ask(socket_path, request(socket_path))))
    t.start()
    time.sleep(0.2)
    srv.stop()
    t.join()
    assert answers[0]["code"] == 0 and handler.commands() == ["ADD"]


def test_beyond_max_connections_is_try_again_later(socket_path, handler):
    handler.delay["ADD"] = 1.0
    with CniServer(socket_path, handler, max_connections=1):
        first = threading.Thread(target=ask, args=(socket_path, request(socket_path)))
        first.start()
        time.sleep(0.3)
        busy = ask(socket_path, request(socket_path, cid="c2"))
        first.join()
    assert busy["code"] == 11 and "busy" in json.loads(busy["stdout"])["msg"]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", 6),
        (b"[]", 6),
        (b'{"command": "ADD", "config": "{"}', 4),  # no container id: the env check first
        (b'{"command": "FROB"}', 4),
    ],
)
def test_malformed_requests(socket_path, handler, data, code):
    with CniServer(socket_path, handler):
        answer = ask(socket_path, data)
    assert answer["code"] == code
    assert json.loads(answer["stdout"])["code"] == code and handler.calls == []


def test_version_and_add_envelopes(socket_path, handler):
    with CniServer(socket_path, handler) as srv:
        version = ask(socket_path, {**request(socket_path, "VERSION"), "config": "{}"})
        assert json.loads(version["stdout"])["supportedVersions"] == ["1.0.0", "1.1.0"]
        add = srv.dispatch(json.dumps(request(socket_path)).encode())
    envelope = json.loads(add)
    assert envelope["code"] == 0 and envelope["stderr"] == ""
    assert json.loads(envelope["stdout"])["ips"][0]["address"] == "10.244.1.17/32"


def test_a_dict_result_gets_the_negotiated_version(socket_path):
    class DictHandler(FakeHandler):
        def add(self, req):
            return {"cniVersion": "0.4.0", "ips": [{"address": "10.0.0.5/32"}]}

    srv = CniServer(socket_path, DictHandler())
    out = json.loads(json.loads(srv.dispatch(json.dumps(request(socket_path)).encode()))["stdout"])
    assert out == {"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.5/32"}]}


def _spool(socket_path: Path, name: str, content: bytes) -> Path:
    d = spool.spool_dir(socket_path)
    d.mkdir(exist_ok=True, parents=True)
    (d / name).write_bytes(content)
    return d / name


def test_unusable_spool_files_are_set_aside(socket_path, handler):
    _spool(socket_path, "junk.json", b"{")
    _spool(socket_path, "add.json", json.dumps(request(socket_path, "ADD")).encode())
    (spool.spool_dir(socket_path) / "link.json").symlink_to("/etc/passwd")
    _spool(socket_path, ".tmp-123", b"half")  # a shim still writing: not touched
    with CniServer(socket_path, handler):
        pass
    left = sorted(os.listdir(spool.spool_dir(socket_path)))
    assert left == [".tmp-123", "add.json.bad", "junk.json.bad", "link.json.bad"]
    assert handler.calls == []


def test_a_failing_spooled_del_stays_for_the_next_round(socket_path, handler):
    path = _spool(socket_path, "c1-eth0.json", json.dumps(request(socket_path, "DEL")).encode())
    handler.fail["DEL"] = OSError(5, "netlink busy")
    srv = CniServer(socket_path, handler, spool_interval=0.1)
    with srv:
        assert path.exists()
        del handler.fail["DEL"]
        deadline = time.monotonic() + 5
        while path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    assert not path.exists() and handler.commands().count("DEL") >= 2


def test_add_finishes_the_same_attachments_spooled_del_first(socket_path, handler):
    """A DEL spooled while the daemon was away is older than any ADD that reaches it."""
    with CniServer(socket_path, handler, spool_interval=3600):
        _spool(socket_path, "c9-eth0.json", json.dumps(request(socket_path, "DEL", "c9")).encode())
        _spool(socket_path, "c8-eth0.json", json.dumps(request(socket_path, "DEL", "c8")).encode())
        assert ask(socket_path, request(socket_path, "ADD", "c9"))["code"] == 0
        order = [(c, r.container_id) for c, r in handler.calls]
        assert order == [("DEL", "c9"), ("ADD", "c9")]  # c8's waits for its turn
        assert os.listdir(spool.spool_dir(socket_path)) == ["c8-eth0.json"]


def test_add_waits_while_the_same_attachments_spooled_del_fails(socket_path, handler):
    handler.fail["DEL"] = OSError(16, "Device or resource busy")
    with CniServer(socket_path, handler, spool_interval=3600):
        _spool(socket_path, "c9-eth0.json", json.dumps(request(socket_path, "DEL", "c9")).encode())
        answer = ask(socket_path, request(socket_path, "ADD", "c9"))
        assert answer["code"] == 11 and "earlier DEL of c9/eth0" in answer["stdout"]
        assert handler.commands() == ["DEL"]  # no ADD ran
        del handler.fail["DEL"]
        assert ask(socket_path, request(socket_path, "ADD", "c9"))["code"] == 0
    assert handler.commands() == ["DEL", "DEL", "ADD"]
