"""Private keys must never be in the spec: only references to key files on the nodes."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from netcc.diagnostics import Diagnostic, join_index, join_key
from netcc.validate.context import Context

PRIVATE_KEY_MESSAGE = (
    "private key material must not be in the spec; reference a file with privateKeyFile"
)
_BASE64_KEY = re.compile(r"[A-Za-z0-9+/]{43}=")


def is_wireguard_key(value: str) -> bool:
    """True for base64 of exactly 32 bytes (a WireGuard key, public or private)."""
    candidate = value.strip()
    if not _BASE64_KEY.fullmatch(candidate):
        return False
    try:
        return len(base64.b64decode(candidate, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def is_private_key_field(key: str) -> bool:
    """`privateKey`, `private_key`, `wgPrivateKey`... but not `privateKeyFile`."""
    return re.sub(r"[-_]", "", key.lower()).endswith("privatekey")


def check_secrets(ctx: Context, document: Any) -> list[str]:
    """Report fields named like a private key anywhere, and keys pasted into privateKeyFile.

    Returns the paths holding secrets, so that no other message quotes them."""
    secret_paths: list[str] = []
    seen: set[int] = set()
    stack: list[tuple[Any, str]] = [(document, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict | list):
            if id(value) in seen:  # shared through a YAML alias: reported at its first place
                continue
            seen.add(id(value))
        if isinstance(value, list):
            stack.extend((item, join_index(path, i)) for i, item in enumerate(value))
            continue
        if not isinstance(value, dict):
            continue
        for key, item in value.items():
            key_path = join_key(path, key)
            if is_private_key_field(key):
                ctx.error(key_path, PRIVATE_KEY_MESSAGE, at_key=True)
                secret_paths.append(key_path)
            elif key == "privateKeyFile" and isinstance(item, str) and is_wireguard_key(item):
                ctx.error(key_path, PRIVATE_KEY_MESSAGE)
                secret_paths.append(key_path)
            else:
                stack.append((item, key_path))
    return secret_paths


def is_under(path: str, ancestor: str) -> bool:
    """True when `path` is `ancestor` or inside it."""
    return path == ancestor or (path.startswith(ancestor) and path[len(ancestor)] in ".[")


_KEY_TOKEN = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{43}=(?![A-Za-z0-9+/=])")
STRAY_KEY_MESSAGE = (
    "this looks like a WireGuard key but is none of the spec's publicKey values; a private key "
    "must not be in the spec, not even in a comment (OUT carries the spec as written)"
)


def _public_keys(document: Any) -> set[str]:
    found: set[str] = set()
    stack = [document]
    while stack:
        value = stack.pop()
        if isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                if key == "publicKey" and isinstance(item, str):
                    found.add(item.strip())
                else:
                    stack.append(item)
    return found


def stray_keys(text: str, document: Any) -> list[Diagnostic]:
    """Key-shaped text anywhere in the spec (values, comments) that is not a declared public
    key, located by line and column; the message never quotes it."""
    public = _public_keys(document)
    out = []
    for m in _KEY_TOKEN.finditer(text):
        if m.group() in public or not is_wireguard_key(m.group()):
            continue
        line = text.count("\n", 0, m.start()) + 1
        col = m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
        out.append(Diagnostic(STRAY_KEY_MESSAGE, "", line, col))
    return out
