"""WireGuard keys: X25519 (RFC 7748) in pure Python, and `netcc keys generate`.

A WireGuard private key is 32 random bytes clamped as RFC 7748 says; its public key is the
X25519 product of that scalar and the base point u=9. Both travel as base64, as `wg genkey` and
`wg pubkey` print them. `netcc keys generate --out DIR` writes one key pair per node
(`NODE.key`, mode 0600, and `NODE.pub`) into a directory only its owner can read, and prints the
`nodes:` block of `spec.encryption.wireguard` to paste into the spec. Private keys are never
printed and never written anywhere else.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import re
import secrets
import sys
from pathlib import Path

P = 2**255 - 19
A24 = 121665
BASE_POINT = (9).to_bytes(32, "little")
KEY_SUFFIX, PUB_SUFFIX = ".key", ".pub"
_NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")


class KeyFormatError(ValueError):
    """Not a WireGuard key (bad base64 or not 32 bytes)."""


def _clamp(scalar: bytes) -> int:
    k = bytearray(scalar)
    k[0] &= 248
    k[31] &= 127
    k[31] |= 64
    return int.from_bytes(k, "little")


def x25519(scalar: bytes, u: bytes) -> bytes:
    """RFC 7748 section 5: the Montgomery ladder on Curve25519 (not constant time)."""
    if len(scalar) != 32 or len(u) != 32:
        raise KeyFormatError("X25519 takes 32-byte scalars and u-coordinates")
    k = _clamp(scalar)
    x1 = int.from_bytes(u, "little") & ((1 << 255) - 1)
    x2, z2, x3, z3, swap = 1, 0, x1, 1, 0
    for t in reversed(range(255)):
        bit = (k >> t) & 1
        swap ^= bit
        if swap:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = bit
        a, b = (x2 + z2) % P, (x2 - z2) % P
        aa, bb = a * a % P, b * b % P
        e = (aa - bb) % P
        c, d = (x3 + z3) % P, (x3 - z3) % P
        da, cb = d * a % P, c * b % P
        x3 = (da + cb) ** 2 % P
        z3 = x1 * (da - cb) ** 2 % P
        x2 = aa * bb % P
        z2 = e * (aa + A24 * e) % P
    if swap:
        x2, z2 = x3, z3
    return (x2 * pow(z2, P - 2, P) % P).to_bytes(32, "little")


def decode_key(text: str) -> bytes:
    """The 32 bytes of a base64 WireGuard key; KeyFormatError otherwise."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyFormatError("not base64") from None
    if len(raw) != 32:
        raise KeyFormatError(f"{len(raw)} bytes, expected 32")
    return raw


def generate_private_key() -> str:
    """A new private key (base64), clamped like `wg genkey`."""
    return base64.b64encode(_clamp(secrets.token_bytes(32)).to_bytes(32, "little")).decode()


def public_key(private_key: str) -> str:
    """The public key (base64) of a private key (base64), as `wg pubkey` computes it."""
    return base64.b64encode(x25519(decode_key(private_key), BASE_POINT)).decode()


def read_private_key(path: str | Path) -> str:
    """The base64 private key in `path` (one line, as `wg genkey` writes it)."""
    text = Path(path).read_text().strip()
    decode_key(text)
    return text


# --- netcc keys generate -------------------------------------------------------------------


class _UserError(Exception):
    pass


def _spec_nodes(path: str) -> list[str]:
    """Node names of a spec, read without validating the rest (its keys are not there yet)."""
    from netcc.diagnostics import SpecError
    from netcc.load import load_yaml

    try:
        doc, _ = load_yaml(Path(path).read_bytes(), path)
    except OSError as e:
        raise _UserError(f"cannot read {path}: {e.strerror}") from None
    except SpecError as e:
        raise _UserError(f"{path}: {e.diagnostics[0].message}") from None
    spec = doc.get("spec") if isinstance(doc, dict) else None
    nodes = spec.get("nodes") if isinstance(spec, dict) else None
    if not isinstance(nodes, list):
        raise _UserError(f"{path}: no spec.nodes list")
    return [n.get("name") for n in nodes if isinstance(n, dict)]


