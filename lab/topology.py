"""Build a lab's namespaces, links, addresses and routes with pyroute2.

One IPRoute handle per namespace, opened while the thread is inside it (a netlink socket
belongs to the namespace it was created in), so the whole topology is made without a single
subprocess. Each namespace and link is recorded in the state file before it is created.

Routing, with no tunnels and no NAT:
- pod: its IPs as /32 on eth0; an on-link /32 route to its node's router address and the
  default route via it
- node: its address as /32 on eth0 (the underlay), an on-link /32 route to every other node's
  address and to every external address, every other node's pod CIDR via that node's address,
  the router address (/32) on each pod's host-side veth and a /32 route per pod IP via it;
  forwarding on, rp_filter loose
- external: its addresses as /32 on eth0, on-link routes to the nodes, each pod CIDR via the
  owning node's address

With WireGuard (`plan.tunnel_mtu`), a node has no underlay route to other nodes' pod CIDRs
(the loader routes them through its tunnel, so pod traffic never crosses the underlay in
clear, not even before the tunnel is up), and both ends of each pod's veth get the tunnel MTU.
"""

from __future__ import annotations

import contextlib
import os
import signal
from ipaddress import IPv4Address

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from netcc.lab import netns as lab_netns
from netcc.lab.plan import BRIDGE, POD_IFNAME, UPLINK, LabPlan
from netcc.lab.state import LabState

SCOPE_LINK = 253


class LabBuildError(Exception):
    """The topology could not be built (a name taken, the kernel refused...)."""


class InjectedFailure(LabBuildError):
    """A failure asked for by the tests (`fail_after`)."""


def _sysctl(key: str, value: str) -> None:
    """Write a sysctl of the calling thread's current network namespace."""
    path = "/proc/sys/" + key.replace(".", "/")
    try:
        with open(path, "w") as f:
            f.write(value)
    except FileNotFoundError:
        if not key.startswith("net.ipv6."):  # IPv6 may be compiled out or disabled at boot
            raise


def _namespace_sysctls(forwarding: bool) -> None:
    """No IPv6 (the lab is IPv4; no router solicitations through the datapath), loose rp_filter."""
    for scope in ("all", "default"):
        _sysctl(f"net.ipv6.conf.{scope}.disable_ipv6", "1")
        _sysctl(f"net.ipv4.conf.{scope}.rp_filter", "2")
    if forwarding:
        _sysctl("net.ipv4.ip_forward", "1")


