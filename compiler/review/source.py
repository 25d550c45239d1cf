"""Where a spec comes from: a file, an artifact directory (`OUT`), or `git:REV:PATH`.

`OUT` holds the spec's sha256 in `netcc.lock.json`, not the spec. When `OUT` carries a copy
of the spec (`spec.yaml`, or the file the lock names under `spec.path`), it is used after its
digest is checked against the lock; otherwise the reviewer must pass the spec, and
`--spec SPEC` beside `OUT` checks that it is the one `OUT` was compiled from.
`git:REV:PATH` reads `git show REV:PATH` in the current directory's repository; PATH may name
a spec or an `OUT` directory at that revision. REV is resolved to a commit first
(`git rev-parse --verify --end-of-options REV^{commit}`) and refused when it could be an option.
Files inside an `OUT` are read without following a symlink and never from a FIFO, and a lock
file is bounded in size and checked field by field before anything it names is read.
"""

from __future__ import annotations

import posixpath
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netcc.contract.lock import (
    LOCK_NAME,
    MAX_LOCK_BYTES,
    SPEC_IN_OUT,
    LockFormatError,
    is_sha256,
    load_json_bounded,
    sha256,
)
from netcc.diagnostics import SourceMap
from netcc.frontend import parse_spec
from netcc.fsguard import MAX_SPEC_BYTES, TooLarge, read_beneath, read_input, safe_relpath, shown
from netcc.model.types import Cluster
from netcc.sources.bundle import Bundle


class SourceError(Exception):
    """The argument names no readable spec; the message says what to pass instead."""


@dataclass(frozen=True)
class Spec:
    """A spec's bytes, the name diagnostics use for it, and its validated model."""

    text: bytes
    filename: str
    cluster: Cluster
    sources: SourceMap
    bundle: Bundle | None = None  # the manifests the spec's sources named

    @property
    def sha256(self) -> str:
        return sha256(self.text)


_GIT_TIMEOUT = 60


def check_revision(rev: str) -> None:
    """Refuse a revision git could take for an option or that no ref name can hold."""
    if not rev or rev.startswith("-"):
        raise SourceError(
            f"git revision {shown(rev)} is not a revision (it must not be empty or "
            "start with '-'); pass git:REV:PATH with a commit, branch or tag as REV"
        )
    if len(rev) > 256 or any(c.isspace() or not c.isprintable() for c in rev):
        raise SourceError(
            f"git revision {shown(rev)} holds whitespace or control characters, or is longer "
            "than 256 characters; pass a commit, branch or tag"
        )


