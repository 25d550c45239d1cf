"""Golden files: the text artifacts of examples/shop.yaml and of tests/golden/specs/*.yaml.

expected/<spec>/ mirrors OUT for every text artifact (C sources and headers, map data, tables,
manifests; any new kind of artifact is covered too). The BPF object is not kept, and
the lock file is kept redacted (expected/<spec>/netcc.lock.golden.json): without the clang
version and with the object's digest replaced, since both depend on the installed clang.

Regenerate with `NETCC_UPDATE_GOLDEN=1 pytest tests/golden` (or `make golden`) and review the diff.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import shutil
from functools import cache
from pathlib import Path

import pytest

from netcc import __version__
from netcc.contract.lock import LOCK_NAME, SPEC_IN_OUT
from netcc.pipeline import compile_spec

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EXPECTED = HERE / "expected"
SPECS = {
    "shop": ROOT / "examples" / "shop.yaml",
    **{p.stem: p for p in sorted((HERE / "specs").glob("*.yaml"))},
}
BINARY_SUFFIXES = (".o",)
LIB_PREFIX = "bpf/lib/"
TEMPLATE_LIB = Path(__file__).resolve().parents[2] / "templates" / "bpf" / "lib"
LOCK_GOLDEN = "netcc.lock.golden.json"
CLANG_DEPENDENT = "<depends on the clang version>"
UPDATE = os.environ.get("NETCC_UPDATE_GOLDEN") == "1"


@cache
def compiled(name: str) -> dict[str, bytes]:
    return compile_spec(SPECS[name].read_bytes(), SPECS[name].name)


def _verbatim(path: str) -> bool:
    """The hand-written headers, copied as they are: checked against the templates instead;
    and the spec itself (`spec.yaml`), which is the input."""
    return path.startswith(LIB_PREFIX) or path == SPEC_IN_OUT


def text_artifacts(tree: dict[str, bytes]) -> dict[str, bytes]:
    """Every generated artifact but the objects and the lock; they are text (ASCII, in fact)."""
    out = {
        p: d
        for p, d in tree.items()
        if not p.endswith(BINARY_SUFFIXES) and p != LOCK_NAME and not _verbatim(p)
    }
    for path, data in out.items():
        assert data.isascii() and b"\0" not in data, f"{path} is not text"
    return out


def redacted_lock(tree: dict[str, bytes]) -> bytes:
    doc = json.loads(tree[LOCK_NAME])
    doc.pop("clang")
    doc["artifacts"] = {
        path: CLANG_DEPENDENT if path.endswith(".o") else digest
        for path, digest in doc["artifacts"].items()
    }
    return (json.dumps(doc, indent=2) + "\n").encode()


def golden_files(name: str) -> dict[str, bytes]:
    """The expected tree; a missing directory is a failure, not a skip."""
    root = EXPECTED / name
    if not root.is_dir():
        pytest.fail(f"no golden files for {name}: run `make golden` and review the result")
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def write_golden(name: str, files: dict[str, bytes]) -> None:
    root = EXPECTED / name
    shutil.rmtree(root, ignore_errors=True)
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)


def _diff(path: str, want: bytes, got: bytes) -> str:
    lines = difflib.unified_diff(
        want.decode(errors="replace").splitlines(),
        got.decode(errors="replace").splitlines(),
        f"expected/{path}",
        f"compiled/{path}",
        lineterm="",
    )
    return "\n".join(list(lines)[:60])


@pytest.mark.parametrize("name", sorted(SPECS))
def test_golden_tree(name):
    tree = compiled(name)
    want_files = {**text_artifacts(tree), LOCK_GOLDEN: redacted_lock(tree)}
    if UPDATE:
        write_golden(name, want_files)
        return
    have = golden_files(name)
    problems = []
    for path in sorted(set(want_files) | set(have)):
        if path not in have:
            problems.append(f"{path}: compiled, but there is no golden file")
        elif path not in want_files:
            problems.append(f"{path}: golden file, but no longer compiled")
        elif have[path] != want_files[path]:
            problems.append(_diff(path, have[path], want_files[path]))
    assert not problems, (
        f"{name}: output differs from tests/golden/expected/{name} "
        "(if intended: make golden, then review the diff)\n" + "\n".join(problems)
    )


@pytest.mark.parametrize("name", sorted(SPECS))
def test_golden_lock_lists_every_artifact_with_matching_digests(name):
    tree = compiled(name)
    lock = json.loads(tree[LOCK_NAME])
    assert lock["lockVersion"] == 1
    assert lock["netcc"] == __version__
    assert lock["clang"]
    assert lock["spec"]["sha256"] == hashlib.sha256(SPECS[name].read_bytes()).hexdigest()
    assert list(lock["artifacts"]) == sorted(set(tree) - {LOCK_NAME})
    for path, digest in lock["artifacts"].items():
        assert digest == hashlib.sha256(tree[path]).hexdigest(), path
    assert any(p.endswith(".o") for p in lock["artifacts"])
    if UPDATE:
        return
    # The golden lock lists the same artifacts, and its digests are those of the golden files.
    have = golden_files(name)
    golden_lock = json.loads(have[LOCK_GOLDEN])
    assert list(golden_lock["artifacts"]) == list(lock["artifacts"])
    for path, digest in golden_lock["artifacts"].items():
        if path.endswith(".o"):
            assert digest == CLANG_DEPENDENT
        elif _verbatim(path):
            assert digest == hashlib.sha256(tree[path]).hexdigest(), path
        else:
            assert digest == hashlib.sha256(have[path]).hexdigest(), path


def test_golden_expected_has_no_orphans():
    """Every expected tree belongs to a spec (a renamed or deleted spec leaves none behind)."""
    orphans = sorted(p.name for p in EXPECTED.iterdir() if p.is_dir() and p.name not in SPECS)
    if UPDATE:
        for name in orphans:
            shutil.rmtree(EXPECTED / name)
        return
    assert not orphans, f"golden trees without a spec: {orphans}"


def test_golden_specs_are_present():
    assert "shop" in SPECS and SPECS["shop"].is_file()
    assert len(SPECS) >= 3, "tests/golden/specs holds the small golden specs"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_golden_lib_headers_are_the_templates_verbatim(name):
    tree = compiled(name)
    lib = {p.removeprefix(LIB_PREFIX): d for p, d in tree.items() if p.startswith(LIB_PREFIX)}
    assert lib, "the hand-written headers are part of every OUT"
    for header, data in lib.items():
        assert data == (TEMPLATE_LIB / header).read_bytes(), header
