"""The lock file: every artifact's sha256, the spec's digest, netcc's and clang's versions."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

LOCK_NAME = "netcc.lock.json"
SPEC_IN_OUT = "spec.yaml"  # the spec OUT was compiled from, for reviewers; never sent to nodes
MAX_LOCK_BYTES = 32 << 20  # a lock lists one digest per artifact: megabytes for huge clusters
_SHA256 = re.compile(r"[0-9a-f]{64}")


class LockFormatError(ValueError):
    """Bytes that are not a lock file as `make_lock` writes it; the message says why."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_lock(
    tree: dict[str, bytes],
    spec: bytes,
    netcc_version: str,
    clang: str,
    digests: Mapping[str, str] | None = None,
) -> bytes:
    """The lock of `tree`; `digests` may give the sha256 of some of its files, computed once
    for many locks (the k8s ConfigMaps carry one lock per node, all listing the same files)."""
    known = digests or {}
    doc = {
        "lockVersion": 1,
        "netcc": netcc_version,
        "clang": clang,
        "spec": {"sha256": sha256(spec)},
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
