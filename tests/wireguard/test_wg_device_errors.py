"""Setting up the WireGuard device against a real kernel, in a namespace made for the test: a
netlink error (the kernel refusing a value) is reported as a TunnelError naming the device."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from netcc.contract.tunnel import TunnelPlan
from netcc.lab import netns as lab_netns
from netcc.loader.wireguard.apply import TunnelError, _link

IFNAME = "netcc-wgr0"
NETNS = f"netcc-wgrev-{os.getpid()}"


@pytest.fixture
def netns() -> Iterator[str]:
    lab_netns.create(NETNS)
    try:
        with lab_netns.entered(NETNS):
            yield NETNS
    finally:
        lab_netns.remove(NETNS)


def test_wg_link_netlink_error_is_tunnel_error(netns: str) -> None:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        ipr.link("add", ifname=IFNAME, kind="veth", peer="netcc-wgr1")
    plan = TunnelPlan(
        node="n1",
        ifname=IFNAME,
        listen_port=51871,
        private_key_file="/nonexistent",
        mtu=10,  # below the device's minimum MTU: the kernel refuses (EINVAL)
        address="10.9.1.1",
    )
    with pytest.raises(TunnelError, match=f"{IFNAME}: setting up the device failed: Invalid"):
        _link(plan)
