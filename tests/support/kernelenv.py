"""Whether this machine can run kernel tests, and a compile helper for them."""

from __future__ import annotations

import os
import shutil
from functools import cache
from pathlib import Path

from netcc.loader.bpffs import ensure_bpffs
from netcc.loader.libbpf import bpf_unavailable_reason
from netcc.pipeline import compile_spec
from netcc.write.tree import write_tree


@cache
def kernel_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root: loads BPF programs into the kernel"
    if shutil.which("clang") is None:
        return "needs clang to build the datapath"
    reason = bpf_unavailable_reason()
    if reason is None:
        ensure_bpffs()
    return reason


def compile_to(spec_text: str | bytes, out: Path, name: str = "spec.yaml") -> Path:
    """Compile a spec into `out` the way `netcc compile` does; returns `out`."""
    data = spec_text.encode() if isinstance(spec_text, str) else spec_text
    write_tree(compile_spec(data, name), out)
    return out
