"""The reconciler and the userspace backend against a real wireguard-go, in a namespace made
for the test: create, idempotent re-apply (nothing sent), peers updated in place, removed
nodes' peers and routes removed, values checked before a `set`, key file checked, delete."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from wgspecs import key_dir

from netcc.contract.tunnel import PeerConfig, TunnelPlan
from netcc.contract.tunnel import TunnelRoute as Route
from netcc.keys import generate, public_key
from netcc.lab import netns as lab_netns
from netcc.loader.wireguard.apply import TunnelError, reconcile
from netcc.loader.wireguard.backend import BackendError, DeviceChange
from netcc.loader.wireguard.uapi import UserspaceBackend, daemon_pids

NETNS = f"netcc-wgtest-{os.getpid()}"
IFNAME = "netcc-wg0"


class Counting(UserspaceBackend):
    """The userspace backend, counting what is sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[DeviceChange] = []

    def configure(self, ifname: str, change: DeviceChange) -> None:
        self.sent.append(change)
        super().configure(ifname, change)


@pytest.fixture
def netns() -> Iterator[str]:
    if reason := UserspaceBackend().available():
        pytest.skip(reason)
    lab_netns.create(NETNS)
    try:
        with lab_netns.entered(NETNS):
            yield NETNS
    finally:
        with lab_netns.entered(NETNS):
            UserspaceBackend().delete(IFNAME)
        lab_netns.remove(NETNS)


@pytest.fixture
def keys() -> Iterator[tuple[Path, dict[str, dict[str, str]]]]:
    with key_dir() as d:
        yield d, generate(d, ["n1", "n2", "n3"])


def _plan(entries: dict[str, dict[str, str]], keepalive: int = 25) -> TunnelPlan:
    peers = tuple(
        PeerConfig(entries[n]["publicKey"], f"192.168.9.{i}:51871", (f"10.9.{i}.0/24",), keepalive)
        for i, n in ((2, "n2"), (3, "n3"))
    )
    return TunnelPlan(
        node="n1",
        ifname=IFNAME,
        listen_port=51871,
        private_key_file=entries["n1"]["privateKeyFile"],
        mtu=1420,
        address="10.9.1.1",
        peers=peers,
        routes=(Route("10.9.2.0/24", "n2"), Route("10.9.3.0/24", "n3")),
        public_key=entries["n1"]["publicKey"],
    )


def _routes() -> dict[str, str]:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname=IFNAME)[0]
        return {
            f"{r.get_attr('RTA_DST')}/{r['dst_len']}": r.get_attr("RTA_PREFSRC")
            for r in ipr.get_routes(family=socket.AF_INET, table=254)
            if r.get_attr("RTA_OIF") == index and r["dst_len"]
        }


def test_wg_reconcile_in_place(netns: str, keys: tuple[Path, dict]) -> None:
    _, entries = keys
    backend = Counting()
    plan = _plan(entries)
    first = reconcile(plan, backend)
    assert first.status == "created" and "private key set" in first.changes
    state = backend.read(IFNAME)
    assert state.public_key == entries["n1"]["publicKey"] and state.listen_port == 51871
    assert sorted((p.endpoint, p.allowed_ips, p.persistent_keepalive) for p in state.peers) == [
        ("192.168.9.2:51871", ("10.9.2.0/24",), 25),
        ("192.168.9.3:51871", ("10.9.3.0/24",), 25),
    ]
    assert _routes() == {"10.9.2.0/24": "10.9.1.1", "10.9.3.0/24": "10.9.1.1"}
    pids = daemon_pids(IFNAME)
    assert len(pids) == 1

    sent = len(backend.sent)
    again = reconcile(plan, backend)
    assert (again.status, again.changes, len(backend.sent)) == ("unchanged", [], sent)

    # One peer's keepalive changes: only that peer is sent, the device is the same daemon.
    n3 = plan.peers[1]
    changed = replace(plan, peers=(plan.peers[0], replace(n3, persistent_keepalive=5)))
    report = reconcile(changed, backend, {n3.public_key: "n3"})
    assert report.changes == ["peer n3 updated"]
    assert backend.sent[-1].upsert == (replace(n3, persistent_keepalive=5),)
    assert daemon_pids(IFNAME) == pids

    # Node n3 leaves the cluster: its peer and route go.
    gone = replace(plan, peers=plan.peers[:1], routes=plan.routes[:1])
    report = reconcile(gone, backend, {n3.public_key: "n3"})
    assert "peer n3 removed" in report.changes and "route 10.9.3.0/24 removed" in report.changes
    assert [p.public_key for p in backend.read(IFNAME).peers] == [plan.peers[0].public_key]
    assert _routes() == {"10.9.2.0/24": "10.9.1.1"}


def test_wg_bad_value_never_half_applied(netns: str, keys: tuple[Path, dict]) -> None:
    _, entries = keys
    backend = UserspaceBackend()
    reconcile(replace(_plan(entries), peers=(), routes=()), backend)
    good = PeerConfig(entries["n2"]["publicKey"], "192.168.9.2:51871", ("10.9.2.0/24",))
    bad = PeerConfig(entries["n3"]["publicKey"], "192.168.9.3:port", ("10.9.3.0/24",))
    with pytest.raises(BackendError, match="endpoint"):
        backend.configure(IFNAME, DeviceChange(upsert=(good, bad)))
    assert backend.read(IFNAME).peers == ()  # not even the good peer before it


def test_wg_key_file_must_match_spec(netns: str, keys: tuple[Path, dict]) -> None:
    d, entries = keys
    backend = UserspaceBackend()
    wrong = replace(_plan(entries), private_key_file=entries["n2"]["privateKeyFile"])
    with pytest.raises(TunnelError, match="not the key of this node's publicKey"):
        reconcile(wrong, backend)
    missing = replace(_plan(entries), private_key_file=str(d / "nope.key"))
    with pytest.raises(TunnelError, match=r"nope\.key"):
        reconcile(missing, backend)
    assert not backend.exists(IFNAME)  # nothing was created


def test_wg_delete_stops_the_daemon(netns: str, keys: tuple[Path, dict]) -> None:
    _, entries = keys
    backend = UserspaceBackend()
    reconcile(_plan(entries), backend)
    directory = backend.socket_path(IFNAME).parent
    assert directory.name == f"net-{os.stat('/proc/thread-self/ns/net').st_ino}"
    backend.delete(IFNAME)
    assert daemon_pids(IFNAME) == [] and not backend.exists(IFNAME)
    assert not directory.exists()
    assert (
        public_key(Path(entries["n1"]["privateKeyFile"]).read_text()) == entries["n1"]["publicKey"]
    )


def test_wg_backend_choice() -> None:
    from netcc.loader.wireguard.select import choose_backend

    with pytest.raises(BackendError, match="expected one of"):
        choose_backend("ebpf")
    if shutil.which("wireguard-go"):
        assert choose_backend("userspace").name == "userspace"
    try:
        kernel_reason = None
        choose_backend("kernel")
    except BackendError as e:
        kernel_reason = str(e)
    auto = choose_backend("auto").name
    assert auto == ("kernel" if kernel_reason is None else "userspace")
