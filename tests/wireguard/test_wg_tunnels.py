"""The compiler's tunnel plan (OUT/nodes/NODE/wireguard.json), value checks and the reconciler's
diff: pure, no kernel."""

from __future__ import annotations

import hashlib
import json

import pytest
from wgspecs import SPEC_POLICY, assert_no_key_material, key_dir, policy_spec, private_keys

from netcc.contract.tunnel import PeerConfig, from_doc
from netcc.emit.tunnels import plan_tunnels, render_tunnels
from netcc.frontend import parse_spec
from netcc.keys import generate_private_key, public_key
from netcc.loader.wireguard.apply import diff
from netcc.loader.wireguard.backend import (
    BackendError,
    DeviceChange,
    DeviceState,
    PeerState,
)
from netcc.loader.wireguard.values import check_change, check_plan
from netcc.pipeline import compile_spec


def test_wg_plan_peers_routes_mtu() -> None:
    with key_dir() as keys:
        spec, entries = policy_spec(keys)
        cluster, _ = parse_spec(spec.encode(), "spec.yaml")
    plans = plan_tunnels(cluster)
    assert sorted(plans) == ["node-1", "node-2", "node-3"]
    p = plans["node-2"]
    assert (p.ifname, p.listen_port, p.mtu, p.address) == ("netcc-wg0", 51871, 1420, "10.244.2.1")
    assert p.private_key_file == entries["node-2"]["privateKeyFile"]
    assert p.public_key == entries["node-2"]["publicKey"]
    assert p.peers == (
        PeerConfig(entries["node-1"]["publicKey"], "192.168.77.11:51871", ("10.244.1.0/24",), 25),
        PeerConfig(entries["node-3"]["publicKey"], "192.168.77.13:51871", ("10.244.3.0/24",), 25),
    )
    assert [(r.dst, r.via_node) for r in p.routes] == [
        ("10.244.1.0/24", "node-1"),
        ("10.244.3.0/24", "node-3"),
    ]
    for plan in plans.values():
        check_plan(plan)


def test_wg_plan_options_and_off() -> None:
    with key_dir() as keys:
        spec, _ = policy_spec(keys, underlayMTU=9000, persistentKeepalive=0, listenPort=4500)
        cluster, _ = parse_spec(spec.encode(), "spec.yaml")
    p = plan_tunnels(cluster)["node-1"]
    assert p.mtu == 8920 and p.listen_port == 4500
    assert {peer.persistent_keepalive for peer in p.peers} == {0}
    assert {peer.endpoint.split(":")[1] for peer in p.peers} == {"4500"}
    plain, _ = parse_spec(SPEC_POLICY.encode(), "spec.yaml")
    assert render_tunnels(plain) == {}
    off = spec.replace("enabled: true", "enabled: false")
    assert render_tunnels(parse_spec(off.encode(), "spec.yaml")[0]) == {}


@pytest.mark.parametrize("field,value", [("underlayMTU", 1000), ("persistentKeepalive", -1)])
def test_wg_plan_option_bounds(field: str, value: int) -> None:
    from netcc.diagnostics import SpecError

    with key_dir() as keys, pytest.raises(SpecError) as e:
        spec, _ = policy_spec(keys, **{field: value})
        parse_spec(spec.encode(), "spec.yaml")
    assert field in str([d.path for d in e.value.diagnostics])


def test_wg_artifacts_hold_paths_never_keys() -> None:
    """OUT (with k8s/) has each node's plan, locked and shipped to that node only, and no
    private key in any form."""
    with key_dir() as keys:
        spec, entries = policy_spec(keys)
        tree = compile_spec(spec.encode(), "spec.yaml")
        assert tree == compile_spec(spec.encode(), "spec.yaml")  # deterministic
        assert_no_key_material(tree, private_keys(keys))
    lock = json.loads(tree["netcc.lock.json"])
    for node in ("node-1", "node-2", "node-3"):
        rel = f"nodes/{node}/wireguard.json"
        assert lock["artifacts"][rel] == hashlib.sha256(tree[rel]).hexdigest()
        doc = json.loads(tree[rel])
        assert doc["privateKeyFile"] == entries[node]["privateKeyFile"]
        plan, names = from_doc(doc)
        assert plan.node == node and sorted(names.values()) == sorted(
            {"node-1", "node-2", "node-3"} - {node}
        )
    shipped = [p for p in tree if p.startswith("k8s/") and b"wireguard.json" in tree[p]]
    assert shipped, "the per-node ConfigMaps carry wireguard.json"


def _key() -> str:
    return public_key(generate_private_key())


def test_wg_values_checked_before_sending() -> None:
    good = PeerConfig(_key(), "192.168.1.2:51871", ("10.244.2.0/24",), 25)
    check_change(DeviceChange(upsert=(good,)))
    bad = [
        PeerConfig(_key(), "192.168.1.2", ("10.244.2.0/24",)),  # no port
        PeerConfig(_key(), "node-2:51871", ("10.244.2.0/24",)),  # a name
        PeerConfig(_key(), "192.168.1.2:70000", ("10.244.2.0/24",)),
        PeerConfig(_key(), "192.168.1.2:1", ("10.244.2.1/24",)),  # host bits
        PeerConfig("AAAA", "192.168.1.2:1", ("10.244.2.0/24",)),
        PeerConfig(_key(), "192.168.1.2:1", ("10.244.2.0/24",), 70000),
        PeerConfig(_key(), "192.168.1.2:1\nremove=true", ("10.244.2.0/24",)),  # injection
    ]
    for peer in bad:
        with pytest.raises(BackendError):
            check_change(DeviceChange(upsert=(good, peer)))
    with pytest.raises(BackendError):
        check_change(DeviceChange(private_key="not a key"))
    with pytest.raises(BackendError):
        check_change(DeviceChange(upsert=(good,), remove=(good.public_key,)))


def test_wg_diff_smallest_change() -> None:
    from netcc.contract.tunnel import TunnelPlan

    private = generate_private_key()
    a, b, c = _key(), _key(), _key()
    pa = PeerConfig(a, "192.168.1.2:51871", ("10.244.2.0/24",), 25)
    pb = PeerConfig(b, "192.168.1.3:51871", ("10.244.3.0/24",), 25)
    plan = TunnelPlan("n1", "netcc-wg0", 51871, "/k", 1420, "10.244.1.1", (pa, pb))
    same = DeviceState(
        public_key(private),
        51871,
        peers=(
            PeerState(a, pa.endpoint, pa.allowed_ips, 25, last_handshake_ns=1, rx_bytes=9),
            PeerState(b, pb.endpoint, pb.allowed_ips, 25),
        ),
    )
    assert diff(plan, same, private).empty
    fresh = diff(plan, DeviceState(None, 40000), private)
    both = tuple(sorted((pa, pb), key=lambda p: p.public_key))
    assert fresh == DeviceChange(private, 51871, both, ())
    drifted = DeviceState(
        public_key(generate_private_key()),
        51871,
        peers=(same.peers[0], PeerState(b, pb.endpoint, pb.allowed_ips, 0), PeerState(c, "", ())),
    )
    change = diff(plan, drifted, private)
    assert change == DeviceChange(private, None, (pb,), (c,))  # a untouched: its session stays
    first_pass = diff(plan, same, private, keepalive=False)
    assert {p.persistent_keepalive for p in first_pass.upsert} == {0}
