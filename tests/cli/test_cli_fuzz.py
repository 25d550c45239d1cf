"""Fuzz of the command line and its paths, the way issue 11's findings were made.

Every run draws new random cases (seed printed on failure; set NETCC_FUZZ_SEED to replay,
NETCC_FUZZ_SCALE=10 for ten times as many cases).
Each case runs `netcc` in this process inside a fresh tree full of traps (tests/support/
hostile.py: a git repository, a compiled OUT, a fake OUT, someone's directory, FIFOs, links
to a decoy directory outside the tree, dangling and looping links) with random arguments:
paths spelled every way (`""`, `.`, `..`, trailing slashes, links, unicode, control
characters), git revisions that look like options, unicode digits for ports and protocols.

A case fails on an internal error (exit 3, a traceback, "internal error", a hang) and on any
change to the tree or the decoy outside what the command was asked to write, as seen by
comparing snapshots (paths, kinds, modes, bytes, link targets) taken before and after.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from clirun import Ran, run
from hostile import cache_dir, changes, make_case, make_template, snapshot

from netcc.contract.lock import LOCK_NAME, LockFormatError, parse_lock
from netcc.pipeline import compile_spec

SEED = int(os.environ.get("NETCC_FUZZ_SEED", random.randrange(1 << 32)))
SCALE = float(os.environ.get("NETCC_FUZZ_SCALE", "1"))
CASES = {
    name: max(1, int(n * SCALE))
    for name, n in {
        "compile": 90,
        "check": 30,
        "review": 50,
        "diff": 50,
        "keys": 40,
        "why": 50,
    }.items()
}
NAMES = [
    "", ".", "..", "out", "link-out", "fake-out", "userdir", "emptydir", "link-decoy",
    "link-file", "link-userdir", "dangling", "loop", "fifo", "notes.txt", "spec.yaml",
    "bad.yaml", "new", "new/deeper", ".git", "out/bpf", "out/planted-fifo",
    "out/spec-link.yaml", "out/spec.yaml", "../decoy", "../decoy/sub", "../decoy/fifo",
    "../decoy/new", "link-decoy/sub", "link-decoy/new", "emptydir/new",
]  # fmt: skip
ODD = ["a", "é", "٦", "²", "６", " ", "\t", "\n", "\r", "\x1b[2J", "\u202e", "\udcff", "-", "--",
       "*", "~", "$HOME", "'", '"', "\\", "ſ", "K", ":", "=", "/"]  # fmt: skip
REVS = ["HEAD", "v1", "HEAD~0", "HEAD~9", "HEAD^{tree}", "--output=pwned",
        "--output=../decoy/pwned", "-p", "-h", "--", "-", "@", "v1 x", "main\n"]  # fmt: skip


class Hung(BaseException):
    """The command blocked (on a FIFO, say): a failure, never a CI timeout."""


@dataclass
class Case:
    """One fuzz case: where it runs and what it may write."""

    root: Path  # the case directory: tree/ and decoy/
    tree: Path
    cwd: Path
    rng: random.Random

    def real(self, arg: str) -> Path:
        """Where `arg` leads from the case's cwd, every link followed."""
        return Path(os.path.realpath(os.path.join(self.cwd, arg)))

    def inside(self, arg: str) -> bool:
        real = self.real(arg)
        return real == self.root or self.root in real.parents


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The template tree, built once; the compile cache shared by every case."""
    base = Path(os.path.realpath(tmp_path_factory.mktemp("fuzz")))
    with cache_dir(base / "cache"):
        compiled = compile_spec((Path(__file__).parents[1] / "golden/specs/minimal.yaml")
                                .read_bytes(), "spec.yaml")  # fmt: skip
        yield base, make_template(base, compiled)


def odd_text(rng: random.Random, n: int = 4) -> str:
    return "".join(rng.choice(ODD) for _ in range(rng.randint(1, n)))


def rand_path(case: Case, *, allow_root: bool = False) -> str:
    """A path spelled some random way, that never leads out of the case directory."""
    rng = case.rng
    for _ in range(20):
        text = rng.choice([*NAMES, odd_text(rng), "new-" + odd_text(rng)])
        tweak = rng.randrange(8)
        if tweak == 0:
            text += rng.choice(["/", "//", "/.", "/..", "/./"])
        elif tweak == 1:
            text = rng.choice(["./", "emptydir/../", "nowhere/../", "link-out/../"]) + text
        elif tweak == 2 and text:
            text = os.path.join(case.cwd, text)
        if allow_root and rng.random() < 0.03:
            return rng.choice(["/", "//", "/.."])
        if case.inside(text):
            return text
    return "new"


def new_case(env, name: str, rng: random.Random) -> Case:
    base, template = env
    root = base / name
    tree, _ = make_case(template, root)
    cwd = rng.choice([tree, tree, tree, tree / "userdir", tree / "out" / "bpf"])
    return Case(root, tree, cwd, rng)


def netcc(case: Case, args: list[str]) -> Ran:
    """`netcc ARGS` in the case's cwd, failing the case after 20 s instead of hanging."""

    def hung(signum, frame):
        raise Hung(f"netcc {args!r} hung")

    old_cwd, old_handler = os.getcwd(), signal.signal(signal.SIGALRM, hung)
    os.chdir(case.cwd)
    signal.alarm(20)
    try:
        return run(*args)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old_handler)
        os.chdir(old_cwd)


