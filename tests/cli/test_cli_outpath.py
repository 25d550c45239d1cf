"""`netcc compile -o OUT`: netcc replaces only what it wrote, and refuses all else untouched.

Each test runs `netcc` in this process (tests/support/clirun.py) in a fresh directory and
compares a snapshot of everything around OUT before and after: a refused compile must change
nothing at all (no temporary directory, no renamed directory, no created parent).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from clirun import run
from hostile import BAD_SPEC, MINIMAL_SPEC, cache_dir, changes, snapshot

import netcc.write.tree
from netcc.contract.lock import LOCK_NAME
from netcc.write.tree import read_tree


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory):
    with cache_dir(tmp_path_factory.mktemp("netcc-cache")):
        yield


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """cwd: tmp/work holding spec.yaml; tmp/outside beside it (for links out of work)."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "spec.yaml").write_bytes(MINIMAL_SPEC)
    (tmp_path / "outside").mkdir()
    monkeypatch.chdir(work)
    return work


def compile_to(out: str, spec: str = "spec.yaml"):
    return run("compile", spec, "-o", out, "-q")


def assert_refused(r, *words: str) -> None:
    """Exit 1 with one clean `netcc: error:` line naming what to do, no traceback."""
    assert r.code == 1, (r.stdout, r.stderr)
    assert r.stderr.startswith("netcc: error: "), r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    for word in words:
        assert word in r.stderr, r.stderr


def assert_untouched(root: Path, out: str, *words: str) -> None:
    """Compiling into `out` is refused and changes nothing under `root`."""
    before = snapshot(root)
    assert_refused(compile_to(out), *words)
    assert changes(before, snapshot(root)) == []


def assert_netcc_output(path: Path) -> None:
    assert json.loads((path / LOCK_NAME).read_bytes())["lockVersion"] == 1
    assert (path / "bpf" / "datapath.o").is_file()


# --- refused ----------------------------------------------------------------------------------


def test_empty_out_is_refused_and_cwd_untouched(work):
    (work / "keep.txt").write_text("keep")
    assert_untouched(work.parent, "", "OUT is empty", "unset variable")


@pytest.mark.parametrize("out", [".", "./", "..", "../", "work/..", "/", "//", "sub/.."])
def test_cwd_its_parents_and_root_are_refused(work, out):
    (work / "sub").mkdir()
    (work / "keep.txt").write_text("keep")
    before = snapshot(work.parent)
    assert_refused(compile_to(out))
    assert changes(before, snapshot(work.parent)) == []


def test_an_out_holding_the_cwd_is_refused_by_absolute_path(work, monkeypatch):
    assert compile_to("out").code == 0
    monkeypatch.chdir(work / "out" / "bpf")
    before = snapshot(work)
    assert_refused(run("compile", str(work / "spec.yaml"), "-o", str(work / "out")), "current")
    assert changes(before, snapshot(work)) == []


def test_the_directory_holding_the_spec_is_refused(work, monkeypatch):
    (work / "specs").mkdir()
    (work / "specs" / "net.yaml").write_bytes(MINIMAL_SPEC)
    before = snapshot(work)
    assert_refused(run("compile", "specs/net.yaml", "-o", "specs"), "holds the spec")
    assert_refused(run("compile", "specs/net.yaml", "-o", "specs/"), "holds the spec")
    assert changes(before, snapshot(work)) == []
    # even when it is a netcc output: compiling out/spec.yaml into out would delete it
    assert compile_to("out").code == 0
    before = snapshot(work)
    assert_refused(run("compile", "out/spec.yaml", "-o", "out"), "holds the spec")
    assert changes(before, snapshot(work)) == []


def test_the_spec_file_itself_is_refused(work):
    assert_untouched(work, "spec.yaml", "is the spec itself")


def test_an_existing_file_is_refused_and_no_old_copy_is_left(work):
    (work / "report.txt").write_text("mine")
    assert_untouched(work, "report.txt", "is a regular file, not a directory")


def test_a_directory_netcc_did_not_write_is_refused(work):
    (work / "data" / "sub").mkdir(parents=True)
    (work / "data" / "file").write_text("precious")
    assert_untouched(work, "data", "not a netcc output", f"no {LOCK_NAME}", "empty or new")


@pytest.mark.parametrize(
    "lock",
    [
        b"{}",
        b'{"lockVersion": 1}',
        b"not json",
        b"[" * 100_000 + b"]" * 100_000,
        json.dumps({"lockVersion": True, "netcc": "x", "clang": "y"}).encode(),
        json.dumps(
            {
                "lockVersion": 1,
                "netcc": "0",
                "clang": "c",
                "spec": {"sha256": "x" * 64},
                "artifacts": {},
            }
        ).encode(),
    ],
    ids=["empty-object", "partial", "not-json", "deep", "bool-version", "bad-digest"],
)
def test_a_directory_with_a_file_named_like_the_lock_is_refused(work, lock):
    (work / "data").mkdir()
    (work / "data" / LOCK_NAME).write_bytes(lock)
    (work / "data" / "file").write_text("precious")
    assert_untouched(work, "data", "not a netcc output", "not a netcc lock file")


def test_a_lock_that_is_a_symlink_or_fifo_is_no_netcc_lock(work):
    assert compile_to("real").code == 0
    for name, plant in (
        ("linked", lambda p: p.symlink_to(work / "real" / LOCK_NAME)),
        ("piped", lambda p: os.mkfifo(p)),
    ):
        (work / name).mkdir()
        plant(work / name / LOCK_NAME)
        (work / name / "file").write_text("precious")
        assert_untouched(work, name, "not a netcc output")


