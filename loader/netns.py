"""Entering network namespaces in-process with setns(2).

Python 3.11 has no `os.setns`, so this goes through libc. setns changes the namespace of the
calling thread only; sockets keep the namespace they were created in, so open netlink
sockets (pyroute2 `IPRoute`) inside the `with` block. Unlike `ip netns exec`, nothing is
remounted: bpffs pins made inside stay visible to everyone.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = Path("/run/netns")

_libc: ctypes.CDLL | None = None


def _setns(fd: int, nstype: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
        _libc.setns.restype = ctypes.c_int
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def netns_path(name_or_path: str | Path) -> Path:
    """`/run/netns/NAME` for a name (as `ip netns add` makes), or the path itself."""
    text = str(name_or_path)
    return Path(text) if "/" in text else NETNS_RUN_DIR / text


def current_netns() -> tuple[int, int]:
    """(st_dev, st_ino) of the calling thread's network namespace: its identity."""
    st = os.stat("/proc/thread-self/ns/net")
    return st.st_dev, st.st_ino


def netns_id(name_or_path: str | Path) -> tuple[int, int]:
    """(st_dev, st_ino) of a named or bind-mounted network namespace."""
    st = os.stat(netns_path(name_or_path))
    return st.st_dev, st.st_ino


@contextmanager
def enter_netns(name_or_path: str | Path) -> Iterator[None]:
    """Run the block in another network namespace (this thread only), then come back even if
    the block raises."""
    target = os.open(netns_path(name_or_path), os.O_RDONLY | os.O_CLOEXEC)
    try:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except BaseException:
        os.close(target)
        raise
    try:
        _setns(target, CLONE_NEWNET)
        try:
            yield
        finally:
            _setns(home, CLONE_NEWNET)
    finally:
        os.close(target)
        os.close(home)
