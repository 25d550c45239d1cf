"""`netcc load apply` of a new OUT that removes a backend deletes the conntrack entries of UDP
service flows to it, so their next datagram goes to a live backend at once (as kube-proxy
clears UDP conntrack), while UDP flows to the remaining backend and TCP flows to the removed
one keep their backends. Packets run through the pinned programs (BPF_PROG_TEST_RUN) on the
client's veth.

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
PORT = {"tcp": (80, 8080), "udp": (53, 5353)}


def with_udp(text: str) -> str:
    """svcnode's spec with a UDP port (dns 53 -> 5353) on the servers and the service."""
    text = text.replace(
        "ports: [{name: http, port: 8080}]",
        "ports: [{name: http, port: 8080}, {name: dns, port: 5353, protocol: UDP}]",
    )
    return text.replace(
        "ports: [{name: http, port: 80, targetPort: http, nodePort: 30080}]",
        "ports: [{name: http, port: 80, targetPort: http, nodePort: 30080},\n"
        "              {name: dns, port: 53, targetPort: dns, protocol: UDP, nodePort: 30053}]",
    )


@pytest.fixture(scope="module")
def outs(tmp_path_factory):
    root = tmp_path_factory.mktemp("svcflush")
    try:
        yield {
            "both": compile_to(with_udp(spec(service=True)), root / "both"),
            "only-a": compile_to(with_udp(spec(service=True, both_backends=False)), root / "a"),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _sender(node):
    """send(proto, sport, flags) -> (retval, destination address, destination port) of a
    packet from the client to the VIP through the applied netcc_from_container."""
    ctx = bytearray(192)
    ctx[SKB_IFINDEX : SKB_IFINDEX + 4] = node.pod_ifindex("client").to_bytes(4, "little")

    def send(proto: str, sport: int, flags: str = "") -> tuple[int, str, int]:
        digest = json.loads((node.state_dir / "state.json").read_text())["digest"]
        fd = libbpf.obj_get(node.pin_root / "progs" / digest / "netcc_from_container")
        try:
            with enter_netns(node.ns):
                pkt = ipv4_packet(CLIENT, VIP, proto, sport, PORT[proto][0], flags, b"x")
                r = libbpf.prog_test_run(fd, pkt, ctx=bytes(ctx))
        finally:
            os.close(fd)
        f = fields(r.data_out)
        return r.retval, f["dst"], f["dport"]

    return send


def _one_flow_per_backend(send, proto: str, first: int, flags: str) -> dict[str, int]:
    on: dict[str, int] = {}
    for sport in range(first, first + 200):
        rc, dst, dport = send(proto, sport, flags)
        assert rc == TC_ACT_OK and dport == PORT[proto][1]
        on.setdefault(dst, sport)
        if len(on) == 2:
            return on
    raise AssertionError(f"no {proto} flow per backend: {on}")


def test_kernel_update_removing_a_backend_moves_its_udp_flows_at_once(outs, tmp_path):
    with svc_node(tmp_path / "state") as node:
        node.apply(outs["both"])
        send = _sender(node)
        udp = _one_flow_per_backend(send, "udp", 50000, "")
        tcp = _one_flow_per_backend(send, "tcp", 40000, "S")
        for dst, sport in tcp.items():
            assert send("tcp", sport, "A")[1] == dst

        r = node.apply(outs["only-a"])
        assert r.status == "updated"
        assert r.maps["netcc_ct"].get("flushed", 0) >= 2  # B's UDP flow, both its entries
        assert node.status()["ok"]
        # the UDP flow to the removed backend moves to the remaining one; A's stays
        assert send("udp", udp[B]) == (TC_ACT_OK, A, 5353)
        assert send("udp", udp[A]) == (TC_ACT_OK, A, 5353)
        # TCP flows are left alone (kube-proxy too lets them time out)
        assert send("tcp", tcp[B], "A") == (TC_ACT_OK, B, 8080)
        assert send("tcp", tcp[A], "A") == (TC_ACT_OK, A, 8080)
