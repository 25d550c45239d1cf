"""Content-addressed cache of whole artifact trees.

The key covers everything an artifact tree depends on: the spec's bytes, netcc's own code and
templates (so a changed compiler never serves stale output), and the clang version. A hit
skips every stage; a miss costs nothing but the key. The cache lives in `$NETCC_CACHE_DIR`
(default `~/.cache/netcc`) and may be deleted at any time.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from functools import cache
from importlib import metadata, resources
from pathlib import Path

from netcc.build import cache_root, clang_version

PACKAGES = ("netcc", "netcc.templates", "netcc.schemas")
LIBRARIES = ("jinja2", "pyyaml", "jsonschema")


@cache
def _netcc_digest() -> str:
    """Digest of netcc's modules, templates and schemas, and the libraries that shape output."""
    h = hashlib.sha256()
    for package in PACKAGES:
        root = Path(str(resources.files(package)))
        for path in sorted(_walk(root)):
            if path.suffix in (".py", ".h", ".j2", ".c", ".json"):
                h.update(f"{package}:{path.relative_to(root).as_posix()}".encode() + b"\0")
                h.update(hashlib.sha256(path.read_bytes()).digest())
    for lib in LIBRARIES:
        try:
            h.update(f"{lib}={metadata.version(lib)}".encode())
        except metadata.PackageNotFoundError:
            h.update(f"{lib}=?".encode())
    return h.hexdigest()


def _walk(root: Path):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames:
            yield Path(dirpath) / name


def tree_key(spec: bytes) -> str:
    h = hashlib.sha256()
    for part in (spec, _netcc_digest().encode(), clang_version().encode()):
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()


def _path(key: str) -> Path:
    return cache_root() / "trees" / f"{key}.json"


def load_tree(key: str) -> dict[str, bytes] | None:
    try:
        doc = json.loads(_path(key).read_text())
        return {p: bytes.fromhex(v) for p, v in doc.items()}
    except (OSError, ValueError, AttributeError):
        return None


def store_tree(key: str, tree: dict[str, bytes]) -> None:
    path = _path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tree-")
        with os.fdopen(fd, "w") as f:
            json.dump({p: tree[p].hex() for p in sorted(tree)}, f)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs speed
