"""Paths the user names: shown safely in messages, read without surprises.

Every path netcc quotes in a message goes through `shown`, so a name holding a newline, a
carriage return or a terminal escape cannot forge output lines. Inputs (a spec) are read here
with a size bound and never hang on a FIFO nobody writes to. Files inside a directory netcc
reads (an `OUT`) are read without following a symlink out of it and without opening anything
that is not a regular file: that part is the contract's (`netcc.contract.files`), shared with
the loader, and the compiler's modules import it from here.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

from netcc.contract.files import (
    TooLarge,
    kind_of,
    read_beneath,
    read_upto,
    safe_relpath,
    shown,
)
from netcc.load.document import MAX_SPEC_BYTES  # one bound: the parser's

__all__ = [
    "MAX_SPEC_BYTES",
    "TooLarge",
    "kind_of",
    "read_beneath",
    "read_input",
    "safe_relpath",
    "shown",
]


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
        return read_upto(fd, limit + 1)
    finally:
        os.close(fd)