def _check_names(names: list[object]) -> list[str]:
    if not names:
        raise _UserError("no nodes given")
    for name in names:
        if not isinstance(name, str) or not _NODE_NAME.fullmatch(name) or len(name) > 253:
            raise _UserError(f"{name!r}: not a node name (DNS-1123 subdomain)")
    if len(set(names)) != len(names):
        raise _UserError("a node is named twice")
    return [str(n) for n in names]


def _write_private(path: Path, key: str, force: bool) -> None:
    """Create the file 0600 (never readable by others, not even for a moment)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(key + "\n")
    if force:
        os.replace(tmp, path)
    else:
        os.link(tmp, path)  # fails if `path` appeared meanwhile
        os.unlink(tmp)


def generate(
    out: str | Path, nodes: list[str], force: bool = False, key_path: str | None = None
) -> dict[str, dict[str, str]]:
    """Write a key pair per node into `out`; the spec's `nodes:` entries, by node name."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise _UserError(f"{out} exists and is not a directory")
    existing = [n for n in nodes if (out / f"{n}{KEY_SUFFIX}").exists()]
    if existing and not force:
        raise _UserError(
            f"{out}: key files exist for {', '.join(existing)}; nothing written "
            "(--force replaces them)"
        )
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    if out.stat().st_mode & 0o077:
        print(f"netcc: warning: {out} is readable by others; chmod 700 it", file=sys.stderr)
    entries = {}
    for node in nodes:
        private = generate_private_key()
        path = out / f"{node}{KEY_SUFFIX}"
        _write_private(path, private, force)
        public = public_key(private)
        (out / f"{node}{PUB_SUFFIX}").write_text(public + "\n")
        where = key_path.replace("{node}", node) if key_path else str(path.resolve())
        entries[node] = {"publicKey": public, "privateKeyFile": where}
    return entries


def nodes_block(entries: dict[str, dict[str, str]]) -> str:
    """The `nodes:` block of spec.encryption.wireguard (JSON strings are YAML scalars)."""
    lines = ["nodes:"]
    for node, e in entries.items():
        lines.append(f"  {node}:")
        lines.append(f"    publicKey: {json.dumps(e['publicKey'])}")
        lines.append(f"    privateKeyFile: {json.dumps(e['privateKeyFile'])}")
    return "\n".join(lines)


def cmd_generate(args: argparse.Namespace) -> int:
    try:
        if args.key_path is not None and not args.key_path.startswith("/"):
            raise _UserError("--key-path must be an absolute path (the file on each node)")
        names: list[object] = (
            _spec_nodes(args.spec) if args.spec else [n for n in args.nodes.split(",") if n]
        )
        nodes = _check_names(names)
        entries = generate(args.out, nodes, args.force, args.key_path)
    except _UserError as e:
        print(f"netcc: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"netcc: error: {e.filename or args.out}: {e.strerror}", file=sys.stderr)
        return 1
    print(f"# spec.encryption.wireguard ({len(nodes)} key pairs in {args.out})")
    print(nodes_block(entries))
    return 0


def add_keys_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add `keys generate` to the `netcc` command's subparsers."""
    keys = subparsers.add_parser("keys", help="WireGuard key pairs for the spec's nodes")
    sub = keys.add_subparsers(dest="keys_command", required=True)
    g = sub.add_parser(
        "generate",
        help="write one key pair per node (NODE.key 0600, NODE.pub), print the `nodes:` block",
    )
    g.add_argument("--out", required=True, metavar="DIR", help="directory for the key files")
    which = g.add_mutually_exclusive_group(required=True)
    which.add_argument("--spec", metavar="SPEC", help="every node of this spec")
    which.add_argument("--nodes", metavar="A,B", help="comma-separated node names")
    g.add_argument("--force", action="store_true", help="replace existing key files")
    g.add_argument(
        "--key-path",
        metavar="PATH",
        help="privateKeyFile to print, `{node}` replaced by the node's name "
        "(default: the generated file's absolute path)",
    )
    g.set_defaults(func=cmd_generate)
