"""Hostile sources for review, why and diff: git revisions, lock files, OUT contents, -o.

Every case must end in a clean error (exit 2 for diff, 1 for the others) or a correct answer:
never an internal error, never a git option, never a file read outside OUT or written
anywhere else than -o.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from hostile import MINIMAL_SPEC, changes, git, snapshot
from review_support import SHOP, run

import netcc.review.source as source
from netcc.contract.lock import LOCK_NAME
from netcc.review.source import SourceError, check_revision
from netcc.review.why import WhyError, parse_port, parse_protocol

DIGEST = hashlib.sha256(MINIMAL_SPEC).hexdigest()


def assert_clean(r, code: int, *words: str) -> None:
    assert r.code == code, (r.code, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    for word in words:
        assert word in r.stderr, r.stderr


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """cwd: a git repository with spec.yaml and an OUT committed (tag v1)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "spec.yaml").write_bytes(MINIMAL_SPEC)
    out = repo / "out"
    out.mkdir()
    (out / "spec.yaml").write_bytes(MINIMAL_SPEC)
    (out / LOCK_NAME).write_text(json.dumps({"lockVersion": 1, "spec": {"sha256": DIGEST}}))
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "one")
    git(repo, "tag", "v1")
    monkeypatch.chdir(repo)
    return repo


# --- git revisions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rev",
    ["--output=pwned", "-h", "--help", "-p", "--all", "-", "HEAD x", "HEAD\n", "a\x1bb", "\t"],
)
def test_a_revision_that_could_be_an_option_is_refused(repo, tmp_path, rev):
    before = snapshot(tmp_path)
    r = run("diff", f"git:{rev}:spec.yaml", "spec.yaml")
    assert_clean(r, 2, "git")
    assert changes(before, snapshot(tmp_path)) == []
    with pytest.raises(SourceError):
        check_revision(rev)


def test_good_revisions_read_specs_and_outs(repo):
    for arg in ("git:HEAD:spec.yaml", "git:v1:spec.yaml", "git:HEAD~0:out", "git:v1:out/"):
        assert run("diff", arg, "spec.yaml").code == 0, arg
    head = git(repo, "rev-parse", "HEAD").strip()
    assert run("diff", f"git:{head}:spec.yaml", "spec.yaml").code == 0


@pytest.mark.parametrize(
    "arg,words",
    [
        ("git:nope:spec.yaml", ["names no commit"]),
        ("git:HEAD^{tree}:spec.yaml", ["names no commit"]),
        ("git:HEAD:missing.yaml", ["git show HEAD:missing.yaml failed"]),
        ("git:HEAD:spec\n.yaml", ["control characters"]),
        ("git::spec.yaml", ["git:REV:PATH"]),
    ],
)
def test_bad_git_arguments_are_clean_errors(repo, arg, words):
    assert_clean(run("diff", arg, "spec.yaml"), 2, *words)
    assert_clean(run("review", arg), 1)


