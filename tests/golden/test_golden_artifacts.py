"""Golden files: the text artifacts of examples/shop.yaml and of tests/golden/specs/*.yaml.

expected/<spec>/ mirrors OUT for every text artifact (C sources and headers, map data, tables,
manifests; any new kind of artifact is covered too). The BPF object is not kept, and
the lock file is kept redacted (expected/<spec>/netcc.lock.golden.json): without the clang
version and with the object's digest replaced, since both depend on the installed clang.

Regenerate with `make golden` (tests/support/golden.py) and review the diff.
"""

from __future__ import annotations

import hashlib
import json
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


@pytest.mark.parametrize("name", sorted(SPECS))
def test_golden_tree(name, golden):
    tree = compiled(name)
    golden.tree(EXPECTED / name, {**text_artifacts(tree), LOCK_GOLDEN: redacted_lock(tree)})


@pytest.mark.parametrize("name", sorted(SPECS))
def test_golden_lock_lists_every_artifact_with_matching_digests(name, golden):
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
    # The golden lock lists the same artifacts, and its digests are those of the golden files
    # (written by test_golden_tree first when `make golden` regenerates them).
    have = golden.read_tree(EXPECTED / name)
    golden_lock = json.loads(have[LOCK_GOLDEN])
    assert list(golden_lock["artifacts"]) == list(lock["artifacts"])
    for path, digest in golden_lock["artifacts"].items():
        if path.endswith(".o"):
            assert digest == CLANG_DEPENDENT
        elif _verbatim(path):
            assert digest == hashlib.sha256(tree[path]).hexdigest(), path
        else:
            assert digest == hashlib.sha256(have[path]).hexdigest(), path


def test_golden_expected_has_no_orphans(golden):
    """Every expected tree belongs to a spec (a renamed or deleted spec leaves none behind)."""
    golden.only(EXPECTED, "*", SPECS)


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