def is_netcc_output(snap: dict, real: Path) -> bool:
    lock = snap.get(str(real / LOCK_NAME))
    if lock is None or lock[0] != "file":
        return False
    try:
        parse_lock(lock[2])
    except LockFormatError:
        return False
    return True


def under(path: str, real: Path) -> bool:
    return path == str(real) or path.startswith(str(real) + "/")


def new_ancestor(path: str, real: Path, before: dict, after: dict) -> bool:
    """A directory created on the way to `real` (as `mkdir -p` would)."""
    return path not in before and after.get(path, ("",))[0] == "dir" and Path(path) in real.parents


# --- what each command may change ----------------------------------------------------------------


def compile_allowed(case: Case, args: list[str], r: Ran, before: dict, after: dict) -> list[str]:
    """Only OUT's real directory (and parents it created), and only when netcc may write it."""
    out, spec = args[args.index("-o") + 1], args[1]
    real, cwd = case.real(out), case.cwd
    assert out and real != cwd and real not in cwd.parents, "wrote over the cwd or a parent"
    spec_real = case.real(spec)
    assert real != spec_real and real not in spec_real.parents, "wrote over the spec"
    if str(real) in before:
        was_empty = not any(p.startswith(str(real) + "/") for p in before)
        assert before[str(real)][0] == "dir", "replaced something that is not a directory"
        assert is_netcc_output(before, real) or was_empty, "replaced a foreign directory"
    assert is_netcc_output(after, real), "no valid lock in the written OUT"
    for p, entry in after.items():
        if under(p, real):
            assert entry[0] in ("file", "dir") and entry[1] in (0o644, 0o755), (p, entry)
    return [p for p in changes(before, after)
            if not under(p, real) and not new_ancestor(p, real, before, after)]  # fmt: skip


def review_allowed(case: Case, args: list[str], r: Ran, before: dict, after: dict) -> list[str]:
    """Only the -o file itself (never through a link), and only if it was new or regular."""
    if "-o" not in args:
        return changes(before, after)
    out = args[args.index("-o") + 1]
    parent, name = os.path.split(os.path.join(case.cwd, out))
    target = str(Path(os.path.realpath(parent)) / name)
    assert before.get(target, ("file",))[0] == "file", "wrote over something not a file"
    assert after[target][0] == "file"
    return [p for p in changes(before, after) if p != target]


def keys_allowed(case: Case, args: list[str], r: Ran, before: dict, after: dict) -> list[str]:
    """Only NODE.key (0600) and NODE.pub in --out's real directory, which it may create."""
    out = args[args.index("--out") + 1]
    real = case.real(out)
    assert not os.path.islink(os.path.join(case.cwd, out).rstrip("/")), "followed a linked --out"
    nodes = args[args.index("--nodes") + 1].split(",") if "--nodes" in args else ["solo"]
    keys = {str(real / f"{n}{s}") for n in nodes for s in (".key", ".pub")}
    for path in keys & set(after):
        kind, mode, _ = after[path]
        assert kind == "file" and (mode == 0o600 or path.endswith(".pub")), (path, after[path])
    made = keys | {str(real)}
    return [p for p in changes(before, after)
            if p not in made and not new_ancestor(p, real, before, after)]  # fmt: skip


def nothing_allowed(case: Case, args: list[str], r: Ran, before: dict, after: dict) -> list[str]:
    return changes(before, after)


# --- argument generators -------------------------------------------------------------------------