def test_a_link_to_a_foreign_directory_is_refused_and_its_target_kept(work):
    outside = work.parent / "outside"
    (outside / "etc-like").mkdir()
    (outside / "etc-like" / "passwd").write_text("root:x:0:0\n")
    (work / "link").symlink_to(outside / "etc-like")
    before = snapshot(work.parent)
    assert_refused(compile_to("link"), "is a symlink", "not a netcc output")
    assert_refused(compile_to("link/"), "not a netcc output")
    assert changes(before, snapshot(work.parent)) == []


def test_a_link_to_an_empty_directory_or_nowhere_is_refused(work):
    outside = work.parent / "outside"
    (outside / "empty").mkdir()
    (work / "to-empty").symlink_to(outside / "empty")
    (work / "dangling").symlink_to(outside / "missing")
    (work / "loop").symlink_to("loop")
    before = snapshot(work.parent)
    assert_refused(compile_to("to-empty"), "is a symlink")
    assert_refused(compile_to("dangling"), "does not exist")
    assert_refused(compile_to("dangling/"), "does not exist")
    assert_refused(compile_to("loop"))
    assert changes(before, snapshot(work.parent)) == []


def test_a_missing_parent_is_not_created_when_the_spec_is_bad(work):
    (work / "bad.yaml").write_bytes(BAD_SPEC)
    before = snapshot(work)
    r = run("compile", "bad.yaml", "-o", "a/b/c")
    assert r.code == 1 and "nothing written" in r.stderr
    assert changes(before, snapshot(work)) == []


def test_a_parent_that_is_a_file_is_refused_before_creating_anything(work):
    (work / "file").write_text("x")
    assert_untouched(work, "file/a/b", "is not a directory")
    assert_untouched(work, "new/../file/x", "is not a directory")


def test_a_failed_write_removes_the_parents_it_created(work, monkeypatch):
    def full(self, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    before = snapshot(work)
    r = compile_to("a/b/c")
    monkeypatch.undo()
    assert_refused(r, "No space left on device")
    assert changes(before, snapshot(work)) == []


def test_a_refusal_found_just_before_the_rename_touches_nothing(work, monkeypatch):
    """OUT replaced by a foreign directory while netcc writes: refused, temp dir removed."""
    assert compile_to("out").code == 0
    (work / "out" / "verdicts.json").write_text("stale")  # else OUT is up to date: no write
    real_fill = netcc.write.tree._fill

    def swap_then_fill(tmp, tree):
        real_fill(tmp, tree)
        os.rename(work / "out", work.parent / "outside" / "moved")
        (work / "out").mkdir()
        (work / "out" / "theirs").write_text("theirs")

    monkeypatch.setattr(netcc.write.tree, "_fill", swap_then_fill)
    assert_refused(compile_to("out"), "not a netcc output")
    assert sorted(p.name for p in work.iterdir()) == ["out", "spec.yaml"]
    assert (work / "out" / "theirs").read_text() == "theirs"


# --- accepted ---------------------------------------------------------------------------------


def test_a_new_directory_with_new_parents(work):
    assert compile_to("a/b/c").code == 0
    assert_netcc_output(work / "a" / "b" / "c")
    assert sorted(p.name for p in (work / "a" / "b").iterdir()) == ["c"]


def test_an_empty_directory_is_filled(work):
    (work / "empty").mkdir()
    assert compile_to("empty").code == 0
    assert_netcc_output(work / "empty")


@pytest.mark.parametrize("form", ["out", "out/", "./out", "sub/../out", "out//", "{abs}"])
def test_a_netcc_output_is_replaced_in_every_spelling(work, form):
    (work / "sub").mkdir()
    assert compile_to("out").code == 0
    (work / "out" / "stray").write_text("x")
    r = compile_to(form.replace("{abs}", str(work / "out")))
    assert r.code == 0, r.stderr
    assert "stray" not in read_tree(work / "out")
    assert sorted(p.name for p in work.iterdir()) == ["out", "spec.yaml", "sub"]


def test_a_link_to_a_netcc_output_replaces_the_target_and_keeps_the_link(work):
    outside = work.parent / "outside"
    assert run("compile", "spec.yaml", "-o", str(outside / "real"), "-q").code == 0
    (outside / "real" / "stray").write_text("x")
    (work / "link").symlink_to(outside / "real")
    for form in ("link", "link/"):
        r = compile_to(form)
        assert r.code == 0, r.stderr
        assert (work / "link").is_symlink()
        assert os.readlink(work / "link") == str(outside / "real")
        assert not (outside / "real" / "stray").exists()
        assert_netcc_output(outside / "real")
    assert sorted(p.name for p in outside.iterdir()) == ["real"]
    assert sorted(p.name for p in work.iterdir()) == ["link", "spec.yaml"]


def test_control_characters_in_out_are_escaped_in_messages(work):
    (work / "a\nnetcc: forged").write_text("x")
    r = compile_to("a\nnetcc: forged")
    assert_refused(r, "a\\nnetcc: forged")
    r = run("compile", "spec.yaml", "-o", "new\x1b[2J")
    assert r.code == 0, r.stderr
    assert "\x1b" not in r.stdout and r.stdout.endswith(" to new\\x1b[2J\n")


def test_an_out_that_is_the_tree_already_is_left_as_it_is(work):
    """The unchanged-spec recompile reads OUT back instead of writing it again."""
    assert compile_to("out").code == 0
    before = {p: p.stat().st_ino for p in (work / "out").rglob("*")}
    r = compile_to("out")
    assert r.code == 0
    assert {p: p.stat().st_ino for p in (work / "out").rglob("*")} == before  # the same files
    (work / "out" / "peers.json").write_text("changed")
    assert compile_to("out").code == 0
    assert (work / "out" / "peers.json").read_text() != "changed"  # stale: written again
    assert_netcc_output(work / "out")
