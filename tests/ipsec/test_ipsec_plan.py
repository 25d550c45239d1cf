"""The compiler's IPsec plan (OUT/nodes/NODE/ipsec.json): deterministic, every SA in both
directions with unique SPIs, the same SA alike at both ends, value checks both ways."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from ipaddress import IPv4Network

import pytest
from clirun import run
from ipsecspecs import PODS, SHOP, pods, shop, with_ipsec

from netcc.contract.ipsec import (
    PLAN_PATH,
    REQID,
    IPsecFormatError,
    check_plan,
    esp_mtu,
    from_doc,
    spi_for,
    spi_slot,
    to_doc,
)
from netcc.emit.ipsec import plan_ipsec, render_ipsec
from netcc.frontend import parse_spec
from netcc.pipeline import compile_spec

NODES = ("node-1", "node-2", "node-3")


def plans(text: str) -> dict:
    return plan_ipsec(parse_spec(text, "spec.yaml")[0])


def test_one_plan_per_node_only_when_enabled() -> None:
    assert sorted(render_ipsec(parse_spec(shop(), "spec.yaml")[0])) == [
        PLAN_PATH.format(node=n) for n in NODES
    ]
    for text in (SHOP.read_text(), shop("{enabled: false}")):
        assert render_ipsec(parse_spec(text, "spec.yaml")[0]) == {}


def test_node_plan_states_policies_and_defaults() -> None:
    p = plans(shop())["node-1"]
    assert (p.address, p.pod_cidr, p.cluster_pod_cidr) == (
        "192.168.77.11",
        "10.244.1.0/24",
        "10.244.0.0/16",
    )
    assert (p.aead.name, p.aead.key_bits, p.aead.icv_bits, p.aead.key_bytes) == (
        "rfc4106(gcm(aes))",
        128,
        128,
        20,
    )
    assert (p.replay_window, p.underlay_mtu, p.mtu, p.send_key) == (1024, 1500, 1446, 1)
    assert [(k.id, k.state, k.file, k.fingerprint) for k in p.keys] == [
        (1, "send", "/etc/netcc/ipsec/key-1", None)
    ]
    assert [peer.node for peer in p.peers] == ["node-2", "node-3"]
    peer = p.peers[0]
    assert [(s.dir, s.key, hex(s.spi), s.src, s.dst) for s in peer.states] == [
        ("out", 1, "0x1000100", "192.168.77.11", "192.168.77.12"),
        ("in", 1, "0x1000200", "192.168.77.12", "192.168.77.11"),
    ]
    assert [(s.selector.src, s.selector.dst) for s in peer.states] == [
        ("10.244.1.0/24", "10.244.2.0/24"),
        ("10.244.2.0/24", "10.244.1.0/24"),
    ]
    assert [(x.dir, x.src, x.dst, hex(x.tmpl.spi), x.tmpl.level) for x in peer.policies] == [
        ("out", "10.244.1.0/24", "10.244.2.0/24", "0x1000100", "required"),
        ("in", "10.244.2.0/24", "10.244.1.0/24", "0x0", "required"),
        ("fwd", "10.244.2.0/24", "10.244.1.0/24", "0x0", "required"),
    ]
    doc = to_doc(p)
    assert (doc["proto"], doc["mode"], doc["reqid"], doc["esn"]) == ("esp", "tunnel", REQID, True)
    assert doc["aead"]["saltBits"] == 32


def test_mtu_formula() -> None:
    """ESP tunnel mode over IPv4, AES-GCM: outer 20 + ESP 8 + IV 8 + ICV, payload and the
    2-byte trailer aligned to 4 (as esp4 computes it)."""
    for underlay, icv, want in ((1500, 128, 1446), (1500, 96, 1450), (1500, 64, 1454)):
        assert esp_mtu(underlay, icv) == want
    for underlay in range(1280, 9001):
        for icv in (64, 96, 128):
            inner = esp_mtu(underlay, icv)
            padded = -(-(inner + 2) // 4) * 4  # payload + pad length + next header, aligned
            assert 20 + 8 + 8 + padded + icv // 8 <= underlay  # fits
            padded_more = -(-(inner + 1 + 2) // 4) * 4
            assert 20 + 8 + 8 + padded_more + icv // 8 > underlay  # one byte more does not
    p = plans(shop("{enabled: true, underlayMTU: 9000, icvBits: 96}"))["node-2"]
    assert p.mtu == esp_mtu(9000, 96) == 8950


def test_every_ordered_pair_both_directions_and_spis_unique() -> None:
    text = pods(
        "{enabled: true, keys: [{id: 3, state: accept}, {id: 2, state: send}, "
        "{id: 1, state: accept}]}"
    )
    all_plans = plans(text)
    sas = {}  # (src node, dst node, key) -> (spi, state) from the sender's plan
    seen_in = {}
    for name, p in all_plans.items():
        inbound = [(s.dst, s.spi) for peer in p.peers for s in peer.states if s.dir == "in"]
        assert len(inbound) == len(set(inbound)), "an SPI repeats at a receiver"
        for peer in p.peers:
            for s in peer.states:
                assert s.spi >= 0x01000000 and s.spi >> 24 == s.key  # never 0, never reserved
                if s.dir == "out":
                    sas[(name, peer.node, s.key)] = s
                else:
                    seen_in[(peer.node, name, s.key)] = s
    pairs = {(a, b) for a in NODES for b in NODES if a != b}
    assert set(sas) == set(seen_in) == {(a, b, k) for a, b in pairs for k in (1, 2, 3)}
    for sa, out in sas.items():
        got = seen_in[sa]  # the receiver's in state is the sender's out state
        assert (got.src, got.dst, got.spi, got.selector) == (
            out.src,
            out.dst,
            out.spi,
            out.selector,
        )
    for k in (1, 2, 3):  # per key: unique per direction (A->B and B->A differ)
        spis = {(a, b): sas[(a, b, k)].spi for a, b in pairs}
        assert all(spis[(a, b)] != spis[(b, a)] for a, b in pairs)
        assert len({(sas[(a, b, k)].dst, spis[(a, b)]) for a, b in pairs}) == len(pairs)
    spis_by_key = [{sas[(a, b, k)].spi for a, b in pairs} for k in (1, 2, 3)]
    assert not (spis_by_key[0] & spis_by_key[1]) and not (spis_by_key[1] & spis_by_key[2])
    out_policies = [
        x for p in all_plans.values() for peer in p.peers for x in peer.policies if x.dir == "out"
    ]
    assert len(out_policies) == len(pairs)
    assert all(x.tmpl.spi >> 24 == 2 for x in out_policies)  # the key in state send


def _nodes_spec(*nodes: tuple[str, int]) -> str:
    lines = "".join(
        f"    - {{name: {n}, address: 192.168.77.{i}, podCIDR: 10.244.{i}.0/24}}\n"
        for n, i in nodes
    )
    return with_ipsec(
        "apiVersion: netcc.io/v1alpha1\nkind: ClusterNetwork\nmetadata: {name: c}\nspec:\n"
        "  podCIDR: 10.244.0.0/16\n  serviceCIDR: 10.96.0.0/16\n  nodes:\n"
        + lines
        + "  namespaces:\n    - {name: default}\n"
    )


def test_spis_do_not_move_when_nodes_come_and_go() -> None:
    def spis(text: str) -> dict:
        return {
            (name, peer.node, s.dir): s.spi
            for name, p in plans(text).items()
            for peer in p.peers
            for s in peer.states
        }

    base = spis(_nodes_spec(("b", 2), ("c", 3), ("d", 4)))
    for other in (
        spis(_nodes_spec(("b", 2), ("d", 4))),
        spis(_nodes_spec(("a", 9), ("b", 2), ("c", 3), ("d", 4))),
    ):
        shared = base.keys() & other.keys()
        assert shared and all(base[k] == other[k] for k in shared)


def test_spi_slot_scaling() -> None:
    cluster = IPv4Network("10.244.0.0/16")
    assert spi_slot(cluster, IPv4Network("10.244.1.0/24")) == 0x100
    assert spi_for(1, 0x100) == 0x01000100
    wide = IPv4Network("16.0.0.0/4")
    assert spi_slot(wide, IPv4Network("16.0.1.0/24")) == 0x10
    with pytest.raises(IPsecFormatError):
        spi_slot(cluster, IPv4Network("10.245.0.0/24"))
    for bad in ((0, 1), (256, 1), (1, 1 << 24)):
        with pytest.raises(IPsecFormatError):
            spi_for(*bad)


def test_covers_list_the_class_blocks_of_the_peer() -> None:
    p = plans(pods())["node-1"]
    peer = p.peers[0]
    assert peer.node == "node-2"
    classes = sorted(c.cls for c in peer.covers)
    assert classes == ["monitoring/prometheus", "shop/api", "shop/web"]
    assert all(IPv4Network(c.cidr).subnet_of(IPv4Network("10.244.2.0/24")) for c in peer.covers)
    assert plans(shop())["node-1"].peers[0].covers == ()  # no classes, nothing listed


def test_accept_only_and_plaintext_levels() -> None:
    text = shop("{enabled: true, acceptPlaintext: true, keys: [{id: 1, state: accept}]}")
    p = plans(text)["node-3"]
    assert p.send_key is None
    for peer in p.peers:
        assert [x.dir for x in peer.policies] == ["in", "fwd"]  # nothing sends: no out policy
        assert {x.tmpl.level for x in peer.policies} == {"use"}
        assert [s.dir for s in peer.states] == ["out", "in"]  # the states are there already


def test_plan_bytes_identical_across_runs_and_directories(tmp_path) -> None:
    text = pods(
        "{enabled: true, keys: [{id: 2, state: accept, fingerprint: "
        "0123456789abcdef0123456789abcdef}, {id: 1, state: send}]}"
    )
    once = compile_spec(text.encode(), "pods.yaml")
    again = compile_spec(text.encode(), "elsewhere/pods.yaml")
    ipsec = {k: v for k, v in once.items() if k.endswith("/ipsec.json")}
    assert len(ipsec) == 3 and all(again[k] == v for k, v in ipsec.items())
    outs = []
    for where in ("a", "b/c"):
        d = tmp_path / where
        d.mkdir(parents=True)
        (d / "pods.yaml").write_text(text)
        cwd = os.getcwd()
        os.chdir(d)
        try:
            r = run("compile", "pods.yaml", "-o", "out", "-q")
        finally:
            os.chdir(cwd)
        assert r.code == 0, r.stderr
        outs.append({n: (d / "out" / PLAN_PATH.format(node=n)).read_bytes() for n in NODES})
    assert outs[0] == outs[1] == {n: once[PLAN_PATH.format(node=n)] for n in NODES}
    lock = json.loads(once["netcc.lock.json"])
    for path, data in ipsec.items():
        assert lock["artifacts"][path] == hashlib.sha256(data).hexdigest()
    shipped = [p for p in once if p.startswith("k8s/") and b"ipsec.json" in once[p]]
    assert shipped, "the per-node ConfigMaps carry ipsec.json"


def test_documents_round_trip_and_are_checked() -> None:
    for text in (shop(), pods(), PODS.read_text()):
        for data in render_ipsec(parse_spec(text, "spec.yaml")[0]).values():
            doc = json.loads(data)
            assert to_doc(from_doc(doc)) == doc


def _doc() -> dict:
    return json.loads(
        render_ipsec(parse_spec(shop(), "spec.yaml")[0])[PLAN_PATH.format(node="node-1")]
    )


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(version=2),
        lambda d: d.update(reqid=1),
        lambda d: d.update(mode="transport"),
        lambda d: d.update(esn=False),
        lambda d: d.update(mtu=1500),
        lambda d: d.update(replayWindow=0),
        lambda d: d.update(sendKey=2),
        lambda d: d["aead"].update(name="cbc(aes)"),
        lambda d: d["aead"].update(keyBits=192),
        lambda d: d["keys"][0].update(id=0),
        lambda d: d["keys"][0].update(state="retired"),
        lambda d: d["keys"][0].update(file="relative/key-1"),
        lambda d: d["keys"][0].update(fingerprint="not hex"),
        lambda d: d["keys"].append(dict(d["keys"][0])),
        lambda d: d["peers"][0]["states"][1].update(spi="0x01000300"),
        lambda d: d["peers"][0]["states"][1].update(spi="16777728"),
        lambda d: d["peers"][0]["states"][0].update(dst="192.168.77.99"),
        lambda d: d["peers"][0]["states"][0]["selector"].update(dst="0.0.0.0/0"),
        lambda d: d["peers"][0]["states"].pop(),
        lambda d: d["peers"][0]["policies"][0]["tmpl"].update(spi="0x00000000"),
        lambda d: d["peers"][0]["policies"][1]["tmpl"].update(level="use"),
        lambda d: d["peers"][0]["policies"].pop(0),
        lambda d: d["peers"][0].update(podCIDR="10.244.1.0/24"),
        lambda d: d["peers"][0].update(node="node-1"),
        lambda d: d["peers"].reverse(),
        lambda d: d["peers"][0]["covers"].append({"class": "x/y", "cidr": "10.99.0.0/24"}),
        lambda d: d.pop("peers"),
        lambda d: d.update(peers="none"),
    ],
)
def test_a_tampered_plan_is_refused(change) -> None:
    doc = _doc()
    change(doc)
    with pytest.raises(IPsecFormatError):
        from_doc(doc)


def test_check_plan_refuses_what_no_spec_gives() -> None:
    p = plans(shop())["node-1"]
    check_plan(p)
    for bad in (
        dataclasses.replace(
            p, accept_plaintext=False, keys=(dataclasses.replace(p.keys[0], state="accept"),)
        ),
        dataclasses.replace(p, node="Node_1"),
        dataclasses.replace(p, pod_cidr="10.245.1.0/24"),
        dataclasses.replace(p, removed_key_grace=-1),
    ):
        with pytest.raises(IPsecFormatError):
            check_plan(bad)
