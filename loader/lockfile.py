"""Check an artifact directory against its lock file before anything is loaded.

OUT is read as `lstat` sees it: no symlink inside it is followed and no FIFO is opened, the
lock file is bounded in size, and a lock of the wrong shape is a LockError, never a crash.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from netcc.contract.lock import MAX_LOCK_BYTES, LockFormatError, load_json_bounded
from netcc.fsguard import TooLarge, read_beneath, safe_relpath, shown
from netcc.write.tree import MAX_ARTIFACT_BYTES, scan_tree

LOCK_NAME = "netcc.lock.json"


class LockError(Exception):
    """The artifacts are missing, tampered with, or not what the lock describes."""


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
    actual = hashlib.sha256(data).hexdigest()
    if actual != digest:
        return f"{shown(rel)}: sha256 {actual[:12]}… does not match the lock"
    return None


def verify_lock(out: Path) -> dict:
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
