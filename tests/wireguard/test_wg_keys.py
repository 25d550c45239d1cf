"""X25519 against RFC 7748's vectors and `wg pubkey`; `netcc keys generate`."""

from __future__ import annotations

import base64
import shutil
import stat
import subprocess

import pytest
import yaml
from wgspecs import SPEC_POLICY, key_dir, with_wireguard

from netcc.cli.main import main
from netcc.contract.wgkey import BASE_POINT, generate_private_key, public_key, x25519
from netcc.frontend import parse_spec

# RFC 7748 section 5.2
VECTORS = [
    (
        "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
        "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
        "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
    ),
    (
        "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
        "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
        "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
    ),
]
# RFC 7748 section 6.1
ALICE = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
ALICE_PUB = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
BOB = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"
BOB_PUB = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
SHARED = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"


@pytest.mark.parametrize("scalar,u,out", VECTORS)
def test_wg_rfc7748_vectors(scalar: str, u: str, out: str) -> None:
    assert x25519(bytes.fromhex(scalar), bytes.fromhex(u)).hex() == out


def test_wg_rfc7748_diffie_hellman() -> None:
    alice, bob = bytes.fromhex(ALICE), bytes.fromhex(BOB)
    assert x25519(alice, BASE_POINT).hex() == ALICE_PUB
    assert x25519(bob, BASE_POINT).hex() == BOB_PUB
    assert x25519(alice, bytes.fromhex(BOB_PUB)).hex() == SHARED
    assert x25519(bob, bytes.fromhex(ALICE_PUB)).hex() == SHARED


def test_wg_rfc7748_iterated() -> None:
    """Section 5.2: after one and 1,000 iterations of k, u = X25519(k, u), k."""
    k = u = BASE_POINT
    for i in range(1, 1001):
        k, u = x25519(k, u), k
        if i == 1:
            assert k.hex() == "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079"
    assert k.hex() == "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51"


@pytest.mark.skipif(shutil.which("wg") is None, reason="wireguard-tools (wg) is not installed")
def test_wg_public_keys_match_wg_pubkey() -> None:
    for _ in range(5):
        private = generate_private_key()
        raw = base64.b64decode(private)
        assert raw[0] & 7 == 0 and raw[31] & 0xC0 == 0x40  # clamped like `wg genkey`
        wg = subprocess.run(["wg", "pubkey"], input=private, capture_output=True, text=True)
        assert public_key(private) == wg.stdout.strip()
    genkey = subprocess.run(["wg", "genkey"], capture_output=True, text=True).stdout.strip()
    wg = subprocess.run(["wg", "pubkey"], input=genkey, capture_output=True, text=True)
    assert public_key(genkey) == wg.stdout.strip()


def test_wg_keys_generate_cli(capsys: pytest.CaptureFixture[str]) -> None:
    with key_dir() as base:
        out = base / "keys"
        assert main(["keys", "generate", "--out", str(out), "--nodes", "node-1,node-2"]) == 0
        printed = capsys.readouterr().out
        assert stat.S_IMODE(out.stat().st_mode) == 0o700
        block = yaml.safe_load(printed)["nodes"]
        assert sorted(block) == ["node-1", "node-2"]
        for node, entry in block.items():
            key_file = out / f"{node}.key"
            assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
            private = key_file.read_text().strip()
            assert private not in printed
            assert entry == {"publicKey": public_key(private), "privateKeyFile": str(key_file)}
            assert (out / f"{node}.pub").read_text().strip() == entry["publicKey"]
        before = (out / "node-1.key").read_text()
        assert main(["keys", "generate", "--out", str(out), "--nodes", "node-1"]) == 1
        assert "--force" in capsys.readouterr().err
        assert (out / "node-1.key").read_text() == before
        assert main(["keys", "generate", "--out", str(out), "--nodes", "node-1", "--force"]) == 0
        assert (out / "node-1.key").read_text() != before
        assert stat.S_IMODE((out / "node-1.key").stat().st_mode) == 0o600


def test_wg_keys_generate_from_spec_pastes_into_it(capsys: pytest.CaptureFixture[str]) -> None:
    with key_dir() as base:
        spec = base / "spec.yaml"
        spec.write_text(SPEC_POLICY)
        key_path = "/etc/netcc/wireguard/{node}.key"
        args = ["keys", "generate", "--out", str(base / "k"), "--spec", str(spec)]
        assert main([*args, "--key-path", key_path]) == 0
        entries = yaml.safe_load(capsys.readouterr().out)["nodes"]
        assert entries["node-2"]["privateKeyFile"] == "/etc/netcc/wireguard/node-2.key"
        cluster, _ = parse_spec(with_wireguard(SPEC_POLICY, entries).encode(), "spec.yaml")
        assert cluster.wireguard is not None and cluster.wireguard.enabled
        assert {n.node for n in cluster.wireguard.nodes} == {"node-1", "node-2", "node-3"}


@pytest.mark.parametrize(
    "args,message",
    [
        (["--nodes", "Node_1"], "not a node name"),
        (["--nodes", "a,a"], "named twice"),
        (["--nodes", "a", "--key-path", "rel/{node}.key"], "absolute"),
    ],
)
def test_wg_keys_generate_refuses(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with key_dir() as base:
        assert main(["keys", "generate", "--out", str(base / "k"), *args]) == 1
        assert message in capsys.readouterr().err
        assert not (base / "k").exists()
