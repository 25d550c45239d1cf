"""`netcc load apply` of a new OUT that removes one backend, onto the live maps: established
flows keep their backends (conntrack carries over), and new connections no longer reach the
removed one. Packets run through the pinned programs (BPF_PROG_TEST_RUN) on the client's veth.

Creates network namespaces: run under `flock /tmp/netcc-lab.lock`."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from kernelenv import compile_to
from svcnode import PODS, VIP, spec, svc_node
from svcpackets import fields

from netcc.loader import libbpf
from netcc.loader.netns import enter_netns
from netcc.loader.testrun import TC_ACT_OK, ipv4_packet

CLIENT, A, B = PODS["client"], PODS["server-a"], PODS["server-b"]
SKB_IFINDEX = 40  # offsetof(struct __sk_buff, ifindex)


@pytest.fixture(scope="module")
def outs(tmp_path_factory):
    root = tmp_path_factory.mktemp("svcupd")
    try:
        yield {
            "both": compile_to(spec(service=True), root / "both"),
            "only-a": compile_to(spec(service=True, both_backends=False), root / "only-a"),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _sender(node):
    """Runs a packet through the applied netcc_from_container as sent on the client's veth;
    returns (retval, destination address, destination port)."""
    ctx = bytearray(192)  # struct __sk_buff, zeroed but for the ifindex
    ctx[SKB_IFINDEX : SKB_IFINDEX + 4] = node.pod_ifindex("client").to_bytes(4, "little")

    def send(sport: int, flags: str) -> tuple[int, str, int]:
        digest = json.loads((node.state_dir / "state.json").read_text())["digest"]
        fd = libbpf.obj_get(node.pin_root / "progs" / digest / "netcc_from_container")
        try:
            with enter_netns(node.ns):
                pkt = ipv4_packet(CLIENT, VIP, "tcp", sport, 80, flags, payload=b"x")
                r = libbpf.prog_test_run(fd, pkt, ctx=bytes(ctx))
        finally:
            os.close(fd)
        f = fields(r.data_out)
        return r.retval, f["dst"], f["dport"]

    return send


@pytest.mark.parametrize("mode", ["tcx", "tc"])
def test_kernel_update_removing_a_backend_keeps_established_flows(
    mode, outs, tmp_path, monkeypatch
):
    monkeypatch.setenv("NETCC_ATTACH", mode)
    with svc_node(tmp_path / "state") as node:
        node.apply(outs["both"])
        send = _sender(node)
        on = {}
        for sport in range(40000, 40100):
            rc, dst, dport = send(sport, "S")
            assert rc == TC_ACT_OK and dport == 8080
            on.setdefault(dst, sport)
            if len(on) == 2:
                break
        assert set(on) == {A, B}
        for dst, sport in on.items():  # the handshake goes on
            assert send(sport, "A")[1] == dst

        r = node.apply(outs["only-a"])
        assert r.status == "updated"
        assert r.maps["netcc_ct"]["plan"] in ("reuse", "migrate")
        assert node.status()["ok"]
        # established flows: each keeps its backend, the remaining one and the removed one
        # (kube-proxy too leaves established TCP connections to a removed endpoint alone)
        for dst, sport in on.items():
            assert send(sport, "A") == (TC_ACT_OK, dst, 8080)
        # new connections only reach the remaining backend
        assert {send(sport, "S")[1] for sport in range(41000, 41040)} == {A}
