"""`netcc review` says which traffic is encrypted and which is not; `netcc diff` shows a change of
coverage. And no key material anywhere: OUT, the review, the diff, any message."""

from __future__ import annotations

import json

from clirun import run
from ipsecspecs import SHOP, assert_nowhere, ipsec, pods, shop

from netcc.contract.ipsec import KeyRef
from netcc.contract.ipseckey import IPsecKeyError, check_key, generate, key_text, parse_key, sa_key
from netcc.emit.ipsec import plan_ipsec
from netcc.frontend import parse_spec
from netcc.pipeline import compile_spec
from netcc.review.report import build_report
from netcc.review.report_html import render_html
from netcc.review.report_md import render_markdown
from netcc.review.source import Spec


def report(text: str) -> dict:
    cluster, sources = parse_spec(text, "spec.yaml")
    return build_report(Spec(text.encode(), "spec.yaml", cluster, sources))


def test_review_shows_what_is_encrypted_and_what_is_not() -> None:
    section = report(shop())["encryption"]
    assert section["mode"] == "ipsec"
    assert section["summary"].startswith("pod-to-pod traffic between nodes is encrypted with IPsec")
    assert (section["cipher"], section["keyBits"], section["mtu"]) == (
        "rfc4106(gcm(aes))",
        128,
        1446,
    )
    assert section["keys"] == [{"id": 1, "state": "send", "fingerprint": None}]
    pairs = {(t["from"], t["to"]) for t in section["encrypted"]}
    nodes = ("node-1", "node-2", "node-3")
    assert pairs == {(a, b) for a in nodes for b in nodes if a != b}
    one = next(t for t in section["encrypted"] if (t["from"], t["to"]) == ("node-1", "node-2"))
    assert one == {
        "from": "node-1",
        "to": "node-2",
        "src": "10.244.1.0/24",
        "dst": "10.244.2.0/24",
        "spi": "0x01000100",
        "key": 1,
    }
    plain = [n["traffic"] for n in section["not_encrypted"]]
    assert plain[0] == "pod to pod on one node"
    assert any("node addresses" in t for t in plain) and any("outside" in t for t in plain)
    md = render_markdown(report(shop()))
    assert "### Encryption" in md and "**Not encrypted**" in md and "0x01000100" in md
    html = render_html(report(shop()))
    assert "<h2>Encryption</h2>" in html and "pod to pod on one node" in html


def test_review_of_rollout_states_and_of_no_encryption() -> None:
    assert "encryption" not in report(SHOP.read_text())  # no spec.encryption: no section
    during = report(shop("{enabled: true, acceptPlaintext: true, keys: [{id: 1, state: accept}]}"))
    section = during["encryption"]
    assert section["mode"] == "ipsec (no key sends yet)" and section["encrypted"] == []
    assert section["not_encrypted"][0]["traffic"] == "pod to pod between nodes"
    assert any("acceptPlaintext" in n["why"] for n in section["not_encrypted"])
    off = report(shop("{enabled: false}"))["encryption"]
    assert off["mode"] == "none" and off["encrypted"] == []


def test_diff_shows_coverage_changes(tmp_path) -> None:
    plain, on = tmp_path / "plain.yaml", tmp_path / "on.yaml"
    plain.write_text(SHOP.read_text())
    on.write_text(shop())
    r = run("diff", plain, on)
    assert r.code == 1
    assert "~ encryption: none -> ipsec" in r.stdout
    assert "~ encryption: node node-2 (10.244.2.0/24) newly encrypted" in r.stdout
    assert "~ ipsec rollout: unsafe:" in r.stdout  # a running cluster must phase it in
    bigger = tmp_path / "bigger.yaml"
    bigger.write_text(
        shop().replace(
            "    - {name: node-3,",
            "    - {name: node-4, address: 192.168.77.14, podCIDR: 10.244.4.0/24}\n"
            "    - {name: node-3,",
        )
    )
    r = run("diff", on, bigger, "--json")
    doc = json.loads(r.stdout)["encryption"]
    assert doc["covered"] == {"added": ["node-4"], "removed": []}
    assert doc["lines"] == [
        "encryption: node node-4 (10.244.4.0/24) newly encrypted to and from the others"
    ]
    assert "rollout" not in doc  # keys unchanged
    r = run("diff", bigger, plain)
    assert "~ encryption: ipsec -> none" in r.stdout
    assert "node node-4 (10.244.4.0/24) no longer encrypted" in r.stdout


def test_no_key_material_in_out_review_diff_or_messages(tmp_path) -> None:
    keys = {1: generate(1), 2: generate(2)}
    states = {1: "send", 2: "accept"}
    entries = ", ".join(
        f'{{id: {i}, state: {states[i]}, fingerprint: "{k.fingerprint}"}}' for i, k in keys.items()
    )
    text = pods(f"{{enabled: true, keys: [{entries}]}}")
    tree = compile_spec(text.encode(), "spec.yaml")
    derived = [
        sa_key(
            keys[s.key], plan.aead, s, *((name, peer.node) if s.dir == "out" else (peer.node, name))
        )
        for name, plan in plan_ipsec(parse_spec(text, "spec.yaml")[0]).items()
        for peer in plan.peers
        for s in peer.states
    ]
    secrets = [k.secret for k in keys.values()] + derived
    assert len(set(derived)) == len(derived) // 2  # each SA twice: at its two ends
    for k in keys.values():  # the fingerprints are there, as the check needs them
        assert any(k.fingerprint.encode() in data for data in tree.values())
    rep = report(text)
    outputs: dict[str, bytes | str] = {
        **tree,
        "review.json": json.dumps(rep),
        "review.md": render_markdown(rep),
        "review.html": render_html(rep),
    }
    (tmp_path / "key-1").write_text(key_text(keys[1]))
    (tmp_path / "old.yaml").write_text(shop())
    (tmp_path / "new.yaml").write_text(text)
    for name, ran in {
        "keygen": ipsec("keygen", tmp_path / "fresh", "--key-id", "5"),
        "keygen again": ipsec("keygen", tmp_path / "fresh"),
        "fingerprint": ipsec("fingerprint", tmp_path / "key-1"),
        "rotation": ipsec("rotation", tmp_path / "old.yaml", tmp_path / "new.yaml"),
        "diff": run("diff", tmp_path / "old.yaml", tmp_path / "new.yaml"),
        "diff json": run("diff", tmp_path / "old.yaml", tmp_path / "new.yaml", "--json"),
    }.items():
        outputs[f"{name} stdout"] = ran.stdout
        outputs[f"{name} stderr"] = ran.stderr
    fresh = parse_key((tmp_path / "fresh").read_bytes())
    secrets.append(fresh.secret)
    errors = []
    for attempt in (
        lambda: check_key(KeyRef(1, "send", "/k", keys[2].fingerprint), keys[1]),
        lambda: check_key(KeyRef(2, "send", "/k", None), keys[1]),
        lambda: parse_key(key_text(keys[1]).encode() + b"x"),
        lambda: parse_key(key_text(keys[1]).replace("netcc-ipsec-v1", "v0").encode()),
    ):
        try:
            attempt()
        except IPsecKeyError as e:
            errors.append(str(e))
    assert len(errors) == 4
    outputs["errors"] = "\n".join(errors)
    assert_nowhere(secrets, outputs)
