"""WireGuard encryption: per-node public keys and private key files."""

from __future__ import annotations

from typing import Any

from netcc.diagnostics import join_key
from netcc.validate.access import mapping, quote, text
from netcc.validate.context import Context
from netcc.validate.secrets import is_wireguard_key

WIREGUARD_PATH = "spec.encryption.wireguard"


def check_wireguard(ctx: Context, spec: dict[str, Any]) -> None:
    wireguard = mapping(mapping(spec.get("encryption")).get("wireguard"))
    nodes_path = join_key(WIREGUARD_PATH, "nodes")
    entries = mapping(wireguard.get("nodes"))
    public_keys: dict[str, str] = {}
    for node, entry in entries.items():
        path = join_key(nodes_path, node)
        ctx.check_reference("node", node, ctx.nodes, path, at_key=True)
        entry = mapping(entry)
        public_key = text(entry.get("publicKey"))
        if public_key is not None:
            key_path = join_key(path, "publicKey")
            if not is_wireguard_key(public_key):
                ctx.error(
                    key_path, "invalid publicKey: expected base64 of 32 bytes (wg pubkey output)"
                )
            elif public_key in public_keys:
                ctx.error(
                    key_path, f"publicKey is already used by node {quote(public_keys[public_key])}"
                )
            public_keys.setdefault(public_key, node)
        key_file = text(entry.get("privateKeyFile"))
        if key_file is not None and not is_wireguard_key(key_file) and not key_file.startswith("/"):
            ctx.error(join_key(path, "privateKeyFile"), "privateKeyFile must be an absolute path")
    readable = isinstance(wireguard.get("nodes", {}), dict)
    if wireguard.get("enabled") is True and ctx.nodes is not None and readable:
        for node in ctx.nodes:
            if node not in entries:
                message = f"node {quote(node)} has no WireGuard entry (required when enabled)"
                ctx.error(nodes_path, message, at_key=True)
