"""Hostile working trees for command-line tests, and snapshots that see every change in them.

A case directory holds `tree/` (where netcc runs: a git repository with a valid spec, a bad
one, a compiled OUT, a fake OUT whose lock is not a netcc lock, someone's directory, an empty
one, a FIFO, symlinks to a decoy directory outside the tree, dangling and looping links) and
`decoy/` (what links point to outside the tree). `snapshot` records every entry of both as
`lstat` sees it (kind, mode, bytes, link target) without following a link or opening a FIFO,
so that any file a command touched outside what it was asked to write shows in a diff.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from netcc.contract.lock import LOCK_NAME

ROOT = Path(__file__).resolve().parents[2]
MINIMAL_SPEC = (ROOT / "tests" / "golden" / "specs" / "minimal.yaml").read_bytes()
BAD_SPEC = b"apiVersion: netcc.io/v1alpha1\nkind: ClusterNetwork\nspec: {podCIDR: nope}\n"
Entry = tuple[str, int, bytes | str | None]


@contextmanager
def cache_dir(path: Path) -> Iterator[None]:
    """NETCC_CACHE_DIR set to `path` for in-process compiles, restored afterwards."""
    old = os.environ.get("NETCC_CACHE_DIR")
    os.environ["NETCC_CACHE_DIR"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("NETCC_CACHE_DIR", None)
        else:
            os.environ["NETCC_CACHE_DIR"] = old


def snapshot(*roots: Path) -> dict[str, Entry]:
    """Every entry under `roots` (themselves included), by absolute path, never following a
    link or opening anything but a regular file."""
    found: dict[str, Entry] = {}
    pending = [str(r) for r in roots]
    while pending:
        path = pending.pop()
        st = os.lstat(path)
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            found[path] = ("link", 0, os.readlink(path))
        elif stat.S_ISREG(st.st_mode):
            with open(path, "rb") as f:
                found[path] = ("file", mode, f.read())
        elif stat.S_ISDIR(st.st_mode):
            found[path] = ("dir", mode, None)
            pending += [os.path.join(path, name) for name in os.listdir(path)]
        else:
            found[path] = (f"special:{stat.S_IFMT(st.st_mode):o}", mode, None)
    return found


def changes(before: dict[str, Entry], after: dict[str, Entry]) -> list[str]:
    """Paths added, removed or changed between two snapshots, sorted."""
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))


def git(cwd: Path, *args: str) -> str:
    """Run git quietly in `cwd` with a fixed identity; its stdout."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, check=True)
    return proc.stdout.decode()


def make_template(base: Path, compiled: dict[str, bytes]) -> Path:
    """The part of a case tree that can be copied (no FIFOs, no links): built once."""
    from netcc.write.tree import write_tree

    tree = base / "template"
    tree.mkdir()
    (tree / "spec.yaml").write_bytes(MINIMAL_SPEC)
    (tree / "bad.yaml").write_bytes(BAD_SPEC)
    (tree / "notes.txt").write_text("user notes\n")
    (tree / "userdir" / "sub").mkdir(parents=True)
    (tree / "userdir" / "file.txt").write_text("mine\n")
    (tree / "emptydir").mkdir()
    (tree / "fake-out").mkdir()
    (tree / "fake-out" / LOCK_NAME).write_text('{"lockVersion": 1}\n')
    (tree / "fake-out" / "data").write_text("precious\n")
    write_tree(compiled, tree / "out")
    git(tree, "init", "-q")
    git(tree, "add", "spec.yaml", "out")
    git(tree, "commit", "-qm", "one")
    git(tree, "tag", "v1")
    git(tree, "gc", "-q", "--prune=now")  # one pack instead of a directory per object
    shutil.rmtree(tree / ".git" / "hooks")
    return tree


def make_case(template: Path, case: Path) -> tuple[Path, Path]:
    """A fresh case directory from `template`: (tree, decoy), with FIFOs and links added."""
    tree, decoy = case / "tree", case / "decoy"
    shutil.copytree(template, tree, symlinks=True)
    (decoy / "sub").mkdir(parents=True)
    (decoy / "secret.txt").write_text("decoy secret\n")
    (decoy / "sub" / "file").write_text("decoy file\n")
    os.mkfifo(tree / "fifo")
    os.mkfifo(tree / "out" / "planted-fifo")
    os.mkfifo(decoy / "fifo")
    os.symlink(decoy, tree / "link-decoy")
    os.symlink(decoy / "secret.txt", tree / "link-file")
    os.symlink(tree / "nowhere", tree / "dangling")
    os.symlink("loop", tree / "loop")
    os.symlink("out", tree / "link-out")
    os.symlink("userdir", tree / "link-userdir")
    os.symlink(decoy / "secret.txt", tree / "out" / "spec-link.yaml")
    return tree, decoy
