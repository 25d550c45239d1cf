"""`netcc check SPEC OUT` compares the tree, not only bytes: kinds, modes, extra entries.

A symlink where a generated file belongs (even to identical bytes), a FIFO (never opened: check
must not hang), an extra directory (even empty) and a changed mode all make OUT stale.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
from clirun import run
from hostile import MINIMAL_SPEC, cache_dir, changes, snapshot

from netcc.contract.lock import LOCK_NAME
from netcc.pipeline import compile_spec
from netcc.write.check import stale_files


class Hung(BaseException):
    """`netcc check` blocked (on a FIFO, say)."""


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory):
    with cache_dir(tmp_path_factory.mktemp("netcc-cache")):
        yield


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A compiled OUT (with its spec beside it), copied by each test."""
    base = tmp_path_factory.mktemp("check-template")
    (base / "spec.yaml").write_bytes(MINIMAL_SPEC)
    with cache_dir(base.parent / "template-cache"):
        assert run("compile", str(base / "spec.yaml"), "-o", str(base / "out"), "-q").code == 0
    return base


@pytest.fixture
def out(template, tmp_path, monkeypatch) -> Path:
    shutil.copytree(template, tmp_path / "w", symlinks=True)
    monkeypatch.chdir(tmp_path / "w")
    return tmp_path / "w" / "out"


def check(target: str = "out"):
    """`netcc check spec.yaml TARGET`, failing the test instead of hanging."""

    def hung(signum, frame):
        raise Hung

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        return run("check", "spec.yaml", target)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def assert_stale(r, *lines: str) -> None:
    assert r.code == 1, r.stdout + r.stderr
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr
    for line in lines:
        assert line in r.stdout.splitlines(), r.stdout


def test_fresh_out_is_up_to_date(out):
    r = check()
    assert (r.code, r.stdout) == (0, "netcc: out is up to date with spec.yaml\n")


def test_a_file_replaced_by_a_symlink_to_identical_bytes_is_stale(out, tmp_path):
    target = out / "bpf" / "datapath.c"
    shutil.copy(target, tmp_path / "copy.c")
    target.unlink()
    target.symlink_to(tmp_path / "copy.c")
    assert_stale(check(), "out/bpf/datapath.c: is a symlink, expected a regular file")


def test_an_extra_fifo_is_stale_and_never_opened(out):
    os.mkfifo(out / "bpf" / "extra")
    assert_stale(check(), "out/bpf/extra: FIFO not produced by this spec")


def test_a_file_replaced_by_a_fifo_is_stale_without_hanging(out):
    (out / "verdicts.json").unlink()
    os.mkfifo(out / "verdicts.json")
    assert_stale(check(), "out/verdicts.json: is a FIFO, expected a regular file")


def test_an_extra_empty_directory_is_stale(out):
    (out / "nodes" / "ghost").mkdir()
    assert_stale(check(), "out/nodes/ghost: directory not produced by this spec")


def test_an_extra_symlink_is_stale_and_not_followed(out, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "big").write_bytes(b"x" * 1000)
    (out / "ref").symlink_to(tmp_path / "elsewhere")
    assert_stale(check(), "out/ref: symlink not produced by this spec")
    assert "elsewhere" not in check().stdout


def test_a_directory_replaced_by_a_symlink_to_a_copy_is_stale(out, tmp_path):
    shutil.copytree(out / "bpf", tmp_path / "bpf-copy")
    shutil.rmtree(out / "bpf")
    (out / "bpf").symlink_to(tmp_path / "bpf-copy")
    r = check()
    assert_stale(r, "out/bpf: is a symlink, expected a directory", "out/bpf/datapath.o: missing")


@pytest.mark.parametrize(
    "path,mode,line",
    [
        ("verdicts.json", 0o600, "out/verdicts.json: mode 0600, expected 0644"),
        ("verdicts.json", 0o755, "out/verdicts.json: mode 0755, expected 0644"),
        ("bpf", 0o700, "out/bpf: mode 0700, expected 0755"),
        (".", 0o777, "out: mode 0777, expected 0755"),
    ],
)
def test_a_changed_mode_is_stale(out, path, mode, line):
    os.chmod(out / path, mode)
    assert_stale(check(), line)


@pytest.mark.parametrize("path,mode", [("verdicts.json", 0o664), ("bpf", 0o775), (".", 0o775)])
def test_a_group_writable_checkout_is_up_to_date(out, path, mode):
    """A checkout made under umask 002 (git keeps only the execute bit) is not stale."""
    os.chmod(out / path, mode)
    assert check().code == 0


def test_a_link_named_as_out_is_followed_to_its_tree(out):
    os.symlink("out", out.parent / "link")
    assert check("link").code == 0


def test_check_changes_nothing(out, tmp_path):
    os.mkfifo(out / "fifo")
    (out / "link").symlink_to("/")
    before = snapshot(tmp_path)
    assert check().code == 1
    assert changes(before, snapshot(tmp_path)) == []


def test_names_with_control_characters_are_escaped(out):
    (out / "x\nnetcc: out is up to date").write_text("")
    r = check()
    assert_stale(r, "out/x\\nnetcc: out is up to date: not produced by this spec")
    assert len(r.stdout.splitlines()) == 1


def test_stale_files_api_reports_kinds_and_modes(out):
    tree = compile_spec(MINIMAL_SPEC, "spec.yaml")
    assert stale_files(tree, out) == []
    os.chmod(out / LOCK_NAME, 0o640)
    (out / "new").mkdir()
    assert stale_files(tree, out) == [
        (LOCK_NAME, "mode 0640, expected 0644"),
        ("new", "directory not produced by this spec"),
    ]


def test_an_empty_out_is_refused(out):
    r = check("")
    assert r.code == 1 and r.stderr.startswith("netcc: error: OUT is empty")