class TopologyBuilder:
    """Makes `plan` real, recording every creation in `state` first.

    `fail_after` stops the build after that many namespaces, raising InjectedFailure, or, with
    `hard`, killing the process with SIGKILL (a crash with no chance to clean up).
    """

    def __init__(
        self, plan: LabPlan, state: LabState, fail_after: int | None = None, hard: bool = False
    ) -> None:
        self.plan = plan
        self.state = state
        self.fail_after = fail_after
        self.hard = hard
        self.ipr: dict[str, IPRoute] = {}

    def build(self) -> None:
        try:
            self._namespaces()
            self._underlay()
            for node in self.plan.nodes:
                self._node(node.name)
            if self.plan.external:
                self._external()
            for pod in self.plan.pods:
                self._pod(pod.key)
        except (NetlinkError, OSError) as e:
            raise LabBuildError(f"building the lab's topology: {e}") from e
        finally:
            self.close()

    def close(self) -> None:
        for handle in self.ipr.values():
            with contextlib.suppress(Exception):
                handle.close()
        self.ipr.clear()

    # --- steps ------------------------------------------------------------------------------

    def _namespaces(self) -> None:
        nodes = {n.netns for n in self.plan.nodes}
        for count, name in enumerate(self.plan.namespaces()):
            if self.fail_after is not None and count == self.fail_after:
                if self.hard:
                    os.kill(os.getpid(), signal.SIGKILL)
                raise InjectedFailure(f"injected failure after {count} namespaces")
            if lab_netns.exists(name):
                raise LabBuildError(f"network namespace {name} already exists; it is not the lab's")
            self.state.record("netns", name=name)
            lab_netns.create(name)
            with lab_netns.entered(name):
                _namespace_sysctls(forwarding=name in nodes)
                self.ipr[name] = IPRoute()
            self._up(name, "lo")

    def _underlay(self) -> None:
        u = self.plan.underlay
        self._link(u, BRIDGE, kind="bridge", br_stp_state=0, br_forward_delay=0)
        self._up(u, BRIDGE)
        for node in self.plan.nodes:
            self._bridge_port(node.port, node.netns)
        if self.plan.external:
            self._bridge_port(self.plan.external.port, self.plan.external.netns)

    def _bridge_port(self, port: str, peer_netns: str) -> None:
        u = self.plan.underlay
        self._veth(u, port, peer_netns, UPLINK)
        ipr = self.ipr[u]
        ipr.link("set", index=self._index(u, port), master=self._index(u, BRIDGE), state="up")

    def _node(self, name: str) -> None:
        node = self.plan.node(name)
        ipr = self.ipr[node.netns]
        eth = self._up(node.netns, UPLINK)
        ipr.addr("add", index=eth, address=str(node.address), prefixlen=32)
        for other in self.plan.nodes:
            if other.name == node.name:
                continue
            self._onlink(ipr, eth, other.address)
            if self.plan.tunnel_mtu is None:
                ipr.route("add", dst=str(other.pod_cidr), gateway=str(other.address), oif=eth)
        for ip in self.plan.external.ips if self.plan.external else ():
            self._onlink(ipr, eth, ip)

    def _external(self) -> None:
        ext = self.plan.external
        assert ext is not None
        ipr = self.ipr[ext.netns]
        eth = self._up(ext.netns, UPLINK)
        for ip in ext.ips:
            ipr.addr("add", index=eth, address=str(ip), prefixlen=32)
        for node in self.plan.nodes:
            self._onlink(ipr, eth, node.address)
            ipr.route("add", dst=str(node.pod_cidr), gateway=str(node.address), oif=eth)

    def _pod(self, key: str) -> None:
        pod = next(p for p in self.plan.pods if p.key == key)
        node = self.plan.node(pod.node)
        host = self.ipr[node.netns]
        self._veth(node.netns, pod.veth, pod.netns, POD_IFNAME)
        mtu = self.plan.tunnel_mtu or self.plan.pod_mtu  # WireGuard's or ESP's overhead
        if mtu is not None:
            host.link("set", index=self._index(node.netns, pod.veth), mtu=mtu)
            self.ipr[pod.netns].link("set", index=self._index(pod.netns, POD_IFNAME), mtu=mtu)
        veth = self._up(node.netns, pod.veth)
        host.addr("add", index=veth, address=str(node.router_ip), prefixlen=32)
        for ip in pod.ips:
            self._onlink(host, veth, ip)
        ipr = self.ipr[pod.netns]
        eth = self._up(pod.netns, POD_IFNAME)
        for ip in pod.ips:
            ipr.addr("add", index=eth, address=str(ip), prefixlen=32)
        self._onlink(ipr, eth, node.router_ip)
        extra = {"prefsrc": str(pod.ips[0])} if pod.ips else {}
        ipr.route("add", dst="0.0.0.0/0", gateway=str(node.router_ip), oif=eth, **extra)

    # --- helpers ----------------------------------------------------------------------------

    def _link(self, netns: str, ifname: str, **attrs: object) -> None:
        self.state.record("link", netns=netns, name=ifname)
        self.ipr[netns].link("add", ifname=ifname, **attrs)

    def _veth(self, netns: str, ifname: str, peer_netns: str, peer_ifname: str) -> None:
        """A veth pair whose peer is created directly inside `peer_netns`."""
        self.state.record("link", netns=netns, name=ifname, peer=f"{peer_netns}:{peer_ifname}")
        peer = {"ifname": peer_ifname, "net_ns_fd": lab_netns.netns_path(peer_netns)}
        self.ipr[netns].link("add", ifname=ifname, kind="veth", peer=peer)

    def _index(self, netns: str, ifname: str) -> int:
        found = self.ipr[netns].link_lookup(ifname=ifname)
        if not found:
            raise LabBuildError(f"{netns}: no link {ifname}")
        return found[0]

    def _up(self, netns: str, ifname: str) -> int:
        index = self._index(netns, ifname)
        self.ipr[netns].link("set", index=index, state="up")
        return index

    @staticmethod
    def _onlink(ipr: IPRoute, index: int, ip: IPv4Address) -> None:
        ipr.route("add", dst=f"{ip}/32", oif=index, scope=SCOPE_LINK)
