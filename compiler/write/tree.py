"""Write: the only stage that touches the disk. All or nothing, via a temporary sibling.

`OUT` is replaced only when it is a directory netcc wrote (it holds a valid `netcc.lock.json`)
or an empty directory, or created when it does not exist. Anything else is refused before
anything is touched: a file, a directory of someone else's, the current directory or one of
its parents, `/`, a directory holding the spec, a symlink to anything but a netcc output.
A symlinked `OUT` keeps its link: the tree replaces the directory the link points to.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from netcc.contract.files import (
    MAX_ARTIFACT_BYTES,
    Entry,
    TooLarge,
    kind_of,
    read_beneath,
    read_regular,
    safe_relpath,
    scan_tree,
    shown,
)
from netcc.contract.lock import LOCK_NAME, MAX_LOCK_BYTES, LockFormatError, parse_lock

FILE_MODE, DIR_MODE = 0o644, 0o755
# Reading a tree back is the contract's (`netcc.contract.files`); the compiler imports it here.
__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "MAX_ARTIFACT_BYTES",
    "Entry",
    "OutputError",
    "not_netcc_output",
    "prepare_output",
    "read_regular",
    "read_tree",
    "scan_tree",
    "write_tree",
]
_CHOOSE = "name a new or empty directory, or one netcc wrote"


class OutputError(Exception):
    """OUT names something netcc must not replace; the message says what to choose instead."""


def prepare_output(out: str | os.PathLike[str], protect: Iterable[str | Path] = ()) -> Path:
    """The real directory that `out` names, once it is sure netcc may create or replace it.

    Raises OutputError, having touched nothing, for anything else. `protect` lists paths
    (the spec) that OUT must not be or contain.
    """
    text = os.fspath(out)
    if not text:
        raise OutputError(f"OUT is empty (an unset variable?); {_CHOOSE}")
    if "\0" in text:
        raise OutputError(f"OUT holds a NUL byte; {_CHOOSE}")
    real = Path(os.path.realpath(text))
    _refuse_enclosing(text, real, protect)
    try:
        st = os.lstat(real)
    except (FileNotFoundError, NotADirectoryError):
        return _creatable(text, real)
    except OSError as e:
        raise OutputError(f"cannot inspect OUT {shown(text)}: {e.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise OutputError(
            f"{shown(text)} exists and is a {kind_of(st.st_mode)}, not a directory; {_CHOOSE}"
        )
    if os.path.ismount(real):
        raise OutputError(f"{shown(text)} is a mount point; name a directory inside it")
    return _replaceable(text, real)


def _through_link(text: str, real: Path) -> bool:
    """Whether `text` reaches `real` through a symlink at its last component (or `..` past one).

    Links in the directories above are the user's own layout and do not count.
    """
    lexical = os.path.normpath(os.path.abspath(text))
    parent, name = os.path.split(lexical)
    return Path(os.path.realpath(parent)) / name != real if name else False


def _refuse_enclosing(text: str, real: Path, protect: Iterable[str | Path]) -> None:
    """Refuse `/`, the current directory and its parents, and anything holding a protected path."""
    if real == Path(real.anchor):
        raise OutputError(f"{shown(text)} is the root directory; {_CHOOSE}")
    try:
        cwd = Path(os.path.realpath(os.getcwd()))
    except OSError:
        cwd = None
    if cwd is not None and (real == cwd or real in cwd.parents):
        raise OutputError(
            f"{shown(text)} is the current directory or one of its parents; "
            "name a new or empty directory below it"
        )
    for path in protect:
        for candidate in {Path(os.path.realpath(path)), Path(os.path.abspath(path))}:
            if real == candidate:
                raise OutputError(f"{shown(text)} is the spec itself; {_CHOOSE}")
            if real in candidate.parents:
                raise OutputError(
                    f"{shown(text)} holds the spec {shown(path)}; choose a directory "
                    "that does not contain it (copy the spec elsewhere first)"
                )


def _creatable(text: str, real: Path) -> Path:
    """`real` does not exist: fine unless `text` is a dangling link or a parent is no dir."""
    if os.path.lexists(text) or _through_link(text, real):
        raise OutputError(
            f"{shown(text)} is a symlink (or goes through one) to {shown(real)}, which does "
            "not exist; netcc follows a link only to a directory it wrote: pass a real directory"
        )
    ancestor = real.parent
    while not os.path.lexists(ancestor):
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(f"cannot create OUT {shown(text)}: {shown(ancestor)} is not a directory")
    return real


def _replaceable(text: str, real: Path) -> Path:
    """`real` is a directory: fine when netcc wrote it, or when it is empty and no link."""
    reason = not_netcc_output(real)
    if reason is None:
        return real
    if _through_link(text, real):
        raise OutputError(
            f"{shown(text)} is a symlink (or goes through one) to {shown(real)}, which is not "
            f"a netcc output ({reason}); netcc follows a link only to a directory it wrote: "
            "pass a new or empty directory instead"
        )
    try:
        with os.scandir(real) as entries:
            empty = next(entries, None) is None
    except OSError as e:
        raise OutputError(f"cannot read OUT {shown(text)}: {e.strerror}") from None
    if not empty:
        raise OutputError(
            f"{shown(text)} exists and is not a netcc output ({reason}); "
            "choose an empty or new directory"
        )
    return real


def not_netcc_output(directory: Path) -> str | None:
    """None when `directory` holds a valid netcc lock file; otherwise why it does not."""
    try:
        data = read_beneath(directory, LOCK_NAME, MAX_LOCK_BYTES)
    except TooLarge:
        return f"{LOCK_NAME} is too large to be a netcc lock file"
    except OSError as e:
        return f"{LOCK_NAME} is no regular file ({e.strerror})"
    if data is None:
        return f"no {LOCK_NAME}"
    try:
        parse_lock(data)
    except LockFormatError as e:
        return f"{LOCK_NAME} is not a netcc lock file: {e}"
    return None


def write_tree(
    tree: dict[str, bytes], out: str | os.PathLike[str], protect: Iterable[str | Path] = ()
) -> bool:
    """Replace `out` with exactly `tree`; on any failure `out` is left as it was. False when
    `out` holds exactly `tree` already (as `netcc check` compares): then nothing is written.

    `out` must pass `prepare_output` (OutputError otherwise, nothing touched). Parent
    directories are created as needed and removed again when the write fails.
    """
    _check_tree_paths(tree)
    protect = list(protect)
    real = prepare_output(out, protect)
    if _holds(real, tree):
        return False
    created = _make_parents(real.parent)
    tmp = old = None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{real.name}.tmp-", dir=real.parent))
        _fill(tmp, tree)
        if prepare_output(out, protect) != real:  # changed while we wrote: touch nothing
            raise OutputError(f"OUT {shown(os.fspath(out))} changed while netcc wrote it")
        if os.path.lexists(real):
            old = Path(tempfile.mkdtemp(prefix=f".{real.name}.old-", dir=real.parent))
            old.rmdir()
            os.rename(real, old)
        os.rename(tmp, real)
    except BaseException:
        if old is not None and os.path.lexists(old) and not os.path.lexists(real):
            os.rename(old, real)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        _remove_created(created)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return True


def _holds(real: Path, tree: dict[str, bytes]) -> bool:
    """Whether the netcc output `real` is `tree` already: reading it back costs far less
    than writing thousands of files again (the unchanged-spec recompile)."""
    from netcc.write.check import stale_files  # check reads trees as this module does

    if not os.path.isdir(real) or not_netcc_output(real) is not None:
        return False
    try:
        return not stale_files(tree, real)
    except OSError:
        return False


def _check_tree_paths(tree: dict[str, bytes]) -> None:
    """Every artifact path is plain and relative: a tree can never write outside OUT."""
    for path in tree:
        if safe_relpath(path) is None:
            raise ValueError(f"artifact path {shown(path)} is not a plain relative path")


def _make_parents(parent: Path) -> list[Path]:
    """Create the missing directories down to `parent`; the ones created, outermost first."""
    missing = []
    while not os.path.lexists(parent):
        missing.append(parent)
        parent = parent.parent
    created = []
    try:
        for d in reversed(missing):
            os.mkdir(d)
            created.append(d)
    except BaseException:
        _remove_created(created)
        raise
    return created


def _remove_created(created: list[Path]) -> None:
    """Remove the directories `_make_parents` created, innermost first, if still empty."""
    for d in reversed(created):
        with contextlib.suppress(OSError):
            os.rmdir(d)


def _fill(tmp: Path, tree: dict[str, bytes]) -> None:
    """Write `tree` into the fresh directory `tmp`: files 0644, directories 0755."""
    for path in sorted(tree):
        target = tmp / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(tree[path])
        os.chmod(target, FILE_MODE)
    for d in sorted({p for p in tmp.rglob("*") if p.is_dir()}):
        os.chmod(d, DIR_MODE)
    os.chmod(tmp, DIR_MODE)


# --- reading a tree back, as it is on disk ---------------------------------------------------


def read_tree(out: str | os.PathLike[str]) -> dict[str, bytes]:
    """Every regular file under `out`, by relative POSIX path (symlinks and FIFOs skipped)."""
    return {
        path: read_regular(os.path.join(out, path))
        for path, entry in scan_tree(out).items()
        if entry.kind == "regular file"
    }
