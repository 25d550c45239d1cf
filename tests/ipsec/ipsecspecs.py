"""Shared by the IPsec tests: specs with `spec.encryption.ipsec`, the `netcc ipsec` commands
run in-process, and the search for key material in anything netcc writes or prints."""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
from collections.abc import Iterable
from pathlib import Path

from clirun import Ran

from netcc.cli.ipsec import add_ipsec_commands
from netcc.contract.ipseckey import ClusterKey

ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "examples" / "shop.yaml"
PODS = ROOT / "examples" / "pods.yaml"


def with_ipsec(spec: str, block: str = "{enabled: true}") -> str:
    """`spec` (a file's text, `  namespaces:` at spec level) with `spec.encryption.ipsec`:
    `block` as a flow mapping, or several lines (indented under `ipsec:` by 6 spaces)."""
    if "\n" in block.strip():
        body = "\n" + "".join(f"      {line}\n" for line in block.strip().splitlines())
    else:
        body = f" {block}\n"
    head = "  encryption:\n    ipsec:" + body
    return spec.replace("  namespaces:\n", head + "  namespaces:\n", 1)


def shop(block: str = "{enabled: true}") -> str:
    return with_ipsec(SHOP.read_text(), block)


def pods(block: str = "{enabled: true}") -> str:
    return with_ipsec(PODS.read_text(), block)


def ipsec(*args: object) -> Ran:
    """`netcc ipsec ARGS` in this process (the commands of `netcc.cli.ipsec`)."""
    ap = argparse.ArgumentParser(prog="netcc")
    add_ipsec_commands(ap.add_subparsers(dest="command", required=True))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            ns = ap.parse_args(["ipsec", *(str(a) for a in args)])
            code = ns.func(ns)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 2
    return Ran(code, out.getvalue(), err.getvalue())


def forms(secret: bytes) -> list[bytes]:
    """Every way a key could be written down: raw, hex (both cases), base64 (with and without
    padding, and URL-safe)."""
    b64 = base64.b64encode(secret)
    return [
        secret,
        secret.hex().encode(),
        secret.hex().upper().encode(),
        b64,
        b64.rstrip(b"="),
        base64.urlsafe_b64encode(secret).rstrip(b"="),
    ]


def assert_nowhere(secrets: Iterable[bytes], texts: dict[str, bytes | str]) -> None:
    """No secret, in any of its forms, in any of `texts` (name -> content)."""
    secrets = list(secrets)
    assert secrets
    for secret in secrets:
        for form in forms(secret):
            for name, data in texts.items():
                blob = data.encode() if isinstance(data, str) else data
                assert form not in blob, f"{name} holds key material"


def key(key_id: int = 1, fill: int = 7) -> ClusterKey:
    """A fixed key (tests that need no randomness)."""
    return ClusterKey(key_id, bytes([fill]) * 32)
