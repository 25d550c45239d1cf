"""Mounting the BPF filesystem, where maps and programs are pinned."""

from __future__ import annotations

import ctypes
import os
import re

BPF_FS_TYPE = "bpf"


def _unescape(field: str) -> str:
    """Undo the octal escapes (\\040 for a space...) of /proc/self/mountinfo."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def is_bpffs(path: str = "/sys/fs/bpf") -> bool:
    """True if a bpf filesystem is mounted exactly at `path`."""
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            mount_point = _unescape(left.split()[4])
            fstype = right.split()[0] if right else ""
            if mount_point == target and fstype == BPF_FS_TYPE:
                return True
    return False


def ensure_bpffs(path: str = "/sys/fs/bpf") -> bool:
    """Mount bpffs at `path` unless it is already there; True if this call mounted it."""
    if os.path.isdir(path) and is_bpffs(path):
        return False
    os.makedirs(path, exist_ok=True)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_void_p]
    ret = libc.mount(b"bpf", os.fsencode(path), b"bpf", 0, b"mode=0700")
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mounting bpffs at {path}: {os.strerror(err)}", path)
    return True
