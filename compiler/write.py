"""Write: the only stage that touches the disk. All or nothing, via a temporary sibling."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def write_tree(tree: dict[str, bytes], out: Path) -> None:
    """Replace `out` with exactly `tree`; on any failure `out` is left as it was.

    A symlinked `out` keeps its link: the tree replaces the directory the link points to.
    """
    out = Path(out).resolve()
    parent = out.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
    old = None
    try:
        for path in sorted(tree):
            target = tmp / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tree[path])
            os.chmod(target, 0o644)
        for d in sorted({p for p in tmp.rglob("*") if p.is_dir()}):
            os.chmod(d, 0o755)
        os.chmod(tmp, 0o755)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=parent))
            old.rmdir()
            os.rename(out, old)
        os.rename(tmp, out)
    except BaseException:
        if old is not None and old.exists() and not out.exists():
            os.rename(old, out)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_tree(out: Path) -> dict[str, bytes]:
    """Every file under `out`, by relative POSIX path."""
    out = Path(out)
    return {
        p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()
    }
