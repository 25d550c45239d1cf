"""`netcc check`: is an artifact directory exactly what a spec compiles to?"""

from __future__ import annotations

from pathlib import Path

from netcc.write import read_tree


def stale_files(tree: dict[str, bytes], out: Path) -> list[tuple[str, str]]:
    """(path, reason) for every file that differs, is missing, or should not be there."""
    if not Path(out).is_dir():
        return [(".", "missing directory")]
    have = read_tree(out)
    problems = []
    for path in sorted(set(tree) | set(have)):
        if path not in have:
            problems.append((path, "missing"))
        elif path not in tree:
            problems.append((path, "not produced by this spec"))
        elif have[path] != tree[path]:
            problems.append((path, "differs"))
    return problems
