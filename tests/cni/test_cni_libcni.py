"""The shim driven by libcni, the library containerd and CRI-O run plugins with (Debian's
golang-github-appc-cni-dev, built offline in GOPATH mode into libcni_driver/).

libcni does not open the netns itself (it passes CNI_NETNS on), and the fake handler does not
either, so no network namespace is needed here; the lab tests create real ones.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cnitest import POD_ARGS, POD_UID, REPO, go_or_skip, sample_result

from netcc.loader.cni.protocol import INVALID_CONFIG, TRY_AGAIN_LATER, CniError, PodRef

LIBCNI_SRC = Path("/usr/share/gocode/src/github.com/containernetworking/cni")
NETNS = "/var/run/netns/cni-1b2c3d4e"  # never opened
CONTAINER = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


@pytest.fixture(scope="session")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go_or_skip()
    if not LIBCNI_SRC.is_dir():
        pytest.skip(f"{LIBCNI_SRC} is missing (`make test-packages` installs it)")
    tmp = tmp_path_factory.mktemp("libcni")
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": f"/usr/share/gocode:{tmp}",
        "GOPROXY": "off",
        "GOFLAGS": "",
        "CGO_ENABLED": "0",
    }
    binary = tmp / "libcni-driver"
    subprocess.run(
        ["go", "build", "-o", str(binary), "."],
        cwd=REPO / "tests/cni/libcni_driver",
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return binary


@pytest.fixture
def runtime(driver: Path, shim: Path, socket_path: Path, tmp_path: Path):
    """A runtime's view: the plugin installed as `netcc` in a bin dir, a conflist, a cache."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shutil.copy(shim, bindir / "netcc")  # the executable is named after `type`
    conflist = tmp_path / "10-netcc.conflist"
    conflist.write_text(
        json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": "netcc",
                "plugins": [{"type": "netcc", "socket": str(socket_path), "timeoutSeconds": 30}],
            }
        )
    )

    def run(command: str, *extra: str) -> tuple[int, object]:
        p = subprocess.run(
            [
                str(driver),
                f"-conflist={conflist}",
                f"-path={bindir}",
                f"-cache={tmp_path / 'cache'}",
                f"-netns={NETNS}",
                f"-id={CONTAINER}",
                "-ifname=eth0",
                f"-args={POD_ARGS}",
                command,
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return p.returncode, (json.loads(p.stdout) if p.stdout.strip() else None)

    return run


def test_add_check_del_through_libcni(runtime, server, handler):
    code, result = runtime("add")
    assert code == 0, result
    [(_, add)] = handler.calls
    expected = sample_result(add).to_json("1.0.0")
    for key in ("cniVersion", "interfaces", "ips", "routes"):
        assert result[key] == expected[key]
    assert (add.container_id, add.netns, add.ifname) == (CONTAINER, NETNS, "eth0")
    assert add.pod == PodRef("shop", "cart-1", POD_UID)
    assert add.config.name == "netcc" and add.cni_version == "1.0.0"

    assert runtime("check") == (0, None)
    assert runtime("del") == (0, None)
    assert handler.commands() == ["ADD", "CHECK", "DEL"]
    for _, req in handler.calls[1:]:  # libcni passes the cached ADD result on
        assert req.config.prev_result["ips"] == expected["ips"]


def test_version_through_libcni(runtime):
    code, versions = runtime("version", "netcc")
    assert code == 0 and versions == ["1.0.0", "1.1.0"]
    # ValidateNetworkList asks VERSION, checks the list's version is supported, and returns
    # the capabilities the plugins declare: none.
    assert runtime("validate") == (0, [])


def test_errors_reach_the_runtime(runtime, server, handler):
    handler.fail["ADD"] = CniError(INVALID_CONFIG, "pod shop/cart-1 matches no class", "app=x")
    code, out = runtime("add")
    assert code == 1
    assert out["error"] == {
        "code": INVALID_CONFIG,
        "msg": "pod shop/cart-1 matches no class",
        "details": "app=x",
    }


def test_daemon_down_through_libcni(runtime, socket_path):
    code, out = runtime("add")
    assert code == 1 and out["error"]["code"] == TRY_AGAIN_LATER
    assert runtime("del") == (0, None)  # spooled for the daemon
    assert os.listdir(socket_path.parent / "pending-del") == [f"{CONTAINER}-eth0.json"]
