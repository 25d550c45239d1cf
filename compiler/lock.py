"""The lock file: every artifact's sha256, the spec's digest, netcc's and clang's versions."""

from __future__ import annotations

import hashlib
import json

LOCK_NAME = "netcc.lock.json"
SPEC_IN_OUT = "spec.yaml"  # the spec OUT was compiled from, for reviewers; never sent to nodes


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_lock(tree: dict[str, bytes], spec: bytes, netcc_version: str, clang: str) -> bytes:
    doc = {
        "lockVersion": 1,
        "netcc": netcc_version,
        "clang": clang,
        "spec": {"sha256": sha256(spec)},
        "artifacts": {path: sha256(tree[path]) for path in sorted(tree) if path != LOCK_NAME},
    }
    return (json.dumps(doc, indent=2) + "\n").encode()
