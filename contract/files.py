"""Reading files inside a directory netcc did not necessarily write (an `OUT`), without surprises.

Whoever reads OUT (the loader, `netcc check`, `review`, the compiler replacing it) reads it the
way these functions do: no symlink below the directory is followed out of it, nothing that is
not a regular file is opened (a FIFO would hang the reader, a device have an effect), every
read is bounded in size, and artifact paths are plain relative POSIX paths. Paths quoted in
messages go through `shown`, so a name holding a newline or a terminal escape cannot forge
output lines.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from netcc.contract.text import escape

MAX_ARTIFACT_BYTES = 1 << 30  # the largest artifact any reader of OUT accepts


class TooLarge(OSError):
    """A file is larger than the bound its reader accepts."""


def shown(path: object) -> str:
    """`path` as text for a message: unprintable characters escaped, `''` when empty.

    The escaping is `netcc.contract.text.escape`, the one used for every spec string:
    printable text (non-ASCII letters included) is kept, a newline becomes `\\n`, an escape
    `\\x1b`, an undecodable byte from the command line (a surrogate) `\\udcff`; escaping twice
    changes nothing.
    """
    text = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
    return escape(text) if text else "''"


def kind_of(mode: int) -> str:
    """What a file mode describes, in words: "regular file", "symlink", "FIFO", ..."""
    for test, name in (
        (stat.S_ISREG, "regular file"),
        (stat.S_ISDIR, "directory"),
        (stat.S_ISLNK, "symlink"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return name
    return "special file"


def safe_relpath(rel: object) -> PurePosixPath | None:
    """`rel` as a relative POSIX path of plain names, or None (absolute, `..`, empty, ...)."""
    if not isinstance(rel, str) or not rel or "\0" in rel or rel.startswith("/"):
        return None
    parts = rel.split("/")
    if any(p in ("", ".", "..") or not p.isprintable() for p in parts):
        return None
    return PurePosixPath(rel)


def read_upto(fd: int, size: int) -> bytes:
    """Read `fd` to its end or until `size` bytes, whichever comes first."""
    chunks, total = [], 0
    while total < size and (chunk := os.read(fd, min(1 << 20, size - total))):
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _read_bounded(fd: int, limit: int, path: object) -> bytes:
    """Read `fd` to its end; TooLarge past `limit` bytes."""
    data = read_upto(fd, limit + 1)
    if len(data) > limit:
        raise TooLarge(errno.EFBIG, f"larger than {limit} bytes", str(path))
    return data


def read_beneath(root: str | Path, rel: str, limit: int) -> bytes | None:
    """The bytes of regular file `rel` inside directory `root`, or None when it is missing.

    `root` itself may be a link (the user named it); below it no symlink is followed, a
    FIFO or device is never opened for reading, and `rel` must be a plain relative path
    (ValueError otherwise). Anything there that is not a regular file raises OSError, more
    than `limit` bytes TooLarge.
    """
    path = safe_relpath(rel)
    if path is None:
        raise ValueError(f"{shown(rel)} is not a plain relative path")
    nofollow = os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        dirfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        for part in path.parts[:-1]:
            try:
                sub = os.open(part, os.O_RDONLY | os.O_DIRECTORY | nofollow, dir_fd=dirfd)
            except FileNotFoundError:
                return None
            os.close(dirfd)
            dirfd = sub
        try:
            st = os.stat(path.name, dir_fd=dirfd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode):  # never open a FIFO or a device: no hang, no effect
            raise OSError(errno.EINVAL, f"is a {kind_of(st.st_mode)}", str(Path(root) / rel))
        fd = os.open(path.name, os.O_RDONLY | os.O_NONBLOCK | nofollow, dir_fd=dirfd)
    finally:
        os.close(dirfd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(Path(root) / rel))
        return _read_bounded(fd, limit, Path(root) / rel)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Entry:
    """One entry under a directory, as `lstat` sees it (links are never followed)."""

    kind: str  # kind_of: "regular file", "directory", "symlink", "FIFO", ...
    mode: int  # permission bits
    size: int


def scan_tree(out: str | os.PathLike[str]) -> dict[str, Entry]:
    """Every entry below `out`, of any kind, by relative POSIX path; no link is followed.

    `out` itself may be a link to a directory (the user named it).
    """
    found: dict[str, Entry] = {}
    pending = [""]
    while pending:
        rel = pending.pop()
        with os.scandir(os.path.join(out, rel) if rel else out) as entries:
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                path = f"{rel}/{entry.name}" if rel else entry.name
                found[path] = Entry(kind_of(st.st_mode), stat.S_IMODE(st.st_mode), st.st_size)
                if stat.S_ISDIR(st.st_mode):
                    pending.append(path)
    return dict(sorted(found.items()))


def read_regular(path: str | os.PathLike[str], limit: int = MAX_ARTIFACT_BYTES) -> bytes:
    """The bytes of `path` if it is a regular file and no symlink; never opens a FIFO."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{shown(os.fspath(path))}: not a regular file")
        chunks, total = [], 0
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise TooLarge(f"{shown(os.fspath(path))}: larger than {limit} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)
