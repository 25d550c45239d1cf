"""Where a spec comes from: a file, an artifact directory (`OUT`), or `git:REV:PATH`.

`OUT` holds the spec's sha256 in `netcc.lock.json`, not the spec. When `OUT` carries a copy
of the spec (`spec.yaml`, or the file the lock names under `spec.path`), it is used after its
digest is checked against the lock; otherwise the reviewer must pass the spec, and
`--spec SPEC` beside `OUT` checks that it is the one `OUT` was compiled from.
`git:REV:PATH` reads `git show REV:PATH` in the current directory's repository; PATH may name
a spec or an `OUT` directory at that revision.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from netcc.diagnostics import SourceMap
from netcc.frontend import parse_spec
from netcc.lock import LOCK_NAME, SPEC_IN_OUT, sha256
from netcc.model import Cluster


class SourceError(Exception):
    """The argument names no readable spec; the message says what to pass instead."""


@dataclass(frozen=True)
class Spec:
    """A spec's bytes, the name diagnostics use for it, and its validated model."""

    text: bytes
    filename: str
    cluster: Cluster
    sources: SourceMap

    @property
    def sha256(self) -> str:
        return sha256(self.text)


def _git_show(rev: str, path: str) -> bytes:
    try:
        proc = subprocess.run(
            ["git", "show", f"{rev}:{path}"], capture_output=True, check=False, timeout=60
        )
    except OSError as e:
        raise SourceError(f"cannot run git: {e.strerror}") from None
    if proc.returncode != 0:
        reason = proc.stderr.decode(errors="replace").strip().splitlines()
        raise SourceError(f"git show {rev}:{path} failed: {reason[-1] if reason else 'error'}")
    return proc.stdout


def _git_is_tree(rev: str, path: str) -> bool:
    try:
        proc = subprocess.run(
            ["git", "cat-file", "-t", f"{rev}:{path}"], capture_output=True, check=False, timeout=60
        )
    except OSError as e:
        raise SourceError(f"cannot run git: {e.strerror}") from None
    return proc.returncode == 0 and proc.stdout.strip() == b"tree"


def _lock_spec(lock_text: bytes, where: str) -> tuple[str, str]:
    """(sha256, spec file name inside OUT) from a lock file."""
    try:
        doc = json.loads(lock_text)
        spec = doc["spec"]
        return spec["sha256"], spec.get("path", SPEC_IN_OUT)
    except (ValueError, KeyError, TypeError):
        raise SourceError(f"{where}: not a netcc lock file") from None


def _from_out(lock: bytes, read, where: str) -> tuple[bytes, str]:
    digest, name = _lock_spec(lock, f"{where}/{LOCK_NAME}")
    text = read(name)
    if text is None:
        raise SourceError(
            f"{where} holds no spec, only its digest in {LOCK_NAME}; pass the spec it was "
            "compiled from instead (`netcc review OUT --spec SPEC` checks that it is)"
        )
    if sha256(text) != digest:
        raise SourceError(f"{where}/{name} does not match the spec digest in {LOCK_NAME}")
    return text, f"{where}/{name}"


def read_text(arg: str) -> tuple[bytes, str]:
    """The spec bytes and a display name for a file, `OUT` or `git:REV:PATH` argument."""
    if arg.startswith("git:"):
        rev, sep, path = arg[4:].partition(":")
        if not sep or not rev or not path:
            raise SourceError(f"{arg}: expected git:REV:PATH")
        if _git_is_tree(rev, path):
            lock = _git_show(rev, f"{path.rstrip('/')}/{LOCK_NAME}")

            def read_git(name: str) -> bytes | None:
                try:
                    return _git_show(rev, f"{path.rstrip('/')}/{name}")
                except SourceError:
                    return None

            return _from_out(lock, read_git, arg)
        return _git_show(rev, path), arg
    p = Path(arg)
    if p.is_dir():
        lock_path = p / LOCK_NAME
        if not lock_path.is_file():
            raise SourceError(f"{arg} is a directory without {LOCK_NAME}: not an OUT directory")

        def read_file(name: str) -> bytes | None:
            f = p / name
            return f.read_bytes() if f.is_file() else None

        return _from_out(lock_path.read_bytes(), read_file, arg)
    try:
        return p.read_bytes(), arg
    except OSError as e:
        raise SourceError(f"cannot read {arg}: {e.strerror}") from None


def check_out_matches(out: str, spec_text: bytes, spec_name: str) -> None:
    """Refuse a `--spec` that is not the spec `OUT` was compiled from."""
    lock = Path(out) / LOCK_NAME
    try:
        digest, _ = _lock_spec(lock.read_bytes(), str(lock))
    except OSError as e:
        raise SourceError(f"cannot read {lock}: {e.strerror}") from None
    if sha256(spec_text) != digest:
        raise SourceError(
            f"{spec_name} is not the spec {out} was compiled from (its sha256 differs from "
            f"{LOCK_NAME}); recompile, or review the spec itself"
        )


def load(arg: str, *, spec: str | None = None) -> Spec:
    """Read and validate the spec `arg` names. Raises SourceError or SpecError.

    With `spec`, `arg` must be an `OUT` directory compiled from that spec file.
    """
    if spec is not None:
        if not Path(arg).is_dir():
            raise SourceError(f"--spec goes with an OUT directory; {arg} is not one")
        text, name = read_text(spec)
        check_out_matches(arg, text, name)
    else:
        text, name = read_text(arg)
    cluster, sources = parse_spec(text, name)
    return Spec(text, name, cluster, sources)
