"""WireGuard encryption: per-node public keys and private key files."""

from __future__ import annotations

import posixpath
from typing import Any

from netcc.diagnostics import join_key
from netcc.validate.access import mapping, quote, text
from netcc.validate.context import Context
from netcc.validate.secrets import is_wireguard_key

WIREGUARD_PATH = "spec.encryption.wireguard"
MAX_KEY_FILE = 1024  # characters of a privateKeyFile: far above any real path
MAX_COMPONENT = 255  # bytes of one component (NAME_MAX)
COLON = (
    "privateKeyFile must not contain ':' (the loader pod mounts the key there; runtimes split "
    "mounts at ':')"
)


def key_file_problems(path: str) -> list[str]:
    """Why `path` is not a key file path every consumer takes as written: an absolute,
    normalized path of printable characters without ':' (a DaemonSet mountPath, a
    wireguard.json field, a file the loader opens). Empty when it is one."""
    if not path.startswith("/"):
        return ["privateKeyFile must be an absolute path"]
    if len(path) > MAX_KEY_FILE:
        return [f"privateKeyFile must be no more than {MAX_KEY_FILE} characters"]
    if not path.isprintable():
        return ["privateKeyFile must hold only printable characters (no control characters)"]
    if ":" in path:
        return [COLON]
    if posixpath.normpath(path) != path or path.startswith("//") or path == "/":
        return ["privateKeyFile must be a normalized file path (no '.', '..', '//' or trailing /)"]
    if any(len(part.encode()) > MAX_COMPONENT for part in path.split("/")):
        return [f"privateKeyFile components must be no more than {MAX_COMPONENT} bytes"]
    return []


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
        if key_file is not None and (problems := key_file_problems(key_file)):
            ctx.error(join_key(path, "privateKeyFile"), problems[0])
    readable = isinstance(wireguard.get("nodes", {}), dict)
    if wireguard.get("enabled") is True and ctx.nodes is not None and readable:
        for node in ctx.nodes:
            if node not in entries:
                message = f"node {quote(node)} has no WireGuard entry (required when enabled)"
                ctx.error(nodes_path, message, at_key=True)
