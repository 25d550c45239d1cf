"""The kernel backend's translation between the contract's values and netlink attributes.

No kernel here: messages are encoded and decoded with pyroute2's own `wgmsg`, as they travel
to and from the kernel; that the kernel accepts them is test_wgvm_kernel.py's job.
"""

import base64
import socket

import pytest
from pyroute2.netlink.generic.wireguard import wgmsg

from netcc.loader.wireguard.backend import BackendError, DeviceChange, PeerConfig
from netcc.loader.wireguard.netlink import (
    CMD_SET_DEVICE,
    PEER_F_REMOVE_ME,
    PEER_F_REPLACE_ALLOWEDIPS,
    device_state,
    format_endpoint,
    set_messages,
)


def key(n: int) -> str:
    return base64.b64encode(bytes([n]) * 32).decode()


def wire(msg) -> wgmsg:
    """`msg` encoded and decoded again, as the other end of the socket sees it."""
    msg.encode()
    back = wgmsg(msg.data)
    back.decode()
    return back


def peers_of(msg) -> list:
    return list(msg.get_attr("WGDEVICE_A_PEERS") or ())


def test_one_message_carries_key_port_removals_and_upserts():
    change = DeviceChange(
        private_key=key(1),
        listen_port=51820,
        upsert=(PeerConfig(key(2), "192.0.2.2:51821", ("10.2.0.0/16", "10.9.0.0/24"), 25),),
        remove=(key(3),),
    )
    (msg,) = [wire(m) for m in set_messages("wg0", change)]
    assert msg["cmd"] == CMD_SET_DEVICE
    assert msg.get_attr("WGDEVICE_A_IFNAME") == "wg0"
    assert msg.get_attr("WGDEVICE_A_PRIVATE_KEY").decode() == key(1)
    assert msg.get_attr("WGDEVICE_A_LISTEN_PORT") == 51820
    removed, upserted = peers_of(msg)
    assert removed.get_attr("WGPEER_A_PUBLIC_KEY").decode() == key(3)
    assert removed.get_attr("WGPEER_A_FLAGS") == PEER_F_REMOVE_ME
    assert removed.get_attr("WGPEER_A_ALLOWEDIPS") is None
    assert upserted.get_attr("WGPEER_A_PUBLIC_KEY").decode() == key(2)
    assert upserted.get_attr("WGPEER_A_FLAGS") == PEER_F_REPLACE_ALLOWEDIPS
    endpoint = upserted.get_attr("WGPEER_A_ENDPOINT")
    assert (endpoint["family"], endpoint["addr"], endpoint["port"]) == (
        socket.AF_INET,
        "192.0.2.2",
        51821,
    )
    assert upserted.get_attr("WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL") == 25
    ips = [ip["addr"] for ip in upserted.get_attr("WGPEER_A_ALLOWEDIPS")]
    assert ips == ["10.2.0.0/16", "10.9.0.0/24"]


def test_peer_update_alone_leaves_key_and_port_out():
    change = DeviceChange(upsert=(PeerConfig(key(2), "192.0.2.2:51820", (), 0),))
    (msg,) = [wire(m) for m in set_messages("wg0", change)]
    assert msg.get_attr("WGDEVICE_A_PRIVATE_KEY") is None
    assert msg.get_attr("WGDEVICE_A_LISTEN_PORT") is None
    (peer,) = peers_of(msg)
    # No allowed IPs with the replace flag: the peer's list is emptied, as the plan says.
    assert peer.get_attr("WGPEER_A_FLAGS") == PEER_F_REPLACE_ALLOWEDIPS
    assert peer.get_attr("WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL") == 0


def test_an_empty_change_sends_nothing():
    assert set_messages("wg0", DeviceChange()) == []


def test_a_large_change_is_split_by_whole_peers():
    upsert = tuple(
        PeerConfig(key(n), f"192.0.2.{n}:51820", tuple(f"10.{n}.{i}.0/24" for i in range(20)), 0)
        for n in range(1, 41)
    )
    messages = set_messages("wg0", DeviceChange(private_key=key(99), upsert=upsert), 4096)
    assert len(messages) > 1
    decoded = [wire(m) for m in messages]
    assert all(len(m.data) <= 4096 for m in messages)
    assert decoded[0].get_attr("WGDEVICE_A_PRIVATE_KEY").decode() == key(99)
    assert all(m.get_attr("WGDEVICE_A_PRIVATE_KEY") is None for m in decoded[1:])
    sent = [p.get_attr("WGPEER_A_PUBLIC_KEY").decode() for m in decoded for p in peers_of(m)]
    assert sent == [p.public_key for p in upsert]
    for m in decoded:
        for p in peers_of(m):
            assert len(p.get_attr("WGPEER_A_ALLOWEDIPS")) == 20


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (DeviceChange(private_key="c2hvcnQ="), "private key"),
        (DeviceChange(listen_port=70000), "listen port"),
        (DeviceChange(upsert=(PeerConfig(key(2), "192.0.2.2:51820", ("10.0.0.1/8",)),)), "CIDR"),
        (DeviceChange(upsert=(PeerConfig(key(2), "nowhere:51820", ()),)), "endpoint"),
        (DeviceChange(upsert=(PeerConfig(key(2), "192.0.2.2:1", (), -1),)), "keepalive"),
        (
            DeviceChange(upsert=(PeerConfig(key(2), "192.0.2.2:1", ()),), remove=(key(2),)),
            "both",
        ),
    ],
)
def test_bad_values_are_refused_before_anything_is_built(change, message):
    with pytest.raises(BackendError, match=message):
        set_messages("wg0", change)