def test_git_is_never_given_an_option_from_the_argument(repo, monkeypatch):
    calls = []
    real = source._git

    def spy(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(source, "_git", spy)
    assert run("diff", "git:v1:out", "spec.yaml").code == 0
    for args in calls:
        user = args[args.index("--end-of-options") + 1 :]
        assert user and not any(a.startswith("-") for a in user), args


# --- hostile lock files and OUT contents ---------------------------------------------------------


def fake_out(path: Path, lock: bytes | str, spec: bytes | None = MINIMAL_SPEC) -> Path:
    path.mkdir()
    (path / LOCK_NAME).write_bytes(lock if isinstance(lock, bytes) else lock.encode())
    if spec is not None:
        (path / "spec.yaml").write_bytes(spec)
    return path


@pytest.mark.parametrize(
    "lock",
    [
        "[" * 200_000 + "]" * 200_000,
        '{"spec": ' * 50_000 + "1" + "}" * 50_000,
        "[]",
        '"text"',
        "null",
        '{"spec": []}',
        '{"spec": {"sha256": 5}}',
        '{"spec": {"sha256": "' + DIGEST + '", "path": 7}}',
        '{"spec": {"sha256": "' + DIGEST + '", "path": ["x"]}}',
        b"\xff\xfe",
        "",
    ],
    ids=lambda v: repr(v[:20]),
)
def test_a_hostile_lock_is_a_clean_error(tmp_path, lock):
    out = fake_out(tmp_path / "out", lock)
    assert_clean(run("diff", out, SHOP), 2, "not a netcc lock file")
    assert_clean(run("review", out), 1, "not a netcc lock file")
    assert_clean(run("review", out, "--spec", tmp_path / "out" / "spec.yaml"), 1)


@pytest.mark.parametrize(
    "path", ["../secret.yaml", "{abs}", "sub/../../secret.yaml", "./spec.yaml", "", "a\nb"]
)
def test_a_spec_path_outside_out_is_never_followed(tmp_path, path):
    """The file outside OUT even has the right digest: it must still not be read."""
    (tmp_path / "secret.yaml").write_bytes(MINIMAL_SPEC)
    path = path.replace("{abs}", str(tmp_path / "secret.yaml"))
    lock = json.dumps({"lockVersion": 1, "spec": {"sha256": DIGEST, "path": path}})
    out = fake_out(tmp_path / "out", lock, spec=None)
    assert_clean(run("diff", out, out), 2, "not a plain relative path")
    assert_clean(run("review", out), 1, "not a plain relative path")


def test_a_spec_in_out_that_is_a_symlink_out_of_it_is_refused(tmp_path):
    (tmp_path / "secret.yaml").write_bytes(MINIMAL_SPEC)
    out = fake_out(tmp_path / "out", json.dumps({"spec": {"sha256": DIGEST}}), spec=None)
    (out / "spec.yaml").symlink_to(tmp_path / "secret.yaml")
    assert_clean(run("review", out), 1, "cannot read")
    assert_clean(run("diff", out, SHOP), 2, "cannot read")


def test_a_lock_that_is_a_symlink_is_refused(tmp_path):
    real = fake_out(tmp_path / "real", json.dumps({"spec": {"sha256": DIGEST}}))
    out = tmp_path / "out"
    out.mkdir()
    (out / "spec.yaml").write_bytes(MINIMAL_SPEC)
    (out / LOCK_NAME).symlink_to(real / LOCK_NAME)
    assert_clean(run("review", out), 1, "cannot read")


def test_fifos_in_out_are_never_opened(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / LOCK_NAME)
    assert_clean(run("review", out), 1, "not a regular file")
    os.unlink(out / LOCK_NAME)
    (out / LOCK_NAME).write_text(json.dumps({"spec": {"sha256": DIGEST}}))
    os.mkfifo(out / "spec.yaml")
    assert_clean(run("diff", out, SHOP), 2, "not a regular file")


def test_a_fifo_named_as_the_spec_reads_as_empty_instead_of_hanging(tmp_path):
    os.mkfifo(tmp_path / "spec.yaml")
    assert_clean(run("review", tmp_path / "spec.yaml"), 1, "empty")
    assert_clean(run("diff", tmp_path / "spec.yaml", SHOP), 2)


def test_the_lock_reader_is_bounded(tmp_path, monkeypatch):
    out = fake_out(tmp_path / "out", json.dumps({"spec": {"sha256": DIGEST}}) + " " * 5000)
    monkeypatch.setattr(source, "MAX_LOCK_BYTES", 4096)
    assert_clean(run("review", out), 1, "larger than 4096 bytes")


# --- why --protocol and --port ------------------------------------------------------------------


@pytest.mark.parametrize("text", ["²", "٦", "６", "①", "ſctp", "ıcmp", "256", "-1", " 6", "6 ", ""])
def test_protocols_must_be_ascii_names_or_numbers(text):
    with pytest.raises(WhyError):
        parse_protocol(text)
    r = run("why", SHOP, "--from", "shop/frontend", "--to", "shop/cart", "--port", "7000",
            "--protocol", text)  # fmt: skip
    assert_clean(r, 1, "unknown protocol")


@pytest.mark.parametrize("text,number", [("tcp", 6), ("UDP", 17), ("Sctp", 132), ("1", 1),
                                         ("006", 6), ("255", 255), ("0", 0)])  # fmt: skip
def test_good_protocols(text, number):
    assert parse_protocol(text) == number


@pytest.mark.parametrize("text", ["٦", "７０００", "+7000", " 7000", "7_000", "1e3", "", "0x10"])
def test_ports_must_be_ascii_digits(text):
    with pytest.raises(ValueError):
        parse_port(text)
    r = run("why", SHOP, "--from", "shop/frontend", "--to", "shop/cart", "--port", text)
    assert_clean(r, 2, "not a port number")


# --- review -o FILE -----------------------------------------------------------------------------


def test_review_output_is_never_written_through_a_link_or_into_a_fifo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_bytes(MINIMAL_SPEC)
    (tmp_path / "decoy").write_text("decoy\n")
    (tmp_path / "link").symlink_to(tmp_path / "decoy")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    before = snapshot(tmp_path)
    refused = [
        ("link", "symlink"),
        ("fifo", "FIFO"),
        ("dir", "directory"),
        ("spec.yaml", "the spec being reviewed"),
        ("", "names no file"),
    ]
    for target, word in refused:
        assert_clean(run("review", "spec.yaml", "-o", target), 1, word)
    assert_clean(run("review", "spec.yaml", "-o", "missing/report.md"), 1, "missing")
    assert changes(before, snapshot(tmp_path)) == []


def test_review_output_replaces_a_regular_file_keeping_its_mode(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_bytes(MINIMAL_SPEC)
    (tmp_path / "report.md").write_text("old")
    os.chmod(tmp_path / "report.md", 0o600)
    assert run("review", "spec.yaml", "-o", "report.md").code == 0
    assert (tmp_path / "report.md").read_text().startswith("#")
    assert stat.S_IMODE((tmp_path / "report.md").stat().st_mode) == 0o600
    assert run("review", "spec.yaml", "-o", "new.md").code == 0
    assert stat.S_IMODE((tmp_path / "new.md").stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.md", "report.md", "spec.yaml"]
