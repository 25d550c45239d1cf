"""Paths the user names: shown safely in messages, read without surprises.

Every path netcc quotes in a message goes through `shown`, so a name holding a newline, a
carriage return or a terminal escape cannot forge output lines. Inputs (a spec) are read with
a size bound and never hang on a FIFO nobody writes to; files inside a directory netcc reads
(an `OUT`) are read without following a symlink out of it and without opening anything that is
not a regular file.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path, PurePosixPath

from netcc.diagnostics import escape
from netcc.load.document import MAX_SPEC_BYTES  # one bound: the parser's


class TooLarge(OSError):
    """A file is larger than the bound its reader accepts."""


def shown(path: object) -> str:
    """`path` as text for a message: unprintable characters escaped, `''` when empty.

    The escaping is `netcc.diagnostics.escape`, the one used for every spec string: printable
    text (non-ASCII letters included) is kept, a newline becomes `\\n`, an escape `\\x1b`, an
    undecodable byte from the command line (a surrogate) `\\udcff`; escaping twice changes
    nothing.
    """
    text = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
    return escape(text) if text else "''"


def read_input(path: str | Path, limit: int = MAX_SPEC_BYTES) -> bytes:
    """The bytes of an input file the user named (links followed: the user chose them).

    A FIFO or a pipe (`<(...)`, `/dev/stdin`) is read to its end, but one that no process
    writes to reads as empty instead of blocking forever. Reading stops after `limit + 1`
    bytes (`/dev/zero` ends there), so that the parser reports the size, located where the
    bound is crossed (`netcc.load.document.MAX_SPEC_BYTES` is the same bound). A directory raises
    IsADirectoryError.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        return _read_upto(fd, limit + 1)
    finally:
        os.close(fd)


def _read_upto(fd: int, size: int) -> bytes:
    """Read `fd` to its end or until `size` bytes, whichever comes first."""
    chunks, total = [], 0
    while total < size and (chunk := os.read(fd, min(1 << 20, size - total))):
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _read_bounded(fd: int, limit: int, path: object) -> bytes:
    """Read `fd` to its end; TooLarge past `limit` bytes."""
    data = _read_upto(fd, limit + 1)
    if len(data) > limit:
        raise TooLarge(errno.EFBIG, f"larger than {limit} bytes", str(path))
    return data


def safe_relpath(rel: object) -> PurePosixPath | None:
    """`rel` as a relative POSIX path of plain names, or None (absolute, `..`, empty, ...)."""
    if not isinstance(rel, str) or not rel or "\0" in rel or rel.startswith("/"):
        return None
    parts = rel.split("/")
    if any(p in ("", ".", "..") or not p.isprintable() for p in parts):
        return None
    return PurePosixPath(rel)


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
