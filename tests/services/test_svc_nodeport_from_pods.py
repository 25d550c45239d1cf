"""Pods reaching NodePorts through node addresses (BPF_PROG_TEST_RUN), as with kube-proxy: any
node's address (its own included) is translated at the pod's veth over every backend of the
port, also for externalTrafficPolicy Local; replies come back from the address and nodePort
the pod used; other destinations are left alone."""

import pytest
from kernelenv import compile_to
from svcpackets import NodeMaps, checksums_ok, fields, run
from svcspecs import SPEC

from netcc.loader.testrun import TC_ACT_OK, TC_ACT_SHOT, ipv4_packet

CLIENT = "10.244.1.10"
NODE1, NODE2 = "192.168.50.11", "192.168.50.12"


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return compile_to(SPEC, tmp_path_factory.mktemp("nodeport-from-pods") / "out")


@pytest.mark.parametrize("node_addr", [NODE1, NODE2])
def test_kernel_pod_reaches_a_nodeport_through_a_node_address(k, out, node_addr):
    maps = NodeMaps(out, "node-1")
    seen = set()
    for sport in range(51000, 51030):
        pkt = ipv4_packet(CLIENT, node_addr, "tcp", sport, 30081, "S", payload=b"hi")
        r = run(k, "node-1", "netcc_from_container", pkt)
        assert r.retval == TC_ACT_OK
        f = fields(r.data_out)
        want = maps.expected("0.0.0.0", 30081, 6, 2, CLIENT, sport)
        assert (f["src"], f["sport"], f["dst"], f["dport"]) == (CLIENT, sport, *want)
        assert checksums_ok(r.data_out)
        seen.add(want)
        node = "node-1" if want[0].startswith("10.244.1.") else "node-2"
        assert run(k, node, "netcc_to_container", r.data_out).retval == TC_ACT_OK
        # the reply comes back from the address and nodePort the pod connected to
        reply = ipv4_packet(want[0], CLIENT, "tcp", want[1], sport, "SA")
        back = run(k, "node-1", "netcc_to_container", reply)
        assert back.retval == TC_ACT_OK and checksums_ok(back.data_out)
        b = fields(back.data_out)
        assert (b["src"], b["sport"], b["dst"], b["dport"]) == (node_addr, 30081, CLIENT, sport)
    assert seen == {("10.244.1.20", 8080), ("10.244.2.20", 8080), ("10.244.2.21", 9090)}


def test_kernel_pod_to_a_local_policy_nodeport_uses_every_backend(k, out):
    """externalTrafficPolicy Local is for external clients: a pod reaching the NodePort
    through node-1's address is balanced over every backend (kube-proxy: pod traffic to
    external destinations is subject to neither traffic policy), node-2's included."""
    reached = set()
    for sport in range(52000, 52040):
        pkt = ipv4_packet(CLIENT, NODE1, "tcp", sport, 30080, "S")
        r = run(k, "node-1", "netcc_from_container", pkt)
        assert r.retval == TC_ACT_OK
        reached.add(fields(r.data_out)["dst"])
    assert reached == {"10.244.1.20", "10.244.2.20", "10.244.2.21"}


@pytest.mark.parametrize(
    ("dst", "dport"),
    [
        (NODE1, 30099),  # in the range, but no service's nodePort
        (NODE1, 8080),  # a node address, outside the range
        ("198.51.100.7", 30081),  # a nodePort, but not on a node's address
        ("10.244.2.20", 30081),  # nor on a pod's
    ],
)
def test_kernel_other_destinations_are_not_translated(k, dst, dport):
    pkt = ipv4_packet(CLIENT, dst, "tcp", 53000, dport, "S")
    r = run(k, "node-1", "netcc_from_container", pkt)
    assert r.retval in (TC_ACT_OK, TC_ACT_SHOT)  # policy decides; the packet is untouched
    assert (fields(r.data_out)["dst"], fields(r.data_out)["dport"]) == (dst, dport)
