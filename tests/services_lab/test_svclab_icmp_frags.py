"""ICMP errors and fragments of translated flows with real traffic: path-MTU discovery through
a backend behind a smaller MTU (ClusterIP and NodePort), and UDP datagrams to a cluster IP that
the client's kernel fragments, answered by fragmented replies."""

from __future__ import annotations

import socket
import subprocess
from contextlib import contextmanager

from svclab_specs import CLIENTS, EXTERNAL, NODEPORT_LOCAL, WEB, WEB_VIP

from netcc.lab import netns as lab_netns
from netcc.lab.services import Conversation

SMALL_MTU = 1200  # below the 1500 of every other link: the backend sits behind it
BIG = 6000  # one line, several full-sized segments


def _set_mtu(netns: str, dev: str, mtu: int) -> None:
    subprocess.run(
        ["nsenter", f"--net=/run/netns/{netns}", "ip", "link", "set", "dev", dev, "mtu", str(mtu)],
        check=True,
    )


@contextmanager
def behind_small_mtu(svclab, pod: str):
    """Both ends of POD's veth get SMALL_MTU (as a WireGuard tunnel's would), then 1500 again."""
    p = next(p for p in svclab.plan.pods if p.key == pod)
    node = svclab.plan.node(p.node).netns
    try:
        _set_mtu(node, p.veth, SMALL_MTU)
        _set_mtu(p.netns, "eth0", SMALL_MTU)
        yield
    finally:
        _set_mtu(p.netns, "eth0", 1500)
        _set_mtu(node, p.veth, 1500)


def test_pmtu_discovery_through_a_cluster_ip(svclab):
    """The backend's node answers "fragmentation needed" about client -> backend; translated
    back to client -> VIP, the client's socket lowers its MTU and the data gets through."""
    client = CLIENTS[1]
    with Conversation(svclab.netns(client), svclab.ip(client), WEB_VIP, 80, timeout=5) as conv:
        backend = conv.say("hello")
        assert backend in WEB
        with behind_small_mtu(svclab, backend):
            assert conv.say("x" * BIG) == backend  # black-holed without the translation
            assert conv.say("y" * BIG) == backend


def test_pmtu_discovery_through_a_nodeport(svclab):
    """NodePort Local (web-1 on node-1): node-1 reports client -> web-1 out of its uplink, as
    about client -> node:nodePort."""
    node1 = svclab.node_address("node-1")
    with Conversation(svclab.netns(EXTERNAL), EXTERNAL, node1, NODEPORT_LOCAL, 5) as conv:
        assert conv.say("hello") == "shop/web-1"
        with behind_small_mtu(svclab, "shop/web-1"):
            assert conv.say("x" * BIG) == "shop/web-1"


def test_fragmented_udp_datagrams_to_a_cluster_ip(svclab):
    """3000-byte datagrams leave the client in three fragments; every one reaches the backend,
    and the fragmented answers come back from the VIP."""
    client = CLIENTS[0]
    with lab_netns.entered(svclab.netns(client)):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with s:
        s.settimeout(3)
        s.bind((svclab.ip(client), 0))
        seen = set()
        for i in range(6):
            data = bytes([65 + i]) * 3000
            s.sendto(data, (WEB_VIP, 53))
            answer, peer = s.recvfrom(65535)
            who, _, echoed = answer.partition(b" ")
            assert peer == (WEB_VIP, 53) and echoed == data
            seen.add(who.decode())
        assert seen <= set(WEB)