def _git(*args: str) -> subprocess.CompletedProcess[bytes]:
    """Run git in the current directory; every revision argument was checked before."""
    try:
        return subprocess.run(
            ["git", *args], capture_output=True, check=False, timeout=_GIT_TIMEOUT
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SourceError(f"cannot run git: {getattr(e, 'strerror', None) or e}") from None


def _git_error(proc: subprocess.CompletedProcess[bytes]) -> str:
    """git's last line of complaint, escaped for a message."""
    reason = proc.stderr.decode(errors="replace").strip().splitlines()
    return shown(reason[-1]) if reason else "error"


def _git_commit(rev: str) -> str:
    """The commit `rev` names, as a full object name (which git can never read as an option)."""
    check_revision(rev)
    proc = _git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
    name = proc.stdout.decode(errors="replace").strip()
    if proc.returncode != 0 or not re.fullmatch(r"[0-9a-f]{40,64}", name):
        raise SourceError(f"git: {shown(rev)} names no commit in this repository")
    return name


def _git_object(commit: str, path: str) -> str:
    """`COMMIT:PATH` for git. It starts with the commit's hex name, so git never takes it for
    an option, and git reads it from its object store, never the file system; PATH only
    must hold no control characters."""
    if not path or not path.isprintable():
        raise SourceError(f"git path {shown(path)} is empty or holds control characters")
    return f"{commit}:{path.rstrip('/') or path}"


def _git_show(rev: str, path: str) -> bytes:
    """The blob at `rev:path` (as `git show` prints it), bounded in size."""
    obj = _git_object(_git_commit(rev), path)
    size = _git("cat-file", "-s", "--end-of-options", obj)
    if size.returncode != 0:
        raise SourceError(f"git show {shown(rev)}:{shown(path)} failed: {_git_error(size)}")
    if int(size.stdout.strip() or 0) > MAX_SPEC_BYTES:
        raise SourceError(f"{shown(rev)}:{shown(path)} is larger than {MAX_SPEC_BYTES} bytes")
    proc = _git("cat-file", "blob", "--end-of-options", obj)
    if proc.returncode != 0:
        raise SourceError(f"git show {shown(rev)}:{shown(path)} failed: {_git_error(proc)}")
    return proc.stdout


def _git_is_tree(rev: str, path: str) -> bool:
    """Whether `rev:path` is a directory (an OUT, then) at that commit."""
    proc = _git("cat-file", "-t", "--end-of-options", _git_object(_git_commit(rev), path))
    return proc.returncode == 0 and proc.stdout.strip() == b"tree"


def _lock_spec(lock_text: bytes, where: str) -> tuple[str, str]:
    """(sha256, spec file name inside OUT) from a lock file; SourceError for anything else.

    Only what review needs is required (the spec's digest); a `spec.path` must be a plain
    relative path inside OUT.
    """
    try:
        doc = load_json_bounded(lock_text)
    except LockFormatError as e:
        raise SourceError(f"{where}: not a netcc lock file ({e})") from None
    spec = doc.get("spec") if isinstance(doc, dict) else None
    if not isinstance(spec, dict) or not is_sha256(spec.get("sha256")):
        raise SourceError(f"{where}: not a netcc lock file (no spec.sha256 digest)")
    name = spec.get("path", SPEC_IN_OUT)
    if not isinstance(name, str):
        raise SourceError(f"{where}: not a netcc lock file (spec.path is not a string)")
    if safe_relpath(name) is None:
        raise SourceError(
            f"{where}: spec.path {shown(name)} is not a plain relative path inside OUT; "
            "refusing to read it"
        )
    return spec["sha256"], name


def _from_out(lock: bytes, read: Callable[[str], bytes | None], where: str) -> tuple[bytes, str]:
    """The spec an OUT carries (read through `read`), checked against its lock's digest."""
    digest, name = _lock_spec(lock, f"{where}/{LOCK_NAME}")
    text = read(name)
    if text is None:
        raise SourceError(
            f"{where} holds no spec, only its digest in {LOCK_NAME}; pass the spec it was "
            "compiled from instead (`netcc review OUT --spec SPEC` checks that it is)"
        )
    if sha256(text) != digest:
        raise SourceError(f"{where}/{shown(name)} does not match the spec digest in {LOCK_NAME}")
    return text, f"{where}/{shown(name)}"


def _read_in_out(out: Path, name: str, limit: int) -> bytes | None:
    """A file inside OUT: no link followed out of it, no FIFO opened, bounded in size."""
    try:
        return read_beneath(out, name, limit)
    except TooLarge:
        raise SourceError(f"{shown(out / name)} is larger than {limit} bytes") from None
    except (OSError, ValueError) as e:
        why = getattr(e, "strerror", None) or str(e)
        raise SourceError(f"cannot read {shown(out / name)}: {why} (not a regular file?)") from None


def _read_git(arg: str) -> tuple[bytes, str]:
    """`git:REV:PATH`: a spec, or an OUT directory carrying its spec, at a revision."""
    rev, sep, path = arg[4:].partition(":")
    if not sep or not rev or not path:
        raise SourceError(f"{shown(arg)}: expected git:REV:PATH")
    if not _git_is_tree(rev, path):
        return _git_show(rev, path), shown(arg)
    base = path.rstrip("/")

    def read_git(name: str) -> bytes | None:
        try:
            return _git_show(rev, f"{base}/{name}")
        except SourceError:
            return None

    return _from_out(_git_show(rev, f"{base}/{LOCK_NAME}"), read_git, shown(arg))


def read_text(arg: str) -> tuple[bytes, str]:
    """The spec bytes and a display name for a file, `OUT` or `git:REV:PATH` argument."""
    if arg.startswith("git:"):
        return _read_git(arg)
    p = Path(arg)
    if p.is_dir():
        lock = _read_in_out(p, LOCK_NAME, MAX_LOCK_BYTES)
        if lock is None:
            raise SourceError(
                f"{shown(arg)} is a directory without {LOCK_NAME}: not an OUT directory"
            )
        return _from_out(lock, lambda name: _read_in_out(p, name, MAX_SPEC_BYTES), shown(arg))
    try:
        return read_input(p), shown(arg)  # past the bound, the parser says where
    except ValueError:
        raise SourceError(f"cannot read {shown(arg)}: not a valid path") from None
    except OSError as e:
        raise SourceError(f"cannot read {shown(arg)}: {e.strerror or e}") from None


def _git_tree(rev: str, path: str, listing: bool = False) -> Any:
    """`kind` of `rev:path` ("file", "dir", "missing"), or with `listing` the files below it."""
    obj = _git_object(_git_commit(rev), path)
    if not listing:
        proc = _git("cat-file", "-t", "--end-of-options", obj)
        kind = proc.stdout.strip()
        return (
            {b"tree": "dir", b"blob": "file"}.get(kind, "missing")
            if proc.returncode == 0
            else "missing"
        )
    proc = _git("ls-tree", "-r", "--name-only", "-z", "--end-of-options", obj)
    if proc.returncode != 0:
        raise SourceError(f"git ls-tree {shown(rev)}:{shown(path)} failed: {_git_error(proc)}")
    return sorted(n.decode(errors="replace") for n in proc.stdout.split(b"\0") if n)


def bundle_of(arg: str, text: bytes, name: str) -> Bundle | None:
    """The manifests the spec `arg` names as sources: read beside the spec file, at the same
    git revision, or (an OUT) from the copy OUT carries, checked against its lock."""
    from netcc.sources.bundle import SOURCES_IN_OUT
    from netcc.sources.bundle import SourceError as BundleError
    from netcc.sources.readers import DiskReader, GitReader, bundle_for

    try:
        if arg.startswith("git:"):
            rev, _, path = arg[4:].partition(":")
            if _git_is_tree(rev, path):
                data = (
                    _git_show(rev, f"{path.rstrip('/')}/{SOURCES_IN_OUT}")
                    if (_git_tree(rev, f"{path.rstrip('/')}/{SOURCES_IN_OUT}") == "file")
                    else None
                )
                return Bundle.from_json(data) if data is not None else None
            reader = GitReader(rev, posixpath.dirname(path), _git_show, _git_tree)
            return bundle_for(text, name, reader, stdin=False)
        p = Path(arg)
        if p.is_dir():
            data = _read_in_out(p, SOURCES_IN_OUT, MAX_SPEC_BYTES * 4)
            return Bundle.from_json(data) if data is not None else None
        return bundle_for(text, name, DiskReader(p.parent), stdin=False)
    except BundleError as e:
        raise SourceError(str(e)) from None


def check_out_matches(out: str, spec_text: bytes, spec_name: str) -> None:
    """Refuse a `--spec` that is not the spec `OUT` was compiled from."""
    lock = _read_in_out(Path(out), LOCK_NAME, MAX_LOCK_BYTES)
    if lock is None:
        raise SourceError(f"{shown(out)} is a directory without {LOCK_NAME}: not an OUT directory")
    digest, _ = _lock_spec(lock, f"{shown(out)}/{LOCK_NAME}")
    if sha256(spec_text) != digest:
        raise SourceError(
            f"{spec_name} is not the spec {shown(out)} was compiled from (its sha256 differs "
            f"from {LOCK_NAME}); recompile, or review the spec itself"
        )


def load(arg: str, *, spec: str | None = None) -> Spec:
    """Read and validate the spec `arg` names. Raises SourceError or SpecError.

    With `spec`, `arg` must be an `OUT` directory compiled from that spec file.
    """
    if spec is not None:
        if not Path(arg).is_dir():
            raise SourceError(f"--spec goes with an OUT directory; {shown(arg)} is not one")
        text, name = read_text(spec)
        check_out_matches(arg, text, name)
        bundle = bundle_of(spec, text, name)
    else:
        text, name = read_text(arg)
        bundle = bundle_of(arg, text, name)
    cluster, sources = parse_spec(text, name, bundle)
    return Spec(text, name, cluster, sources, bundle)
