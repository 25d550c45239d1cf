"""The lock file `OUT/netcc.lock.json`: made, parsed, and a directory verified against it.

The lock lists every artifact's sha256, the spec's digest, and netcc's and clang's versions:

    {"lockVersion": 1, "netcc": "0.1.0", "clang": "...", "spec": {"sha256": "..."},
     "artifacts": {"bpf/datapath.o": "...", ...}}

The compiler makes it (`make_lock`), `netcc check` and the compiler's refusal to replace a
foreign directory parse it (`parse_lock`), and the loader verifies OUT against it before
anything is loaded (`verify_lock`). OUT is read as `lstat` sees it (`netcc.contract.files`):
no symlink inside it is followed and no FIFO is opened, the lock file is bounded in size, and
a lock of the wrong shape is a LockError, never a crash.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from netcc.contract.files import (
    MAX_ARTIFACT_BYTES,
    TooLarge,
    read_beneath,
    safe_relpath,
    scan_tree,
    shown,
)

LOCK_NAME = "netcc.lock.json"
SPEC_IN_OUT = "spec.yaml"  # the spec OUT was compiled from, for reviewers; never sent to nodes
MAX_LOCK_BYTES = 32 << 20  # a lock lists one digest per artifact: megabytes for huge clusters
_SHA256 = re.compile(r"[0-9a-f]{64}")


class LockFormatError(ValueError):
    """Bytes that are not a lock file as `make_lock` writes it; the message says why."""


class LockError(Exception):
    """The artifacts are missing, tampered with, or not what the lock describes."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_lock(
    tree: dict[str, bytes],
    spec: bytes,
    netcc_version: str,
    clang: str,
    digests: Mapping[str, str] | None = None,
    sources: Mapping[str, str] | None = None,
) -> bytes:
    """The lock of `tree`; `digests` may give the sha256 of some of its files, computed once
    for many locks (the k8s ConfigMaps carry one lock per node, all listing the same files);
    `sources`: the digest of every manifest the spec's sources named (`index:name`)."""
    known = digests or {}
    doc = {
        "lockVersion": 1,
        "netcc": netcc_version,
        "clang": clang,
        "spec": {"sha256": sha256(spec)},
        **({"sources": dict(sorted(sources.items()))} if sources else {}),
        "artifacts": {
            path: known.get(path) or sha256(tree[path])
            for path in sorted(tree)
            if path != LOCK_NAME
        },
    }
    return (json.dumps(doc, indent=2) + "\n").encode()


def is_sha256(value: object) -> bool:
    """A lowercase hex sha256 digest, as the lock holds them."""
    return isinstance(value, str) and _SHA256.fullmatch(value) is not None


def load_json_bounded(data: bytes, limit: int = MAX_LOCK_BYTES) -> Any:
    """JSON from untrusted bytes: bounded in size, deep nesting an error, never a crash."""
    if len(data) > limit:
        raise LockFormatError(f"larger than {limit} bytes")
    try:
        return json.loads(data)
    except RecursionError:
        raise LockFormatError("nested too deeply") from None
    except ValueError as e:  # also UnicodeDecodeError
        raise LockFormatError(f"not JSON ({type(e).__name__})") from None


def parse_lock(data: bytes) -> dict[str, Any]:
    """The lock document in `data`, checked field by field against what `make_lock` writes."""
    doc = load_json_bounded(data)
    if not isinstance(doc, dict):
        raise LockFormatError("not a JSON object")
    if type(doc.get("lockVersion")) is not int or doc["lockVersion"] != 1:
        raise LockFormatError("lockVersion is not 1")
    for field in ("netcc", "clang"):
        if not isinstance(doc.get(field), str):
            raise LockFormatError(f"{field} is not a version string")
    spec = doc.get("spec")
    if not isinstance(spec, dict) or not is_sha256(spec.get("sha256")):
        raise LockFormatError("spec.sha256 is not a sha256 digest")
    artifacts = doc.get("artifacts")
    if not isinstance(artifacts, dict) or not all(
        isinstance(k, str) and is_sha256(v) for k, v in artifacts.items()
    ):
        raise LockFormatError("artifacts is not a map of paths to sha256 digests")
    return doc


# --- verifying a directory against its lock --------------------------------------------------


def _read_lock(out: Path) -> dict:
    """The lock document with its `artifacts` map (path -> sha256); LockError otherwise."""
    where = out / LOCK_NAME
    try:
        data = read_beneath(out, LOCK_NAME, MAX_LOCK_BYTES)
        if data is None:
            raise LockError(f"{where}: unreadable lock file (missing)")
        lock = load_json_bounded(data)
    except (OSError, LockFormatError) as e:
        raise LockError(f"{where}: unreadable lock file ({e})") from None
    artifacts = lock.get("artifacts") if isinstance(lock, dict) else None
    if not isinstance(artifacts, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in artifacts.items()
    ):
        raise LockError(f"{where}: unreadable lock file (no artifacts map)")
    return lock


def _artifact_problem(out: Path, rel: str, digest: str) -> str | None:
    """What is wrong with one artifact the lock lists, or None."""
    if safe_relpath(rel) is None:
        return f"{shown(rel)}: path escapes the artifact directory"
    try:
        data = read_beneath(out, rel, MAX_ARTIFACT_BYTES)
    except TooLarge:
        return f"{shown(rel)}: larger than {MAX_ARTIFACT_BYTES} bytes"
    except OSError as e:
        return f"{shown(rel)}: not a regular file ({e.strerror or e})"
    if data is None:
        return f"{shown(rel)}: missing"
    actual = sha256(data)
    if actual != digest:
        return f"{shown(rel)}: sha256 {actual[:12]}… does not match the lock"
    return None


def verify_lock(out: str | Path) -> dict:
    """The lock document, after checking every artifact's digest; raises LockError."""
    out = Path(out)
    lock = _read_lock(out)
    artifacts = lock["artifacts"]
    problems = [p for rel, d in sorted(artifacts.items()) if (p := _artifact_problem(out, rel, d))]
    known = set(artifacts) | {LOCK_NAME}
    try:
        entries = scan_tree(out)
    except OSError as e:
        raise LockError(f"{out}: cannot read the artifact directory ({e.strerror or e})") from None
    for rel, entry in entries.items():
        if entry.kind != "directory" and rel not in known:
            kind = "" if entry.kind == "regular file" else f" (a {entry.kind})"
            problems.append(f"{shown(rel)}: not in the lock{kind}")
    if problems:
        raise LockError("artifacts do not match the lock file:\n  " + "\n  ".join(problems))
    return lock
