"""`netcc keys generate` never writes a key through a symlink, nor leaves a temporary file.

Before the fix, a link planted at `.NODE.key.tmp` received the new private key (its target was
overwritten) and the key file itself became that link.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hostile import changes, snapshot
from wgspecs import key_dir

import netcc.keys
from netcc.cli.main import main


@pytest.fixture
def base():
    with key_dir() as path:
        (path / "decoy").mkdir()
        (path / "decoy" / "target").write_text("decoy\n")
        yield path


def generate(out: Path | str, *extra: str) -> int:
    return main(["keys", "generate", "--out", str(out), "--nodes", "node-1,node-2", *extra])


def assert_keys(out: Path) -> None:
    """Both key pairs as regular files (private 0600), nothing else in the 0700 directory."""
    assert stat.S_IMODE(os.lstat(out).st_mode) == 0o700
    names = sorted(p.name for p in out.iterdir())
    assert names == ["node-1.key", "node-1.pub", "node-2.key", "node-2.pub"]
    for name in names:
        st = os.lstat(out / name)
        assert stat.S_ISREG(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == (0o600 if name.endswith(".key") else 0o644)


@pytest.mark.parametrize("force", [False, True])
def test_a_link_planted_at_the_old_temporary_path_is_ignored(base, capsys, force):
    out = base / "keys"
    out.mkdir(mode=0o700)
    for node in ("node-1", "node-2"):
        (out / f".{node}.key.tmp").symlink_to(base / "decoy" / "target")
    before = snapshot(base / "decoy")
    assert generate(out, *(["--force"] if force else [])) == 0
    assert changes(before, snapshot(base / "decoy")) == []
    for node in ("node-1", "node-2"):
        (out / f".{node}.key.tmp").unlink()
    assert_keys(out)
    assert "decoy" not in capsys.readouterr().out


@pytest.mark.parametrize("name", ["node-1.key", "node-2.pub"])
@pytest.mark.parametrize("dangling", [False, True])
def test_a_key_path_that_is_a_link_is_refused_even_with_force(base, capsys, name, dangling):
    out = base / "keys"
    out.mkdir(mode=0o700)
    (out / name).symlink_to(base / "decoy" / ("missing" if dangling else "target"))
    before = snapshot(base)
    for extra in ([], ["--force"]):
        assert generate(out, *extra) == 1
        err = capsys.readouterr().err
        assert "is a symlink, not a regular file" in err and "nothing written" in err
    assert changes(before, snapshot(base)) == []


def test_an_out_that_is_a_link_is_refused(base, capsys):
    (base / "link").symlink_to(base / "decoy")
    before = snapshot(base)
    assert generate(base / "link") == 1
    assert "is a symlink" in capsys.readouterr().err
    assert changes(before, snapshot(base)) == []


@pytest.mark.parametrize("kind", ["file", "fifo"])
def test_an_out_that_is_no_directory_is_refused_without_hanging(base, capsys, kind):
    target = base / "keys"
    target.write_text("x") if kind == "file" else os.mkfifo(target)
    before = snapshot(base)
    assert generate(target) == 1
    assert "not a directory" in capsys.readouterr().err
    assert changes(before, snapshot(base)) == []


def test_an_empty_out_is_refused(base, capsys, monkeypatch):
    monkeypatch.chdir(base)
    before = snapshot(base)
    assert generate("") == 1
    assert "--out is empty" in capsys.readouterr().err
    assert changes(before, snapshot(base)) == []


def test_new_directories_are_created_and_only_keys_land_there(base, capsys):
    out = base / "a" / "b" / "keys"
    assert generate(out) == 0
    assert_keys(out)


def test_an_existing_key_refuses_before_any_write(base, capsys):
    out = base / "keys"
    out.mkdir(mode=0o700)
    (out / "node-2.key").write_text("old\n")
    before = snapshot(base)
    assert generate(out) == 1
    assert "--force" in capsys.readouterr().err
    assert changes(before, snapshot(base)) == []


def test_a_failed_write_leaves_no_temporary_file(base, capsys, monkeypatch):
    out = base / "keys"

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(netcc.keys.os, "link", fail)
    assert generate(out) == 1
    assert "No space left" in capsys.readouterr().err
    assert list(out.iterdir()) == []