def test_bad_interface_name_is_refused():
    with pytest.raises(BackendError, match="interface name"):
        set_messages("wg0; rm -rf /", DeviceChange(listen_port=1))


def dump_message(first: bool, peers: list) -> wgmsg:
    msg = wgmsg()
    msg["cmd"] = 0
    msg["version"] = 1
    msg["attrs"] = [["WGDEVICE_A_IFNAME", "wg0"]]
    if first:
        msg["attrs"] += [
            ["WGDEVICE_A_PUBLIC_KEY", key(1)],
            ["WGDEVICE_A_LISTEN_PORT", 51820],
            ["WGDEVICE_A_FWMARK", 7],
        ]
    msg["attrs"].append(["WGDEVICE_A_PEERS", [{"attrs": p} for p in peers]])
    return wire(msg)


def allowed(cidr: str) -> dict:
    address, mask = cidr.split("/")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return {
        "attrs": [
            ["WGALLOWEDIP_A_FAMILY", family],
            ["WGALLOWEDIP_A_IPADDR", socket.inet_pton(family, address)],
            ["WGALLOWEDIP_A_CIDR_MASK", int(mask)],
        ]
    }


def test_a_dump_over_two_messages_is_merged_by_peer():
    first = dump_message(
        True,
        [
            [
                ["WGPEER_A_PUBLIC_KEY", key(2)],
                ["WGPEER_A_ENDPOINT", {"addr": "192.0.2.2", "port": 51821}],
                ["WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL", 25],
                ["WGPEER_A_LAST_HANDSHAKE_TIME", {"tv_sec": 1_700_000_000, "tv_nsec": 5}],
                ["WGPEER_A_RX_BYTES", 1000],
                ["WGPEER_A_TX_BYTES", 2000],
                ["WGPEER_A_ALLOWEDIPS", [allowed("10.9.0.0/24")]],
            ]
        ],
    )
    # The kernel continues a peer whose allowed IPs did not fit: key and the rest of its IPs.
    second = dump_message(
        False,
        [
            [["WGPEER_A_PUBLIC_KEY", key(2)], ["WGPEER_A_ALLOWEDIPS", [allowed("10.2.0.0/16")]]],
            [
                ["WGPEER_A_PUBLIC_KEY", key(3)],
                ["WGPEER_A_ENDPOINT", {"addr": "2001:db8::3", "port": 51820}],
                ["WGPEER_A_ALLOWEDIPS", [allowed("fd00::/64")]],
            ],
        ],
    )
    state = device_state([first, second])
    assert (state.public_key, state.listen_port, state.fwmark) == (key(1), 51820, 7)
    two, three = state.peers
    assert two.public_key == key(2)
    assert two.endpoint == "192.0.2.2:51821"
    assert two.allowed_ips == ("10.2.0.0/16", "10.9.0.0/24")
    assert two.persistent_keepalive == 25
    assert two.last_handshake_ns == 1_700_000_000 * 10**9 + 5
    assert (two.rx_bytes, two.tx_bytes) == (1000, 2000)
    assert three.endpoint == "[2001:db8::3]:51820"
    assert three.allowed_ips == ("fd00::/64",)
    assert (three.last_handshake_ns, three.rx_bytes, three.persistent_keepalive) == (0, 0, 0)


def test_a_device_without_a_key_reports_none():
    msg = wgmsg()
    msg["cmd"] = 0
    msg["version"] = 1
    msg["attrs"] = [["WGDEVICE_A_IFNAME", "wg0"], ["WGDEVICE_A_LISTEN_PORT", 0]]
    state = device_state([wire(msg)])
    assert (state.public_key, state.listen_port, state.peers) == (None, 0, ())


def test_endpoint_formats():
    assert format_endpoint(None) == ""
    assert format_endpoint({"addr": "192.0.2.1", "port": 1}) == "192.0.2.1:1"
    assert format_endpoint({"addr": "2001:db8::1", "port": 2}) == "[2001:db8::1]:2"
