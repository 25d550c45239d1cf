"""`netcc check`: is an artifact directory exactly what a spec compiles to?

The whole tree is compared, as `lstat` sees it: every file's bytes and mode, the kind of every
entry (a symlink or a FIFO where a file belongs
is stale), and any extra entry of any kind, empty directories included. netcc writes 0644 files
and 0755 directories; a mode counts as changed when it differs in what matters for artifacts
and survives a git checkout: the execute bits, setuid/setgid/sticky, world-writability, or
the owner's access. The group-write bit a umask of 002 adds is not a change, so a checkout on
such a machine is up to date. No symlink inside
`OUT` is followed and no FIFO is opened, so a planted one can neither mislead nor hang check.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from netcc.fsguard import read_beneath
from netcc.write.tree import DIR_MODE, FILE_MODE, MAX_ARTIFACT_BYTES, Entry, scan_tree

REGULAR, DIRECTORY = "regular file", "directory"


def stale_files(tree: dict[str, bytes], out: Path) -> list[tuple[str, str]]:
    """(path, reason) for every entry that differs, is missing, or should not be there.

    `out` itself may be a symlink to the directory (as `netcc compile -o LINK` allows).
    """
    try:
        st = os.stat(out)
    except OSError:
        return [(".", "missing directory")]
    if not stat.S_ISDIR(st.st_mode):
        return [(".", "missing directory")]
    problems = []
    if _mode_changed(stat.S_IMODE(st.st_mode), DIR_MODE):
        problems.append((".", _mode_reason(stat.S_IMODE(st.st_mode), DIR_MODE)))
    have = scan_tree(out)
    dirs = _directories(tree)
    for path in sorted(set(tree) | dirs | set(have)):
        entry = have.get(path)
        if path in tree:
            problems += [(path, why) for why in _file_problems(out, path, tree[path], entry)]
        elif path in dirs:
            problems += [(path, why) for why in _dir_problems(entry)]
        elif entry is not None:
            what = "" if entry.kind == REGULAR else f"{entry.kind} "
            problems.append((path, f"{what}not produced by this spec"))
    return problems


def _directories(tree: dict[str, bytes]) -> set[str]:
    """Every directory the tree's files imply (below OUT itself)."""
    return {p.as_posix() for path in tree for p in PurePosixPath(path).parents if p.parts}


_MEANINGFUL = 0o7000 | 0o700 | 0o111 | 0o004 | 0o002  # what a umask of 002 or 022 keeps


def _mode_changed(mode: int, want: int) -> bool:
    """Whether `mode` differs from `want` in a bit that matters (see the module's text)."""
    return (mode ^ want) & _MEANINGFUL != 0


def _mode_reason(mode: int, want: int) -> str:
    """`mode 0600, expected 0644`."""
    return f"mode {mode:04o}, expected {want:04o}"


def _file_problems(out: Path, path: str, want: bytes, entry: Entry | None) -> list[str]:
    """What is wrong with the entry where generated file `path` belongs."""
    if entry is None:
        return ["missing"]
    if entry.kind != REGULAR:
        return [f"is a {entry.kind}, expected a regular file"]
    problems = []
    if entry.size != len(want) or _read(out, path) != want:
        problems.append("differs")
    if _mode_changed(entry.mode, FILE_MODE):
        problems.append(_mode_reason(entry.mode, FILE_MODE))
    return problems


def _read(out: Path, path: str) -> bytes | None:
    """The file's bytes, read without following a link; None when that is impossible."""
    try:
        return read_beneath(out, path, MAX_ARTIFACT_BYTES)
    except OSError:
        return None


def _dir_problems(entry: Entry | None) -> list[str]:
    """What is wrong with the entry where a generated directory belongs (missing: its files
    say so)."""
    if entry is None:
        return []
    if entry.kind != DIRECTORY:
        return [f"is a {entry.kind}, expected a directory"]
    if _mode_changed(entry.mode, DIR_MODE):
        return [_mode_reason(entry.mode, DIR_MODE)]
    return []
