"""`netcc lab probe` with a service as target: svc:NS/NAME, a ClusterIP or a nodePort."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from svclab_specs import EXTERNAL, NODEPORT_CLUSTER, WEB, WEB_VIP


def _probe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "netcc", "lab", "probe", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "src,dst,port",
    [
        ("shop/client-1", "svc:shop/web", "80/tcp"),
        ("shop/client-2", WEB_VIP, "53/udp"),
        (EXTERNAL, "node-2", f"{NODEPORT_CLUSTER}/tcp"),
    ],
)
def test_probe_a_service_counts_backends(svclab, src, dst, port):
    proc = _probe(src, dst, port, "--count", "30")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["verdict"] == "allow" and doc["answered"] == 30, doc
    assert set(doc["backends"]) == set(WEB) and sum(doc["backends"].values()) == 30


def test_probe_a_service_denied_exits_4(svclab):
    proc = _probe("shop/blocked", "svc:guarded/api", "80/tcp", "--count", "3")
    assert proc.returncode == 4, proc.stderr
    assert json.loads(proc.stdout)["answered"] == 0


def test_probe_an_unknown_service_is_an_error(svclab):
    proc = _probe("shop/client-1", "svc:shop/nope", "80/tcp")
    assert proc.returncode == 1 and "no such service" in proc.stderr
