"""The lab's stand-ins for a cluster's control plane and runtime, without root: the pod API
answered from the lab's pod list (read by the daemon's own Kubernetes client), and the
runtime side of CNI (a config list run plugin by plugin, results cached, DEL in reverse)."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from netcc.lab.cniruntime import Attachment, CniRuntimeError, Runtime, load_conflist
from netcc.lab.kubeapi import _Server, write_pods
from netcc.loader.kube.client import KubeClient
from netcc.loader.kube.errors import NotFound


@pytest.fixture
def api(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    sock = str(tmp_path / "kube.sock")
    server = _Server(sock, state)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, KubeClient(f"unix://{sock}")
    server.shutdown()
    server.server_close()


def test_the_lab_api_answers_pods_from_its_list(api):
    state, client = api
    with pytest.raises(NotFound):
        client.get_pod("shop", "web-1")
    pod = {"namespace": "shop", "name": "web-1", "uid": "u1", "node": "n1", "labels": {"a": "b"}}
    write_pods(state, {"shop/web-1": pod})
    got = client.get_pod("shop", "web-1")
    assert (got.namespace, got.name, got.uid, dict(got.labels)) == (
        "shop",
        "web-1",
        "u1",
        {"a": "b"},
    )
    write_pods(state, {})  # a deleted pod is gone at once
    with pytest.raises(NotFound):
        client.get_pod("shop", "web-1")


PLUGIN = """#!/bin/sh
# A fake plugin: logs its command, config and environment; its result adds itself to prevResult.
input=$(cat)
echo "$CNI_COMMAND $(basename "$0") $CNI_CONTAINERID $CNI_IFNAME $CNI_ARGS" >> "$LOG"
echo "$input" > "$LOG.$CNI_COMMAND.$(basename "$0")"
if [ -n "$FAIL" ] && [ "$FAIL" = "$(basename "$0").$CNI_COMMAND" ]; then
  echo '{"cniVersion":"1.0.0","code":11,"msg":"not now","details":"d"}'; exit 1
fi
me=$(basename "$0")
[ "$CNI_COMMAND" = ADD ] && echo '{"cniVersion":"1.0.0","interfaces":[{"name":"'"$me"'"}]}'
exit 0
"""


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("first", "second"):
        p = bin_dir / name
        p.write_text(PLUGIN)
        p.chmod(p.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("LOG", str(tmp_path / "log"))
    return Runtime([str(bin_dir)], tmp_path / "cache"), tmp_path / "log"


CONFLIST = {
    "cniVersion": "1.0.0",
    "name": "net",
    "plugins": [
        {"type": "first", "x": 1},
        {"type": "second", "capabilities": {"portMappings": True}},
    ],
}
ATT = Attachment(
    "c1",
    "/run/netns/p",
    "eth0",
    {"K8S_POD_NAME": "p"},
    {"portMappings": [{"hostPort": 1}], "bandwidth": {}},
)


def test_add_chains_prev_results_and_caches_the_last(runtime):
    rt, log = runtime
    result = rt.add(CONFLIST, ATT)
    assert result["interfaces"] == [{"name": "second"}]
    first = json.loads(Path(f"{log}.ADD.first").read_text())
    second = json.loads(Path(f"{log}.ADD.second").read_text())
    assert "prevResult" not in first and first["x"] == 1 and first["name"] == "net"
    assert second["prevResult"]["interfaces"] == [{"name": "first"}]
    # only the capability the plugin declares reaches it
    assert (
        second["runtimeConfig"] == {"portMappings": [{"hostPort": 1}]}
        and "runtimeConfig" not in first
    )
    assert rt.cached(CONFLIST, ATT) == result
    assert log.read_text().splitlines()[0] == "ADD first c1 eth0 K8S_POD_NAME=p"


def test_del_runs_in_reverse_with_the_cached_result_and_drops_the_cache(runtime):
    rt, log = runtime
    rt.add(CONFLIST, ATT)
    rt.delete(CONFLIST, ATT)
    lines = [line.split()[:2] for line in log.read_text().splitlines()]
    assert lines[-2:] == [["DEL", "second"], ["DEL", "first"]]
    assert json.loads(Path(f"{log}.DEL.first").read_text())["prevResult"]["interfaces"] == [
        {"name": "second"}
    ]
    assert rt.cached(CONFLIST, ATT) is None


def test_a_failed_add_is_undone_and_reports_the_plugin_error(runtime, monkeypatch):
    rt, log = runtime
    monkeypatch.setenv("FAIL", "second.ADD")
    with pytest.raises(CniRuntimeError) as e:
        rt.add(CONFLIST, ATT)
    assert (e.value.plugin, e.value.code, e.value.msg) == ("second", 11, "not now")
    commands = [line.split()[:2] for line in log.read_text().splitlines()]
    assert commands == [["ADD", "first"], ["ADD", "second"], ["DEL", "second"], ["DEL", "first"]]
    assert rt.cached(CONFLIST, ATT) is None


def test_the_first_conflist_in_lexical_order_is_the_network(tmp_path):
    assert load_conflist(tmp_path / "none") is None
    (tmp_path / "20-b.conflist").write_text(json.dumps({**CONFLIST, "name": "b"}))
    (tmp_path / "10-a.conflist").write_text(json.dumps({**CONFLIST, "name": "a"}))
    (tmp_path / "05-junk.conflist").write_text("{")
    assert load_conflist(tmp_path)["name"] == "a"
    assert os.path.exists(tmp_path / "05-junk.conflist")


def test_the_runtime_runs_a_list_with_the_highest_version_it_speaks() -> None:
    from netcc.lab.cniruntime import list_version

    assert list_version({"cniVersion": "1.0.0", "cniVersions": ["1.0.0", "1.1.0"]}) == "1.1.0"
    assert list_version({"cniVersion": "1.0.0", "cniVersions": ["1.0.0", "9.9.9"]}) == "1.0.0"
    assert list_version({"cniVersion": "1.0.0"}) == "1.0.0"  # a libcni before 1.2
