"""Fixtures for the loader tests: compiled test objects, loaded objects, bpffs pin dirs.

Which tests here need the kernel (and skip without it) is decided in tests/conftest.py."""

from __future__ import annotations

import platform
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from netcc.loader import bpffs
from netcc.loader.libbpf import BpfObject
from netcc.loader.mapdata import Layout

DATA = Path(__file__).parent / "data"
CLANG = shutil.which("clang")


def compile_bpf(src: Path, out_dir: Path) -> Path:
    """Build a BPF object with BTF (-g)."""
    out = out_dir / (src.stem + ".o")
    arch_inc = f"/usr/include/{platform.machine()}-linux-gnu"
    cmd = [CLANG or "clang", "-O2", "-g", "-target", "bpf", f"-I{arch_inc}", "-Wall"]
    subprocess.run([*cmd, "-c", str(src), "-o", str(out)], check=True, capture_output=True)
    return out


@pytest.fixture(scope="session")
def objs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """The test objects compiled once into a temporary directory, removed afterwards."""
    out = tmp_path_factory.mktemp("bpf")
    try:
        yield {name: compile_bpf(DATA / f"{name}.c", out) for name in ("test_prog", "bad_prog")}
    finally:
        shutil.rmtree(out, ignore_errors=True)


@pytest.fixture
def obj(objs: dict[str, Path]) -> Iterator[BpfObject]:
    """test_prog.o, loaded, closed after the test."""
    o = BpfObject.open(objs["test_prog"])
    try:
        o.load()
        yield o
    finally:
        o.close()


@pytest.fixture
def pin_dir() -> Iterator[Path]:
    """A fresh directory under /sys/fs/bpf, removed with all its pins afterwards."""
    bpffs.ensure_bpffs()
    path = Path("/sys/fs/bpf") / f"netcc-test-{uuid.uuid4().hex[:12]}"
    path.mkdir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def layout() -> Layout:
    """The layout document describing test_prog.c's maps."""
    return Layout.from_file(DATA / "layout.json")


@pytest.fixture
def tmp_path(tmp_path: Path) -> Iterator[Path]:
    """pytest's tmp_path, removed after the test instead of kept for inspection."""
    try:
        yield tmp_path
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)
