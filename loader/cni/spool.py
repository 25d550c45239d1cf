"""The DEL spool: DELs the shim recorded while the daemon was unreachable.

The shim writes `<socket dir>/pending-del/<containerID>-<ifname>.json` (or `del-<digest>.json`
when that name is taken or too long) atomically: a temporary `.tmp-*` file, synced, renamed.
Each file holds the request exactly as it would have gone over the socket. The daemon reads
them by content, never by name.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from netcc.loader.cni.protocol import MAX_REQUEST_BYTES

SPOOL_DIR = "pending-del"
BAD_SUFFIX = ".bad"


def spool_dir(socket_path: Path) -> Path:
    """Where the shim spools DELs for the daemon serving `socket_path`."""
    return Path(socket_path).parent / SPOOL_DIR


def pending(directory: Path) -> Iterator[Path]:
    """The spooled requests, oldest name first (temporary and set-aside files excluded)."""
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return
    for name in names:
        if name.endswith(".json") and not name.startswith("."):
            yield directory / name


def read(path: Path) -> bytes | None:
    """A spooled request's bytes; None when it is gone (handled concurrently). Symlinks,
    non-regular and oversized files raise OSError."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{path}: not a regular file")
        data = f.read(MAX_REQUEST_BYTES + 1)
    if len(data) > MAX_REQUEST_BYTES:
        raise OSError(f"{path}: larger than {MAX_REQUEST_BYTES} bytes")
    return data


def set_aside(path: Path) -> Path:
    """Keep a file the daemon cannot use out of the way (`NAME.bad`), for an operator."""
    target = path.with_name(path.name + BAD_SUFFIX)
    os.replace(path, target)
    return target


def remove(path: Path) -> None:
    """Forget a handled request (already gone is fine)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
