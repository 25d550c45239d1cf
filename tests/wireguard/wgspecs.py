"""Shared by the WireGuard tests: key directories outside /tmp, and specs with encryption on."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))

from labspecs import SPEC_POLICY

from netcc.keys import generate, nodes_block

NODES = ("node-1", "node-2", "node-3")


@contextmanager
def key_dir() -> Iterator[Path]:
    """A fresh directory for key files; not under /tmp, which the loader pod reserves."""
    path = Path(tempfile.mkdtemp(prefix="netcc-wg-test-", dir="/var/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def with_wireguard(spec: str, entries: dict[str, dict[str, str]], **extra: object) -> str:
    """`spec` with spec.encryption.wireguard enabled for `entries` (netcc.keys.generate)."""
    block = "\n".join("      " + line for line in nodes_block(entries).splitlines())
    options = "".join(f"      {k}: {v}\n" for k, v in extra.items())
    head = "  encryption:\n    wireguard:\n      enabled: true\n" + options + block + "\n"
    return spec.replace("  namespaces:\n", head + "  namespaces:\n", 1)


def policy_spec(keys: Path, **extra: object) -> tuple[str, dict[str, dict[str, str]]]:
    """The lab's 3-node policy spec with a key pair per node written into `keys`."""
    entries = generate(keys, list(NODES))
    return with_wireguard(SPEC_POLICY, entries, **extra), entries


def private_keys(keys: Path) -> list[str]:
    return [p.read_text().strip() for p in sorted(keys.rglob("*.key"))]


def assert_no_key_material(tree: dict[str, bytes], keys: list[str]) -> None:
    """No private key, as base64, hex or raw bytes, in any file of an artifact tree."""
    import base64

    assert keys
    for key in keys:
        raw = base64.b64decode(key)
        forms = (key.encode(), raw.hex().encode(), raw.hex().upper().encode(), raw)
        for path, data in tree.items():
            assert not any(f in data for f in forms), f"{path} holds a private key"


def read_tree(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
