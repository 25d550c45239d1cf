"""netcc.loader.libbpf without a kernel: its ctypes structs match the C headers, and BpfError
keeps the errno and the verifier log."""

from __future__ import annotations

import ctypes
import errno
import shutil
import subprocess
from pathlib import Path

import pytest

from netcc.loader import libbpf
from netcc.loader.libbpf import BpfError

STRUCTS = {  # checked against the C headers
    "bpf_test_run_opts": ("bpf/bpf.h", libbpf.bpf_test_run_opts),
    "bpf_prog_info": ("linux/bpf.h", libbpf.bpf_prog_info),
    "bpf_map_info": ("linux/bpf.h", libbpf.bpf_map_info),
}


@pytest.mark.skipif(shutil.which("clang") is None, reason="needs clang to read the C headers")
def test_struct_layouts_match_headers(tmp_path: Path) -> None:
    lines = ["#include <stdio.h>", "#include <stddef.h>"]
    lines += [f"#include <{h}>" for h, _ in STRUCTS.values()]
    lines.append("int main(void) {")
    expected = []
    for name, (_, cls) in STRUCTS.items():
        lines.append(f'printf("%zu\\n", sizeof(struct {name}));')
        expected.append(ctypes.sizeof(cls))
        for fname, *_ in cls._fields_:
            if fname.startswith("_") or fname == "gpl_compatible":
                continue  # padding and bitfields
            lines.append(f'printf("%zu\\n", offsetof(struct {name}, {fname}));')
            expected.append(getattr(cls, fname).offset)
    lines.append("return 0; }")
    src, exe = tmp_path / "layout.c", tmp_path / "layout"
    src.write_text("\n".join(lines))
    subprocess.run(["clang", "-o", str(exe), str(src)], check=True, capture_output=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    got = [int(x) for x in out.split()]
    assert got == expected


def test_bpf_error_fields() -> None:
    e = BpfError(errno.EPERM, "loading x", "verifier says no")
    assert (e.errno, e.log) == (errno.EPERM, "verifier says no")
    assert "loading x" in str(e) and "Operation not permitted" in str(e)
