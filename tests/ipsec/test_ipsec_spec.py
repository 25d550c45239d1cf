"""`spec.encryption.ipsec`: defaults, and errors at the line and column of the field at fault
(exit 1 from `netcc compile`, never a traceback)."""

from __future__ import annotations

import pytest
from clirun import run
from ipsecspecs import SHOP, shop, with_ipsec

from netcc.contract.ipsec import AEAD
from netcc.diagnostics import SpecError
from netcc.frontend import parse_spec
from netcc.model.types import IPsec, IPsecKey


def errors(text: str) -> list[tuple[str, int, int, str]]:
    with pytest.raises(SpecError) as e:
        parse_spec(text, "spec.yaml")
    return [(d.path, d.line, d.col, d.message) for d in e.value.diagnostics]


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_enabled_true_is_enough_and_every_default() -> None:
    cluster, _ = parse_spec(shop(), "spec.yaml")
    ipsec = cluster.ipsec
    assert ipsec == IPsec(
        enabled=True,
        cipher=AEAD,
        key_bits=128,
        icv_bits=128,
        underlay_mtu=1500,
        key_directory="/etc/netcc/ipsec",
        replay_window=1024,
        accept_plaintext=False,
        removed_key_grace=300,
        keys=(IPsecKey(1, "send"),),
        path="spec.encryption.ipsec",
    )
    assert cluster.wireguard is None
    plain, _ = parse_spec(SHOP.read_text(), "spec.yaml")
    assert plain.ipsec is None


def test_every_field() -> None:
    block = """
enabled: true
cipher: rfc4106(gcm(aes))
keyBits: 256
icvBits: 96
underlayMTU: 9000
keyDirectory: /run/keys/ipsec
replayWindow: 64
acceptPlaintext: true
removedKeyGraceSeconds: 0
keys:
  - {id: 9, state: accept, fingerprint: 0123456789abcdef0123456789abcdef}
  - {id: 8, state: send}
"""
    ipsec = parse_spec(shop(block), "spec.yaml")[0].ipsec
    assert ipsec is not None
    assert (ipsec.key_bits, ipsec.icv_bits, ipsec.underlay_mtu) == (256, 96, 9000)
    assert (ipsec.key_directory, ipsec.replay_window) == ("/run/keys/ipsec", 64)
    assert ipsec.accept_plaintext is True and ipsec.removed_key_grace == 0
    assert ipsec.keys == (
        IPsecKey(9, "accept", "0123456789abcdef0123456789abcdef", "spec.encryption.ipsec.keys[0]"),
        IPsecKey(8, "send", None, "spec.encryption.ipsec.keys[1]"),
    )


def test_wireguard_and_ipsec_exclude_each_other_at_the_field() -> None:
    text = SHOP.read_text().replace(
        "  namespaces:\n",
        "  encryption:\n    wireguard: {enabled: true}\n    ipsec: {enabled: true}\n"
        "  namespaces:\n",
        1,
    )
    found = [e for e in errors(text) if e[0] == "spec.encryption.ipsec"]
    assert len(found) == 1
    _, line, col, message = found[0]
    assert (line, col) == (line_of(text, "ipsec:"), 5)
    assert "both enabled" in message and "one or the other" in message
    # One of them disabled is fine (the WireGuard block needs no nodes when off).
    off = text.replace("wireguard: {enabled: true}", "wireguard: {enabled: false}")
    assert parse_spec(off, "spec.yaml")[0].ipsec.enabled


