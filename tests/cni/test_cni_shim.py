"""build/netcc-cni against a real netcc.loader.cni.server with a fake handler."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from cnitest import POD_UID, REPO, go_or_skip, make_cni, netconf, run_shim, sample_result

from netcc.loader.cni.protocol import (
    INVALID_CONFIG,
    IO_FAILURE,
    TRY_AGAIN_LATER,
    CniError,
    PodRef,
)
from netcc.loader.cni.server import CniServer


def test_version_is_answered_without_the_daemon(shim, socket_path):
    for stdin in (b'{"cniVersion": "1.0.0"}', b""):
        code, out, _ = run_shim(shim, "VERSION", stdin)
        assert code == 0
        assert out["supportedVersions"] == ["1.0.0", "1.1.0"]
    assert out["cniVersion"] == "1.1.0"  # no input version: the latest


@pytest.mark.parametrize("version", ["1.0.0", "1.1.0"])
def test_add_passes_the_request_and_the_result_through(shim, server, handler, socket_path, version):
    conf = netconf(socket_path, version, mtu=1500)
    code, out, err = run_shim(shim, "ADD", conf)
    assert (code, err) == (0, "")
    [(command, req)] = handler.calls
    assert out == sample_result(req).to_json(version)
    assert ("mtu" in out["interfaces"][0]) == (version == "1.1.0")  # 1.1.0 fields only in 1.1.0
    assert command == "ADD"
    assert (req.container_id, req.ifname, req.netns) == (
        "0123456789abcdef",
        "eth0",
        "/var/run/netns/cni-test",
    )
    assert req.pod == PodRef("shop", "cart-1", POD_UID)
    assert req.path == ("/opt/cni/bin",)
    assert req.config.raw == conf and req.cni_version == version


def test_del_check_status_gc_succeed_with_empty_stdout(shim, server, handler, socket_path):
    conf = netconf(socket_path, prevResult={"cniVersion": "1.1.0"})
    gc_conf = netconf(socket_path, **{"cni.dev/valid-attachments": []})
    for command, c in (("CHECK", conf), ("DEL", conf), ("STATUS", conf), ("GC", gc_conf)):
        assert run_shim(shim, command, c) == (0, None, "")
    assert handler.commands() == ["CHECK", "DEL", "STATUS", "GC"]


@pytest.mark.parametrize(
    ("raised", "code", "words"),
    [
        (CniError(INVALID_CONFIG, "pod shop/cart-1 matches no class", "labels app=cart"), 7, ""),
        (PermissionError(13, "Permission denied"), IO_FAILURE, "Permission denied"),
        (RuntimeError("boom"), TRY_AGAIN_LATER, "RuntimeError: boom"),
    ],
)
def test_handler_failures_become_cni_errors(
    shim, server, handler, socket_path, raised, code, words
):
    handler.fail["ADD"] = raised
    status, out, err = run_shim(shim, "ADD", netconf(socket_path))
    assert status == 1
    assert out["code"] == code and out["cniVersion"] == "1.1.0"
    assert words in out["msg"]
    if isinstance(raised, CniError):
        assert (out["msg"], out["details"]) == (raised.msg, raised.details)
    assert "Traceback" not in json.dumps(out) + err


@pytest.mark.parametrize(
    ("versions", "expect"),
    [
        ({"cniVersion": "1.0.0"}, "1.0.0"),
        ({"cniVersion": "1.1.0", "cniVersions": ["1.0.0"]}, "1.1.0"),  # the runtime's choice
        ({"cniVersions": ["0.4.0", "1.0.0", "1.1.0", "2.0.0"]}, "1.1.0"),
        ({"cniVersions": ["0.3.1", "1.0.0"]}, "1.0.0"),
        ({"cniVersion": "0.4.0"}, None),
        ({"cniVersion": "1.2.0"}, None),
        ({"cniVersions": ["0.3.1", "2.0.0"]}, None),
        ({}, None),
    ],
)
def test_cni_version_negotiation(shim, server, handler, socket_path, versions, expect):
    conf = {"name": "netcc", "type": "netcc", "socket": str(socket_path), **versions}
    code, out, _ = run_shim(shim, "ADD", conf)
    if expect is None:
        assert code == 1 and out["code"] == 1 and "supports 1.0.0, 1.1.0" in out["msg"]
        assert handler.calls == []
    else:
        assert code == 0 and out["cniVersion"] == expect
        assert handler.calls[0][1].cni_version == expect


@pytest.mark.parametrize("command", ["ADD", "CHECK", "STATUS", "GC"])
def test_daemon_down_is_try_again_later(shim, socket_path, command):
    conf = netconf(socket_path, **{"cni.dev/valid-attachments": []})
    code, out, _ = run_shim(shim, command, conf)
    assert code == 1 and out["code"] == TRY_AGAIN_LATER
    assert str(socket_path) in out["msg"]
    assert not (socket_path.parent / "pending-del").exists()


def test_a_stale_socket_is_try_again_later(shim, socket_path):
    import socket

    s = socket.socket(socket.AF_UNIX)
    s.bind(str(socket_path))
    s.close()  # bound, never listening: connection refused
    code, out, _ = run_shim(shim, "ADD", netconf(socket_path))
    assert code == 1 and out["code"] == TRY_AGAIN_LATER and "refused" in out["details"]


def test_del_with_the_daemon_down_is_spooled_then_finished(shim, socket_path, handler):
    conf = netconf(socket_path)
    assert run_shim(shim, "DEL", conf, container_id="c1", netns="") == (0, None, "")
    spooled = socket_path.parent / "pending-del" / "c1-eth0.json"
    request = json.loads(spooled.read_text())
    assert request["command"] == "DEL" and request["containerID"] == "c1"
    assert json.loads(request["config"]) == conf
    assert oct(spooled.stat().st_mode & 0o777) == "0o600"
    assert run_shim(shim, "DEL", conf, container_id="c1", netns="")[0] == 0  # again: same file
    assert os.listdir(spooled.parent) == ["c1-eth0.json"]

    with CniServer(socket_path, handler, spool_interval=0.2):
        [(command, req)] = handler.calls  # finished on start, before serving
    assert (command, req.container_id, req.ifname, req.netns) == ("DEL", "c1", "eth0", "")
    assert os.listdir(spooled.parent) == []


def test_spooled_dels_of_attachments_sharing_a_name_both_survive(shim, socket_path, handler):
    conf = netconf(socket_path)
    for cid, ifname in (("a-b", "c"), ("a", "b-c")):  # both would be a-b-c.json
        assert run_shim(shim, "DEL", conf, container_id=cid, ifname=ifname)[0] == 0
    assert len(os.listdir(socket_path.parent / "pending-del")) == 2
    with CniServer(socket_path, handler):
        pass
    done = sorted((r.container_id, r.ifname) for _, r in handler.calls)
    assert done == [("a", "b-c"), ("a-b", "c")]


def test_del_is_spooled_while_the_daemon_runs_then_picked_up(shim, server, socket_path, handler):
    """The periodic pass finds a DEL spooled while the socket was briefly unreachable."""
    handler.fail["ADD"] = CniError(TRY_AGAIN_LATER, "not ready")
    other = socket_path.parent / "gone.sock"  # a config naming another socket, same directory
    assert run_shim(shim, "DEL", netconf(other), container_id="late")[0] == 0
    deadline = time.monotonic() + 10
    while "DEL" not in handler.commands() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [r.container_id for c, r in handler.calls if c == "DEL"] == ["late"]


HOSTILE_IDS = ["../../etc/passwd", "-rf", "a/b", ".hidden", "a b", "x\ty", "ü", "a" * 1025, ""]
HOSTILE_IFNAMES = ["..", ".", "eth0/..", "a:b", "a b", "0123456789abcdef", "", "e\nth"]


@pytest.mark.parametrize(
    ("cid", "ifname"),
    [(c, "eth0") for c in HOSTILE_IDS] + [("c1", i) for i in HOSTILE_IFNAMES],
)
@pytest.mark.parametrize("command", ["ADD", "DEL"])
def test_hostile_container_ids_and_ifnames_are_refused(shim, socket_path, command, cid, ifname):
    code, out, _ = run_shim(shim, command, netconf(socket_path), container_id=cid, ifname=ifname)
    assert code == 1 and out["code"] == 4
    assert not (socket_path.parent / "pending-del").exists()  # nothing written anywhere
    assert sorted(os.listdir(socket_path.parent)) == []


def test_a_slow_daemon_times_out(shim, server, handler, socket_path):
    handler.delay["ADD"] = handler.delay["DEL"] = 1.5
    conf = netconf(socket_path, timeoutSeconds=0.3)
    start = time.monotonic()
    code, out, _ = run_shim(shim, "ADD", conf)
    assert code == 1 and out["code"] == TRY_AGAIN_LATER and "timeout" in out["details"]
    assert run_shim(shim, "DEL", conf, container_id="slow")[0] == 0  # DEL: spooled instead
    assert time.monotonic() - start < 1.5
    assert (socket_path.parent / "pending-del" / "slow-eth0.json").exists()


@pytest.mark.parametrize(
    ("stdin", "code"),
    [
        (b"{not json", 6),
        (b"\xff\xfe", 6),
        (b'{"cniVersion": "1.1.0", "socket": "relative.sock"}', 7),
        (b'{"cniVersion": "1.1.0", "timeoutSeconds": -1}', 7),
        (b'{"cniVersion": 1}', 7),
    ],
)
def test_unusable_configurations(shim, stdin, code):
    status, out, _ = run_shim(shim, "ADD", stdin)
    assert status == 1 and out["code"] == code


def test_unknown_command_and_missing_netns(shim, socket_path):
    assert run_shim(shim, "FROB", netconf(socket_path))[1]["code"] == 4
    out = run_shim(shim, "ADD", netconf(socket_path), netns="")[1]
    assert out["code"] == 4 and "CNI_NETNS" in out["msg"]


def test_the_daemon_validates_what_the_shim_forwards(shim, server, handler, socket_path):
    """The shim stays thin; the daemon's protocol refuses e.g. a half pod reference."""
    code, out, _ = run_shim(shim, "ADD", netconf(socket_path), args="K8S_POD_NAME=x")
    assert code == 1 and out["code"] == 4 and "K8S_POD_NAMESPACE" in out["msg"]
    assert handler.calls == []


