"""pods.json (its resourceVersion, atomic writes) and `netcc lab pod ready`, on a lab state
written by hand in a temporary directory: no namespaces, no root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest
from labapi_docs import pod, pods

from netcc.lab import kubeapi
from netcc.lab import pods as lab_pods
from netcc.lab.kubeapi import read_doc, read_pods, write_pods
from netcc.lab.state import LabState, lab_lock


def test_every_write_bumps_the_resource_version(tmp_path):
    assert read_doc(tmp_path)["resourceVersion"] == 0
    assert write_pods(tmp_path, pods(pod("a", "10.1.0.33"))) == 1
    assert write_pods(tmp_path, pods(pod("a", "10.1.0.33")), digest="d1") == 2
    assert write_pods(tmp_path, {}) == 3
    doc = read_doc(tmp_path)
    assert (doc["resourceVersion"], doc["servicesDigest"], doc["pods"]) == (3, "d1", {})
    write_pods(tmp_path, {}, digest=None)
    assert "servicesDigest" not in read_doc(tmp_path)
    assert os.listdir(tmp_path) == ["pods.json"]  # no temporary file left


def test_an_old_pods_json_reads_as_version_zero(tmp_path):
    (tmp_path / "pods.json").write_text(json.dumps({"pods": {"shop/a": pod("a", None)}}))
    assert read_doc(tmp_path)["resourceVersion"] == 0 and set(read_pods(tmp_path)) == {"shop/a"}
    (tmp_path / "pods.json").write_text("[1, 2]")
    assert read_doc(tmp_path) == {"pods": {}, "resourceVersion": 0}


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    write_pods(tmp_path, pods(pod("a", None)))

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(kubeapi.os, "replace", fail)
    with pytest.raises(OSError):
        write_pods(tmp_path, {})
    assert os.listdir(tmp_path) == ["pods.json"] and set(read_pods(tmp_path)) == {"shop/a"}


def test_parallel_writers_under_the_lock_lose_nothing(tmp_path):
    def add(i: int) -> None:
        with lab_lock(tmp_path):
            listed = read_pods(tmp_path)
            listed[f"shop/p{i}"] = pod(f"p{i}", None)
            write_pods(tmp_path, listed)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    doc = read_doc(tmp_path)
    assert len(doc["pods"]) == 16 and doc["resourceVersion"] == 16
    assert os.listdir(tmp_path) == ["pods.json"]


def lab(tmp_path, status: str = "up") -> LabState:
    state = LabState.create(tmp_path / "lab")
    state.update(status=status)
    write_pods(tmp_path / "lab", pods(pod("web-1", None, ready=False)))
    return state


def test_set_ready_and_the_address(tmp_path):
    state = lab(tmp_path)
    lab_pods._relist(state, "shop/web-1", ip="10.1.0.33")
    lab_pods._relist(state, "shop/gone", ip="10.1.0.34")  # no longer listed: nothing
    assert set(read_pods(state.path.parent)) == {"shop/web-1"}
    doc = lab_pods.set_ready("shop/web-1", True, tmp_path / "lab")
    assert doc == {"pod": "shop/web-1", "node": "n1", "ip": "10.1.0.33", "ready": True}
    rv = read_doc(tmp_path / "lab")["resourceVersion"]
    lab_pods.set_ready("shop/web-1", True, tmp_path / "lab")  # no change, no new version
    assert read_doc(tmp_path / "lab")["resourceVersion"] == rv
    record = read_pods(tmp_path / "lab")["shop/web-1"]
    assert (record["ip"], record["ready"]) == ("10.1.0.33", True)


def test_set_ready_errors(tmp_path):
    with pytest.raises(lab_pods.PodError, match="NAMESPACE/NAME"):
        lab_pods.set_ready("web-1", True, tmp_path / "lab")
    lab(tmp_path, status="building")
    with pytest.raises(lab_pods.PodError, match="the lab is not up"):
        lab_pods.set_ready("shop/web-1", True, tmp_path / "lab")


def netcc(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NETCC_LAB_DIR": str(tmp_path / "lab")}
    return subprocess.run(
        [sys.executable, "-m", "netcc", "lab", "pod", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def one_error(result: subprocess.CompletedProcess, text: str) -> None:
    assert result.returncode == 1, result
    assert result.stderr.startswith("netcc: error: ") and text in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_cli_pod_ready(tmp_path):
    one_error(netcc(tmp_path, "ready", "shop/web-1", "true"), "no lab is up")
    lab(tmp_path)
    done = netcc(tmp_path, "ready", "shop/web-1", "true")
    assert done.returncode == 0 and done.stdout == "pod shop/web-1 on n1: ready\n", done
    assert read_pods(tmp_path / "lab")["shop/web-1"]["ready"] is True
    done = netcc(tmp_path, "ready", "shop/web-1", "false", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["ready"] is False
    assert read_pods(tmp_path / "lab")["shop/web-1"]["ready"] is False
    one_error(netcc(tmp_path, "ready", "shop/nope", "true"), "no runtime pod shop/nope")
    one_error(netcc(tmp_path, "ready", "nope", "true"), "NAMESPACE/NAME")
    assert netcc(tmp_path, "ready", "shop/web-1", "maybe").returncode == 2  # a usage error


def test_cli_pod_add_documents_readiness(tmp_path):
    out = netcc(tmp_path, "add", "--help").stdout
    assert "--ready" in out and "not ready" in " ".join(out.split())
