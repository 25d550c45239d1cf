"""Content-addressed cache of whole artifact trees.

The key covers everything an artifact tree depends on: the spec's bytes, the code of every
package that shapes OUT (the compiler, the contract it writes OUT by, the templates and the
schemas: a change to any of them never serves stale output), and the clang version. A test
checks that a compile imports no netcc module from outside these packages. A hit
skips every stage; a miss costs nothing but the key. The cache lives in `$NETCC_CACHE_DIR`
(default `~/.cache/netcc`) and may be deleted at any time. Each tree is one file,
`trees/KEY.pack`: written in one go and read back in one go (a tree of 7,000 files as 7,000
files cost as much to write as to compile), every file's sha256 checked on the way back.
"""

from __future__ import annotations

import contextlib
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


PACK_FORMAT = 1


def _pack(key: str) -> Path:
    return cache_root() / "trees" / f"{key}.pack"


def load_tree(key: str) -> dict[str, bytes] | None:
    """The cached tree, or None; a pack that is missing, cut short or corrupt is a miss."""
    try:
        with open(_pack(key), "rb") as f:
            index = json.loads(f.readline())
            if index.get("format") != PACK_FORMAT:
                return None
            tree = {}
            for path, size, digest in index["files"]:
                data = f.read(size)
                if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
                    return None
                tree[path] = data
            if f.read(1):
                return None
    except (OSError, ValueError, AttributeError, TypeError, KeyError):
        return None
    return tree


def store_tree(key: str, tree: dict[str, bytes], digests: dict[str, str] | None = None) -> None:
    """The tree as one pack file under the key: a line of JSON listing every file (path,
    size, sha256), then the files' bytes in that order. `digests` gives the sha256 of files
    known already (the lock lists them all), so nothing is hashed twice."""
    known = digests or {}
    paths = sorted(tree)
    files = [[p, len(tree[p]), known.get(p) or hashlib.sha256(tree[p]).hexdigest()] for p in paths]
    header = json.dumps({"format": PACK_FORMAT, "files": files}, separators=(",", ":"))
    with contextlib.suppress(OSError):  # a read-only or full cache only costs speed
        _atomic_write(_pack(key), [header.encode() + b"\n", *(tree[p] for p in paths)])


def _atomic_write(path: Path, chunks: list[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.writelines(chunks)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
