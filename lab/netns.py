"""Named network namespaces, in-process: create, enter, remove, as `ip netns` does.

Python 3.11 has no `os.setns`, so this goes to libc through ctypes. Entering a namespace
changes only the calling thread's network namespace (setns(2) with CLONE_NEWNET), and the
mount namespace is never touched, so bpffs pins made while inside stay visible to everyone
(unlike `ip netns exec`, which remounts /sys).
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress

NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
MS_REC, MS_BIND, MS_SHARED = 0x4000, 0x1000, 1 << 20
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def _fail(what: str, path: str | None = None) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}", path)


def netns_path(name: str) -> str:
    return os.path.join(NETNS_DIR, name)


def exists(name: str) -> bool:
    return os.path.exists(netns_path(name))


def list_netns(prefix: str = "") -> list[str]:
    """Names under /run/netns starting with `prefix`."""
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace behind `fd`."""
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        raise _fail("setns")


def _share_netns_dir() -> None:
    """Make /run/netns a shared mount point, as iproute2 does, so binds propagate."""
    os.makedirs(NETNS_DIR, mode=0o755, exist_ok=True)
    if _libc.mount(b"", NETNS_DIR.encode(), b"none", MS_SHARED | MS_REC, None) == 0:
        return
    if _libc.mount(NETNS_DIR.encode(), NETNS_DIR.encode(), b"none", MS_BIND | MS_REC, None):
        raise _fail("bind-mounting /run/netns", NETNS_DIR)
    if _libc.mount(b"", NETNS_DIR.encode(), b"none", MS_SHARED | MS_REC, None):
        raise _fail("sharing /run/netns", NETNS_DIR)


_shared = False


def create(name: str) -> None:
    """Create the named namespace (EEXIST if the name is taken). The caller stays where it was."""
    global _shared
    if not _shared:
        _share_netns_dir()
        _shared = True
    path = netns_path(name)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.unshare(CLONE_NEWNET) != 0:
            raise _fail("unshare", path)
        try:
            if _libc.mount(b"/proc/thread-self/ns/net", path.encode(), b"none", MS_BIND, None):
                raise _fail("binding the namespace", path)
        finally:
            setns(home)
    except BaseException:
        with suppress(OSError):
            os.unlink(path)
        raise
    finally:
        os.close(home)


def remove(name: str) -> bool:
    """Unmount and unlink the named namespace; False if it did not exist."""
    path = netns_path(name)
    if not os.path.exists(path):
        return False
    if _libc.umount2(path.encode(), MNT_DETACH) != 0 and ctypes.get_errno() != errno.EINVAL:
        raise _fail("unmounting", path)
    os.unlink(path)
    return True


def inode(name: str) -> int:
    """The namespace's inode number (what /proc/PID/ns/net links to)."""
    return os.stat(netns_path(name)).st_ino


@contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the body inside the named namespace; always return to the original one."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            setns(home)
    finally:
        os.close(home)


def pids_in(inodes: set[int]) -> list[int]:
    """Processes whose network namespace is one of `inodes`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino in inodes:
                found.append(int(entry))
        except OSError:
            continue
    return found
