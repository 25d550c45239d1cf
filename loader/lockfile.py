"""Check an artifact directory against its lock file before anything is loaded."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

LOCK_NAME = "netcc.lock.json"


class LockError(Exception):
    """The artifacts are missing, tampered with, or not what the lock describes."""


def verify_lock(out: Path) -> dict:
    """The lock document, after checking every artifact's digest; raises LockError."""
    out = Path(out)
    try:
        lock = json.loads((out / LOCK_NAME).read_text())
        artifacts = lock["artifacts"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise LockError(f"{out / LOCK_NAME}: unreadable lock file ({e})") from None
    problems = []
    for rel, digest in sorted(artifacts.items()):
        path = out / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            problems.append(f"{rel}: path escapes the artifact directory")
            continue
        try:
            actual = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            problems.append(f"{rel}: missing")
            continue
        if actual != digest:
            problems.append(f"{rel}: sha256 {actual[:12]}… does not match the lock")
    known = set(artifacts) | {LOCK_NAME}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        rel = path.relative_to(out).as_posix()
        if rel not in known:
            problems.append(f"{rel}: not in the lock")
    if problems:
        raise LockError("artifacts do not match the lock file:\n  " + "\n  ".join(problems))
    return lock
