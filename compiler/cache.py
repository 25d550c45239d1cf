"""Content-addressed cache of whole artifact trees.

The key covers everything an artifact tree depends on: the spec's bytes, the code of every
package that shapes OUT (the compiler, the contract it writes OUT by, the templates and the
schemas: a change to any of them never serves stale output), and the clang version. A test
checks that a compile imports no netcc module from outside these packages. A hit
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

from netcc.build.clang import cache_root, clang_version

# Every package whose files shape OUT, each hashed as the directory it is imported from (in the
# source tree `netcc` is compiler/ alone; installed as a wheel it holds the others too).
PACKAGES = ("netcc", "netcc.contract", "netcc.templates", "netcc.schemas")
LIBRARIES = ("jinja2", "pyyaml", "jsonschema")


@cache
def _netcc_digest() -> str:
    """Digest of the packages that shape OUT, and of the libraries that shape output."""
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


def _manifest(key: str) -> Path:
    return cache_root() / "trees" / f"{key}.json"


def _blob(digest: str) -> Path:
    return cache_root() / "blobs" / digest[:2] / digest


def load_tree(key: str) -> dict[str, bytes] | None:
    """The cached tree, or None; a blob that is missing or corrupt is a miss."""
    try:
        manifest = json.loads(_manifest(key).read_text())
        tree = {path: _blob(digest).read_bytes() for path, digest in manifest.items()}
    except (OSError, ValueError, AttributeError):
        return None
    for path, digest in manifest.items():
        if hashlib.sha256(tree[path]).hexdigest() != digest:
            return None
    return tree


def store_tree(key: str, tree: dict[str, bytes]) -> None:
    """Each file once, by content; then a manifest (path -> sha256) under the key."""
    try:
        manifest = {}
        for path in sorted(tree):
            digest = hashlib.sha256(tree[path]).hexdigest()
            manifest[path] = digest
            blob = _blob(digest)
            if not blob.exists():
                _atomic_write(blob, tree[path])
        _atomic_write(_manifest(key), json.dumps(manifest, indent=0).encode())
    except OSError:
        pass  # a read-only or full cache only costs speed


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
