"""Private keys must never be in the spec: only references to key files on the nodes.

OUT carries the spec byte for byte (`spec.yaml`), and spec values reach `wireguard.json` and
the node ConfigMaps, so a WireGuard key anywhere in the spec is refused unless it is a
declared public key (`spec.encryption.wireguard.nodes.NODE.publicKey`) in its place. Two
scans find keys, and neither compares whole values only:

- the raw text, comments included, for key-shaped text anywhere (`KEY_SHAPED`: no prefix such
  as `/etc/wg/` hides a key);
- every decoded string, map keys included, since YAML escapes (`"\\x59..."`, `\\u...`, a
  `\\`-newline continuation) hide a key from the raw text but not from what reaches OUT.

Messages never quote what was found (and `netcc.diagnostics` redacts key-shaped text from
every message anyway).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from typing import Any

from netcc.diagnostics import KEY_SHAPED, Diagnostic, join_index, join_key
from netcc.validate.context import Context

PRIVATE_KEY_MESSAGE = (
    "private key material must not be in the spec; reference a file with privateKeyFile"
)
STRAY_KEY_MESSAGE = (
    "this looks like a WireGuard key but is none of the spec's publicKey values; a private key "
    "must not be in the spec, not even in a comment (OUT carries the spec as written)"
)
KEY_IN_VALUE_MESSAGE = (
    "this value holds text that looks like a WireGuard key (base64 of 32 bytes, here written "
    "with YAML escapes or folding, or in a place where no publicKey belongs); a private key "
    "must not be in the spec (OUT carries the spec as written)"
)
WIREGUARD_NODES = "spec.encryption.wireguard.nodes"
_FULL_KEY = re.compile(KEY_SHAPED.pattern)


def is_wireguard_key(value: str) -> bool:
    """True for base64 of exactly 32 bytes (a WireGuard key, public or private)."""
    candidate = value.strip()
    if not _FULL_KEY.fullmatch(candidate):
        return False
    try:
        return len(base64.b64decode(candidate, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def is_private_key_field(key: str) -> bool:
    """`privateKey`, `private_key`, `wgPrivateKey`... but not `privateKeyFile`."""
    return re.sub(r"[-_]", "", key.lower()).endswith("privatekey")


def check_secrets(ctx: Context, document: Any) -> list[str]:
    """Report fields named like a private key anywhere, and keys pasted into privateKeyFile
    (alone or inside a path).

    Returns the paths holding secrets, so that no other message quotes them."""
    secret_paths: list[str] = []
    for value, path in _collections(document):
        if not isinstance(value, dict):
            continue
        for key, item in value.items():
            key_path = join_key(path, key)
            if is_private_key_field(key):
                ctx.error(key_path, PRIVATE_KEY_MESSAGE, at_key=True)
                secret_paths.append(key_path)
            elif key == "privateKeyFile" and isinstance(item, str) and KEY_SHAPED.search(item):
                ctx.error(key_path, PRIVATE_KEY_MESSAGE)
                secret_paths.append(key_path)
    return secret_paths


def _collections(document: Any) -> Iterator[tuple[Any, str]]:
    """(collection, path) for every dict and list of `document`, each once (a collection
    shared through a YAML alias is visited at its first place)."""
    seen: set[int] = set()
    stack: list[tuple[Any, str]] = [(document, "")]
    while stack:
        value, path = stack.pop()
        if not isinstance(value, dict | list) or id(value) in seen:
            continue
        seen.add(id(value))
        yield value, path
        if isinstance(value, list):
            stack.extend((item, join_index(path, i)) for i, item in enumerate(value))
        else:
            stack.extend((item, join_key(path, key)) for key, item in value.items())


def _strings(document: Any) -> Iterator[tuple[str, str, bool]]:
    """(text, path, is_map_key) for every string of `document`, map keys included."""
    if isinstance(document, str):
        yield document, "", False
    for value, path in _collections(document):
        pairs = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in pairs:
            item_path = join_key(path, key) if isinstance(key, str) else join_index(path, key)
            if isinstance(key, str):
                yield key, item_path, True
            if isinstance(item, str):
                yield item, item_path, False


def is_under(path: str, ancestor: str) -> bool:
    """True when `path` is `ancestor` or inside it."""
    return path == ancestor or (path.startswith(ancestor) and path[len(ancestor)] in ".[")


def declared_public_keys(document: Any) -> dict[str, str]:
    """path -> key of each well-formed `spec.encryption.wireguard.nodes.NODE.publicKey`:
    the only places a key may be written."""
    root = document if isinstance(document, dict) else {}
    spec = root.get("spec") if isinstance(root.get("spec"), dict) else {}
    encryption = spec.get("encryption") if isinstance(spec.get("encryption"), dict) else {}
    wireguard = encryption.get("wireguard")
    nodes = wireguard.get("nodes") if isinstance(wireguard, dict) else None
    declared: dict[str, str] = {}
    for node, entry in nodes.items() if isinstance(nodes, dict) else ():
        key = entry.get("publicKey") if isinstance(entry, dict) else None
        if isinstance(key, str) and is_wireguard_key(key):
            declared[join_key(join_key(WIREGUARD_NODES, node), "publicKey")] = key.strip()
    return declared


def check_stray_keys(
    ctx: Context, document: Any, secret_paths: list[str], text: str | None = None
) -> None:
    """Report key-shaped text that is no declared public key: in the raw `text` (comments
    included) at its line and column, and in every decoded string at its value or key.

    What the secrets check reported already (`secret_paths`) is not reported again, nor a
    decoded value whose key the raw scan located already."""
    declared = declared_public_keys(document)
    secret_texts = {
        key
        for string, path, _ in _strings(document)
        if any(is_under(path, p) for p in secret_paths)
        for key in KEY_SHAPED.findall(string)
    }
    located = _raw_keys(ctx, text, set(declared.values()) | secret_texts) if text else set()
    for string, path, is_key in _strings(document):
        if not KEY_SHAPED.search(string) or any(is_under(path, p) for p in secret_paths):
            continue
        if not is_key and path in declared and declared[path] == string.strip():
            continue  # a public key where it belongs
        if set(KEY_SHAPED.findall(string)) - located - secret_texts:
            ctx.error(path, KEY_IN_VALUE_MESSAGE, at_key=is_key)


def _raw_keys(ctx: Context, text: str, allowed: set[str]) -> set[str]:
    """Report each key-shaped match of `text` not in `allowed` at its position; return them."""
    found: set[str] = set()
    line, line_start, counted = 1, 0, 0
    for m in KEY_SHAPED.finditer(text):
        if m.group() in allowed:
            continue
        found.add(m.group())
        line += text.count("\n", counted, m.start())
        line_start = text.rfind("\n", counted, m.start()) + 1 or line_start
        counted = m.start()
        ctx.diagnostics.append(Diagnostic(STRAY_KEY_MESSAGE, "", line, m.start() - line_start + 1))
    return found