def compile_args(case: Case) -> list[str]:
    spec = case.rng.choice(["spec.yaml", "spec.yaml", "bad.yaml", rand_path(case)])
    return ["compile", spec, "-o", rand_path(case, allow_root=True), "-q"]


def check_args(case: Case) -> list[str]:
    return ["check", case.rng.choice(["spec.yaml", rand_path(case)]), rand_path(case)]


def source_arg(case: Case) -> str:
    rng = case.rng
    if rng.random() < 0.4:
        rev = rng.choice([*REVS, odd_text(rng)])
        return f"git:{rev}:{rng.choice(['spec.yaml', 'out', 'out/', 'nope', odd_text(rng)])}"
    return rng.choice(["spec.yaml", "out", "fake-out", "link-out", rand_path(case)])


def review_args(case: Case) -> list[str]:
    args = ["review", source_arg(case), "--format", case.rng.choice(["md", "json", "html"])]
    if case.rng.random() < 0.7:
        args += ["-o", rand_path(case)]
    return args


def diff_args(case: Case) -> list[str]:
    return ["diff", source_arg(case), source_arg(case), *(["--json"] * case.rng.randrange(2))]


def keys_args(case: Case) -> list[str]:
    rng = case.rng
    which = (["--spec", rng.choice(["spec.yaml", rand_path(case)])] if rng.random() < 0.3
             else ["--nodes", rng.choice(["node-1,node-2", "solo", odd_text(rng)])])  # fmt: skip
    return ["keys", "generate", "--out", rand_path(case), *which,
            *(["--force"] * rng.randrange(2))]  # fmt: skip


def why_args(case: Case) -> list[str]:
    rng = case.rng
    ends = ["default/hello", "10.244.0.10", "192.168.10.1", "8.8.8.8", odd_text(rng)]
    ports = ["80", "1", "65535", "0", "65536", "٦", "²", "８０", "-1", " 80", "8_0", odd_text(rng)]
    protos = ["TCP", "udp", "sctp", "icmp", "6", "255", "256", "²", "٦", "ſctp", odd_text(rng)]
    return ["why", rng.choice(["spec.yaml", rand_path(case)]), "--from", rng.choice(ends),
            "--to", rng.choice(ends), "--port", rng.choice(ports),
            "--protocol", rng.choice(protos), *(["--json"] * rng.randrange(2))]  # fmt: skip


COMMANDS: dict[str, tuple[Callable[[Case], list[str]], Callable[..., list[str]]]] = {
    "compile": (compile_args, compile_allowed),
    "check": (check_args, nothing_allowed),
    "review": (review_args, review_allowed),
    "diff": (diff_args, nothing_allowed),
    "keys": (keys_args, keys_allowed),
    "why": (why_args, nothing_allowed),
}


@pytest.mark.parametrize("command", list(CASES))
def test_fuzz_command_line(env, command):
    make_args, allowed = COMMANDS[command]
    rng = random.Random(f"{SEED}-{command}")
    for i in range(CASES[command]):
        case = new_case(env, f"{command}-{i}", rng)
        args = make_args(case)
        where = f"NETCC_FUZZ_SEED={SEED} case {command}-{i}: netcc {args!r} in {case.cwd}"
        before = snapshot(case.root)
        r = netcc(case, args)
        assert r.code in (0, 1, 2), f"{where}: exit {r.code}\n{r.stderr}"
        assert "Traceback" not in r.stderr + r.stdout, f"{where}\n{r.stderr}"
        assert "internal error" not in r.stderr, f"{where}\n{r.stderr}"
        after = snapshot(case.root)
        if r.code == 0:
            try:
                stray = allowed(case, args, r, before, after)
            except AssertionError as e:
                raise AssertionError(f"{where}: {e}") from None
        else:
            stray = changes(before, after)
        assert stray == [], f"{where}: exit {r.code} touched {stray}\n{r.stderr}"
        shutil.rmtree(case.root)


def test_fuzz_trees_hold_every_trap(env, tmp_path):
    """The generator really plants what the cases rely on."""
    _, template = env
    tree, decoy = make_case(template, tmp_path / "c")
    kinds = {p.name: os.lstat(p).st_mode for p in tree.iterdir()}
    assert stat.S_ISFIFO(kinds["fifo"]) and stat.S_ISLNK(kinds["link-decoy"])
    assert os.readlink(tree / "link-decoy") == str(decoy)
    assert (tree / ".git").is_dir() and (tree / "out" / LOCK_NAME).is_file()