def test_the_build_is_static_and_reproducible(shim, tmp_path):
    """`make cni` from a copy outside the git checkout (no VCS stamp, other paths) gives
    the same bytes."""
    copy = tmp_path / "elsewhere"
    copy.mkdir()
    shutil.copy(REPO / "Makefile", copy / "Makefile")
    shutil.copytree(REPO / "cni", copy / "cni")
    again = tmp_path / "out" / "netcc-cni"
    make_cni(again, copy)
    assert again.read_bytes() == shim.read_bytes()
    assert b"/work/" not in shim.read_bytes() and str(REPO).encode() not in shim.read_bytes()
    with open(shim, "rb") as f:
        elf = f.read(4096)
    assert elf[:4] == b"\x7fELF" and b"ld-linux" not in elf  # no interpreter: static


def test_go_sources_are_formatted_and_vetted(tmp_path):
    go_or_skip()
    gofmt = subprocess.run(
        ["gofmt", "-l", "cni", "tests/cni"], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert gofmt.stdout == ""
    env = {**os.environ, "GOPROXY": "off", "GOFLAGS": ""}
    subprocess.run(["go", "vet", "./..."], cwd=REPO / "cni", env=env, check=True, timeout=120)
    gopath = {**env, "GO111MODULE": "off", "GOPATH": f"/usr/share/gocode:{tmp_path}"}
    if Path("/usr/share/gocode/src/github.com/containernetworking/cni").is_dir():
        subprocess.run(
            ["go", "vet", "."], cwd=REPO / "tests/cni/libcni_driver", env=gopath, check=True
        )
