"""Build: compile the generated C into a BPF object with clang, reproducibly and cached.

Objects are built in a temporary directory with every source path mapped to `.`, then
stripped of DWARF (`llvm-strip -g`) while BTF stays, so the same sources give the same bytes
from any directory. Results are cached by the digest of sources, flags and clang version.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

CFLAGS = (
    "-O2",
    "-g",
    "-target",
    "bpf",
    "-mcpu=v3",
    "-fno-ident",
    "-Wall",
    "-Werror",
    "-I/usr/include/x86_64-linux-gnu",
    "-I.",
)


class BuildError(Exception):
    """clang or llvm-strip failed or is missing; the message says what to do."""


def _tool(name: str) -> str:
    for candidate in (name, *(f"{name}-{v}" for v in range(20, 13, -1))):
        path = shutil.which(candidate)
        if path:
            return path
    raise BuildError(f"{name} not found; install it (make setup installs clang and llvm)")


@cache
def clang_version() -> str:
    out = subprocess.run([_tool("clang"), "--version"], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()[0].strip() if out.stdout else "unknown"


def cache_root() -> Path:
    """`$NETCC_CACHE_DIR`, else `$XDG_CACHE_HOME/netcc`, else `~/.cache/netcc`."""
    base = os.environ.get("NETCC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "netcc"
    )
    return Path(base)


def _cache_dir() -> Path:
    return cache_root() / "objects"


def compile_objects(sources: dict[str, bytes], mains: list[str]) -> dict[str, bytes]:
    """Compile each main C file (a path in `sources`) to `<name>.o`; returns path -> bytes."""
    digest = hashlib.sha256(clang_version().encode() + repr(CFLAGS).encode())
    for path in sorted(sources):
        digest.update(path.encode() + b"\0" + hashlib.sha256(sources[path]).digest())
    key = digest.hexdigest()
    cached = _cache_dir() / key
    objects = {m[:-2] + ".o": cached / Path(m[:-2] + ".o").name for m in mains}
    if all(p.exists() for p in objects.values()):
        return {name: p.read_bytes() for name, p in objects.items()}

    with tempfile.TemporaryDirectory(prefix="netcc-build-") as tmp:
        root = Path(tmp)
        for path, data in sources.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(data)
        out = {}
        for main in mains:
            src = root / main
            obj = src.with_suffix(".o")
            cmd = [
                _tool("clang"),
                *CFLAGS,
                f"-fdebug-prefix-map={src.parent}=.",
                "-fdebug-compilation-dir=.",
                "-c",
                src.name,
                "-o",
                obj.name,
            ]
            _run(cmd, src.parent)
            _run([_tool("llvm-strip"), "-g", obj.name], src.parent)
            out[main[:-2] + ".o"] = obj.read_bytes()
    try:
        cached.mkdir(parents=True, exist_ok=True)
        for name, data in out.items():
            tmp_file = cached / (Path(name).name + ".tmp")
            tmp_file.write_bytes(data)
            tmp_file.replace(cached / Path(name).name)
    except OSError:
        pass  # a read-only cache only costs speed
    return out


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"{Path(cmd[0]).name} failed:\n{proc.stderr.strip()}")
