"""netcc.write.tree (atomic replace), netcc.contract.lock and netcc.write.check."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

import netcc.write.tree
from netcc.contract.lock import (
    LOCK_NAME,
    LockError,
    LockFormatError,
    make_lock,
    parse_lock,
    sha256,
    verify_lock,
)
from netcc.write.check import stale_files
from netcc.write.tree import OutputError, prepare_output, read_tree, write_tree

FILES = {
    "a.txt": b"alpha\n",
    "bpf/datapath.c": b"int x;\n",
    "bpf/lib/common.h": b"/* c */\n",
    "nodes/n1/maps/m.json": b"{}\n",
}
# A tree as netcc writes it: with its lock, so that netcc may replace it later.
TREE = {**FILES, LOCK_NAME: make_lock(FILES, b"spec", "0.0.0", "clang 0")}


def _snapshot(path: Path) -> dict[str, tuple[bytes, int]]:
    """Every file and directory under `path` with its bytes and mode."""
    out = {}
    for p in sorted(path.rglob("*")):
        rel = p.relative_to(path).as_posix()
        out[rel] = (p.read_bytes() if p.is_file() else b"<dir>", stat.S_IMODE(p.stat().st_mode))
    return out


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


# --- write ----------------------------------------------------------------------------------


def test_write_tree_creates_exactly_the_tree(tmp_path):
    out = tmp_path / "parent" / "out"
    write_tree(TREE, out)
    assert read_tree(out) == TREE
    assert _siblings(out) == ["out"]
    for p in out.rglob("*"):
        assert stat.S_IMODE(p.stat().st_mode) == (0o755 if p.is_dir() else 0o644)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755


def test_write_tree_replaces_the_old_tree_and_leaves_nothing_behind(tmp_path):
    out = tmp_path / "out"
    write_tree({**TREE, "old-only/file": b"x"}, out)
    (out / "stray").write_bytes(b"user file")
    new = {**TREE, "a.txt": b"new\n"}
    write_tree(new, out)
    assert read_tree(out) == new
    assert not (out / "old-only").exists()
    assert _siblings(out) == ["out"]


def test_write_tree_relative_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_tree(TREE, Path("rel/out"))
    assert read_tree(tmp_path / "rel" / "out") == TREE
    write_tree(TREE, Path("rel/out"))
    assert _siblings(tmp_path / "rel" / "out") == ["out"]


def test_failure_while_writing_leaves_out_as_it_was(tmp_path, monkeypatch):
    out = tmp_path / "out"
    write_tree(TREE, out)
    before = _snapshot(out)
    calls = {"n": 0}
    real = Path.write_bytes

    def failing_write_bytes(self, data):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", failing_write_bytes)
    with pytest.raises(OSError, match="No space"):
        write_tree({**TREE, "a.txt": b"changed\n", "z/new": b"n"}, out)
    monkeypatch.undo()
    assert _snapshot(out) == before
    assert _siblings(out) == ["out"], "temporary directories left behind"


def test_interrupt_while_writing_leaves_out_as_it_was(tmp_path, monkeypatch):
    out = tmp_path / "out"
    write_tree(TREE, out)
    before = _snapshot(out)

    def interrupted(path, mode):
        raise KeyboardInterrupt

    monkeypatch.setattr(netcc.write.tree.os, "chmod", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_tree({"other": b"x"}, out)
    monkeypatch.undo()
    assert _snapshot(out) == before
    assert _siblings(out) == ["out"]


def test_failure_writing_a_fresh_out_creates_nothing(tmp_path, monkeypatch):
    out = tmp_path / "out"

    def full(self, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OSError):
        write_tree(TREE, out)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_failure_at_the_final_rename_leaves_out_as_it_was(tmp_path, monkeypatch):
    out = tmp_path / "out"
    write_tree(TREE, out)
    before = _snapshot(out)
    real_rename = os.rename
    calls = {"n": 0}

    def rename(src, dst):
        calls["n"] += 1
        if calls["n"] == 2:  # OUT -> .out.old-*, then this one: new tree -> OUT
            raise OSError(5, "Input/output error")
        return real_rename(src, dst)

    monkeypatch.setattr(netcc.write.tree.os, "rename", rename)
    with pytest.raises(OSError):
        write_tree({**TREE, "a.txt": b"changed\n"}, out)
    monkeypatch.undo()
    assert out.is_dir() and _snapshot(out) == before
    assert _siblings(out) == ["out"]


def test_symlinked_out_leaves_nothing_behind(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "links").mkdir()
    write_tree(TREE, tmp_path / "real" / "target")
    (tmp_path / "links" / "out").symlink_to(tmp_path / "real" / "target")
    new = {"only": b"new\n"}
    write_tree(new, tmp_path / "links" / "out")
    assert read_tree(tmp_path / "links" / "out") == new
    leftovers = [
        p.name
        for d in (tmp_path / "real", tmp_path / "links")
        for p in d.iterdir()
        if ".old-" in p.name or ".tmp-" in p.name
    ]
    assert leftovers == []


def test_read_tree_uses_posix_relative_paths(tmp_path):
    write_tree(TREE, tmp_path / "o")
    assert sorted(read_tree(tmp_path / "o")) == sorted(TREE)


# --- lock -----------------------------------------------------------------------------------


def test_lock_lists_every_artifact_with_its_sha256():
    tree = {**FILES, "bpf/datapath.o": b"\x7fELF..."}
    raw = make_lock(tree, b"spec bytes", "9.9.9", "clang version 99")
    doc = json.loads(raw)
    assert doc == {
        "lockVersion": 1,
        "netcc": "9.9.9",
        "clang": "clang version 99",
        "spec": {"sha256": sha256(b"spec bytes")},
        "artifacts": {path: sha256(data) for path, data in tree.items()},
    }
    assert list(doc["artifacts"]) == sorted(tree)
    assert raw.endswith(b"}\n")
    assert make_lock(tree, b"spec bytes", "9.9.9", "clang version 99") == raw


def test_lock_never_lists_itself():
    tree = {**FILES, LOCK_NAME: b"old lock"}
    doc = json.loads(make_lock(tree, b"", "1", "c"))
    assert LOCK_NAME not in doc["artifacts"]
    assert set(doc["artifacts"]) == set(FILES)


def test_sha256_is_hex():
    assert sha256(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


# --- check ----------------------------------------------------------------------------------


def test_stale_files_fresh_tree_is_clean(tmp_path):
    write_tree(TREE, tmp_path / "out")
    assert stale_files(TREE, tmp_path / "out") == []


def test_stale_files_missing_directory(tmp_path):
    assert stale_files(TREE, tmp_path / "nope") == [(".", "missing directory")]
    (tmp_path / "file").write_bytes(b"")
    assert stale_files(TREE, tmp_path / "file") == [(".", "missing directory")]


def test_stale_files_reports_missing_extra_and_differing(tmp_path):
    out = tmp_path / "out"
    write_tree(TREE, out)
    (out / "a.txt").write_bytes(b"edited\n")
    (out / "bpf" / "lib" / "common.h").unlink()
    (out / "nodes" / "extra.json").write_bytes(b"{}")
    (out / "new-dir").mkdir()
    (out / "new-dir" / "f").write_bytes(b"")
    assert stale_files(TREE, out) == [
        ("a.txt", "differs"),
        ("bpf/lib/common.h", "missing"),
        ("new-dir", "directory not produced by this spec"),
        ("new-dir/f", "not produced by this spec"),
        ("nodes/extra.json", "not produced by this spec"),
    ]


def test_stale_files_sees_a_one_byte_change_and_truncation(tmp_path):
    out = tmp_path / "out"
    write_tree(TREE, out)
    (out / "bpf" / "datapath.c").write_bytes(b"int y;\n")
    (out / "nodes" / "n1" / "maps" / "m.json").write_bytes(b"")
    assert stale_files(TREE, out) == [
        ("bpf/datapath.c", "differs"),
        ("nodes/n1/maps/m.json", "differs"),
    ]


# --- lock format, and the loader's reading of OUT --------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"[]", b"{}", b"[" * 50_000, TREE[LOCK_NAME].replace(b'"lockVersion": 1', b'"x": 1')],
)
def test_parse_lock_refuses_what_make_lock_never_writes(data):
    with pytest.raises(LockFormatError):
        parse_lock(data)


def test_parse_lock_accepts_make_lock():
    assert parse_lock(TREE[LOCK_NAME])["artifacts"] == {p: sha256(d) for p, d in FILES.items()}


def test_prepare_output_refuses_without_touching(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "f").write_text("x")
    for out in ("", ".", "..", "/", "mine"):
        with pytest.raises(OutputError):
            prepare_output(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
    assert prepare_output("new/out") == tmp_path / "new" / "out"
    assert not (tmp_path / "new").exists()


def test_write_tree_refuses_paths_out_of_the_tree(tmp_path):
    for bad in ("../x", "/abs", "a//b", "a/./b", ""):
        with pytest.raises(ValueError):
            write_tree({bad: b"x"}, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_read_tree_skips_links_and_fifos(tmp_path):
    out = tmp_path / "out"
    write_tree(TREE, out)
    (tmp_path / "outside").write_bytes(b"secret")
    (out / "link").symlink_to(tmp_path / "outside")
    os.mkfifo(out / "fifo")
    assert read_tree(out) == TREE


def test_verify_lock_never_follows_links_nor_opens_fifos(tmp_path):
    out = tmp_path / "out"
    write_tree(TREE, out)
    assert verify_lock(out)["lockVersion"] == 1
    (tmp_path / "copy.c").write_bytes(TREE["bpf/datapath.c"])
    (out / "bpf" / "datapath.c").unlink()
    (out / "bpf" / "datapath.c").symlink_to(tmp_path / "copy.c")  # same bytes, still refused
    os.mkfifo(out / "bpf" / "extra")
    with pytest.raises(LockError) as e:
        verify_lock(out)
    assert "bpf/datapath.c: not a regular file" in str(e.value)
    assert "bpf/extra: not in the lock (a FIFO)" in str(e.value)


@pytest.mark.parametrize(
    "lock",
    [b"[" * 100_000, b'{"artifacts": []}', b'{"artifacts": {"a": 1}}', b"null", b"\xff"],
)
def test_verify_lock_hostile_lock_is_a_lock_error(tmp_path, lock):
    (tmp_path / LOCK_NAME).write_bytes(lock)
    with pytest.raises(LockError):
        verify_lock(tmp_path)


def test_verify_lock_refuses_escaping_paths(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "secret").write_bytes(b"s")
    doc = {"artifacts": {"../secret": sha256(b"s"), "/etc/hostname": "0" * 64}}
    (tmp_path / "out" / LOCK_NAME).write_text(json.dumps(doc))
    with pytest.raises(LockError, match="escapes the artifact directory"):
        verify_lock(tmp_path / "out")


def test_inputs_are_bounded_like_the_front_end_and_fifos_never_hang(tmp_path):
    from netcc.fsguard import MAX_SPEC_BYTES, read_input
    from netcc.load.document import MAX_SPEC_BYTES as FRONT_END_BOUND

    assert MAX_SPEC_BYTES == FRONT_END_BOUND
    assert len(read_input("/dev/zero", 1000)) == 1001  # stops there; the parser reports it
    os.mkfifo(tmp_path / "fifo")
    assert read_input(tmp_path / "fifo") == b""  # nobody writes: empty, not a hang
    with pytest.raises(IsADirectoryError):
        read_input(tmp_path)