def test_compile_reports_it_as_file_line_col_and_exits_1(tmp_path) -> None:
    text = SHOP.read_text().replace(
        "  namespaces:\n",
        "  encryption:\n    ipsec: {enabled: true, keyBits: 512}\n  namespaces:\n",
        1,
    )
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    r = run("compile", spec, "-o", tmp_path / "out")
    assert r.code == 1, r.stderr
    line = line_of(text, "keyBits")
    assert f"spec.yaml:{line}:" in r.stderr and "keyBits" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "block,path,message",
    [
        ("{enabled: true, keyBits: 192}", "spec.encryption.ipsec.keyBits", "expected one of"),
        ("{enabled: true, icvBits: 32}", "spec.encryption.ipsec.icvBits", "expected one of"),
        ("{enabled: true, cipher: cbc(aes)}", "spec.encryption.ipsec.cipher", "expected one of"),
        ("{enabled: true, underlayMTU: 1000}", "spec.encryption.ipsec.underlayMTU", "between"),
        ("{enabled: true, replayWindow: 0}", "spec.encryption.ipsec.replayWindow", "between"),
        ("{enabled: true, replayWindow: 9999}", "spec.encryption.ipsec.replayWindow", "between"),
        (
            "{enabled: true, removedKeyGraceSeconds: -1}",
            "spec.encryption.ipsec.removedKeyGraceSeconds",
            "between",
        ),
        ("{enabled: true, keys: []}", "spec.encryption.ipsec.keys", "must not be empty"),
        (
            "{enabled: true, keys: [{id: 0, state: send}]}",
            "spec.encryption.ipsec.keys[0].id",
            "between",
        ),
        (
            "{enabled: true, keys: [{id: 256, state: send}]}",
            "spec.encryption.ipsec.keys[0].id",
            "between",
        ),
        (
            "{enabled: true, keys: [{id: 1, state: retired}]}",
            "spec.encryption.ipsec.keys[0].state",
            "expected one of",
        ),
        ("{enabled: true, keys: [{id: 1}]}", "spec.encryption.ipsec.keys[0].state", "missing"),
        ("{enabled: true, key: /x}", "spec.encryption.ipsec.key", "unknown field"),
        ("{cipher: rfc4106(gcm(aes))}", "spec.encryption.ipsec.enabled", "missing"),
        (
            "{enabled: true, keyDirectory: etc/netcc}",
            "spec.encryption.ipsec.keyDirectory",
            "keyDirectory must be an absolute path",
        ),
        (
            "{enabled: true, keyDirectory: /etc/../netcc}",
            "spec.encryption.ipsec.keyDirectory",
            "keyDirectory must be a normalized",
        ),
        (
            "{enabled: true, keyDirectory: '/etc/a:b'}",
            "spec.encryption.ipsec.keyDirectory",
            "keyDirectory must not contain ':'",
        ),
        (
            "{enabled: true, keys: [{id: 1, state: send, fingerprint: ABC}]}",
            "spec.encryption.ipsec.keys[0].fingerprint",
            "32 lowercase hex digits",
        ),
        (
            "{enabled: true, keys: [{id: 1, state: send}, {id: 1, state: accept}]}",
            "spec.encryption.ipsec.keys[1].id",
            "already used by spec.encryption.ipsec.keys[0]",
        ),
        (
            "{enabled: true, keys: [{id: 1, state: send}, {id: 2, state: send}]}",
            "spec.encryption.ipsec.keys[1].state",
            "at most one key may be in state send",
        ),
        (
            "{enabled: true, keys: [{id: 1, state: accept}]}",
            "spec.encryption.ipsec.keys",
            "no key is in state send",
        ),
    ],
)
def test_bad_values_are_errors_at_the_field(block: str, path: str, message: str) -> None:
    text = shop(block)
    found = errors(text)
    assert any(p == path and message in m for p, _, _, m in found), found
    assert all(line > 0 for p, line, _, _ in found if p == path)


def test_accept_only_is_valid_with_plaintext_accepted() -> None:
    block = "{enabled: true, acceptPlaintext: true, keys: [{id: 1, state: accept}]}"
    assert parse_spec(shop(block), "spec.yaml")[0].ipsec.keys == (
        IPsecKey(1, "accept", None, "spec.encryption.ipsec.keys[0]"),
    )


def test_a_key_pasted_into_the_spec_is_refused_and_never_quoted() -> None:
    from netcc.contract.ipseckey import generate, key_text

    secret = key_text(generate(4)).split()[2]
    for text in (
        shop(f'{{enabled: true, keys: [{{id: 4, state: send, fingerprint: "{secret}"}}]}}'),
        shop(f"{{enabled: true, keyDirectory: /etc/{secret}}}"),
        shop("{enabled: true}") + f"# {secret}\n",
    ):
        with pytest.raises(SpecError) as e:
            parse_spec(text, "spec.yaml")
        shown = "\n".join(d.format("spec.yaml") for d in e.value.diagnostics)
        assert secret not in shown and secret[:20] not in shown


def test_spi_slots_that_would_meet_are_refused() -> None:
    """A podCIDR shorter than /8 scales the slots: two /30 node CIDRs in one step meet."""
    text = (
        "apiVersion: netcc.io/v1alpha1\nkind: ClusterNetwork\nmetadata: {name: wide}\n"
        "spec:\n  podCIDR: 16.0.0.0/4\n  serviceCIDR: 10.96.0.0/16\n  nodes:\n"
        "    - {name: a, address: 192.168.0.1, podCIDR: 16.0.0.0/30}\n"
        "    - {name: b, address: 192.168.0.2, podCIDR: 16.0.0.4/30}\n"
        "    - {name: c, address: 192.168.0.3, podCIDR: 16.0.1.0/30}\n"
        "  namespaces:\n    - {name: default}\n"
    )
    found = errors(with_ipsec(text))
    assert [(p, m.split(",")[0]) for p, _, _, m in found] == [
        (
            "spec.nodes[1].podCIDR",
            "IPsec numbers SPIs by where a node's podCIDR starts inside podCIDR 16.0.0.0/4",
        )
    ]
    assert 'node "a"' in found[0][3]
    assert parse_spec(text, "spec.yaml")  # without IPsec the same nodes are fine
