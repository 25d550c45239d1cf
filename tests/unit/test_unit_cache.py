"""netcc.cache: the whole-tree cache in front of the pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from unitspecs import spec_text

import netcc.pipeline
from netcc import cache
from netcc.pipeline import compile_spec


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NETCC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _no_compile(spec, filename):
    raise AssertionError("the pipeline ran on a cache hit")


def test_hit_returns_the_same_tree_without_compiling(fresh_cache, monkeypatch):
    spec = spec_text().encode()
    first = compile_spec(spec, "a.yaml")
    assert len(list((fresh_cache / "trees").glob("*.pack"))) == 1  # the tree in one file
    monkeypatch.setattr(netcc.pipeline, "_compile", _no_compile)
    assert compile_spec(spec, "other-name.yaml") == first


def test_key_depends_on_the_spec_bytes_only():
    spec = spec_text().encode()
    assert cache.tree_key(spec) == cache.tree_key(spec)
    assert cache.tree_key(spec) != cache.tree_key(spec + b"\n")
    assert len(cache.tree_key(spec)) == 64


def test_corrupt_cache_entry_is_a_miss(fresh_cache):
    spec = spec_text().encode()
    first = compile_spec(spec, "a.yaml")
    (entry,) = (fresh_cache / "trees").glob("*.pack")
    whole = entry.read_bytes()
    header, _ = whole.split(b"\n", 1)
    flipped = whole[:-1] + bytes([whole[-1] ^ 1])
    for junk in (
        b"",
        b"{not json",
        b"[1, 2]",
        json.dumps({"x": "zz"}).encode(),
        whole[:-1],  # cut short
        whole + b"x",  # trailing bytes
        flipped,  # a file's bytes changed: its digest no longer matches
        header.replace(b'"format":1', b'"format":2') + whole[len(header) :],
    ):
        entry.write_bytes(junk)
        assert compile_spec(spec, "a.yaml") == first
        entry.write_bytes(whole)  # the miss compiled and stored it again
    assert compile_spec(spec, "a.yaml") == first


def test_errors_are_not_cached(fresh_cache):
    from netcc.diagnostics import SpecError

    bad = spec_text().replace("name: web-1,", "name: Web_1,").encode()
    for _ in range(2):
        with pytest.raises(SpecError):
            compile_spec(bad, "bad.yaml")
    assert not list(fresh_cache.glob("trees/*"))


def test_unwritable_cache_still_compiles(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    monkeypatch.setenv("NETCC_CACHE_DIR", str(blocker))
    tree = compile_spec(spec_text().encode(), "a.yaml")
    assert blocker.read_bytes() == b""  # nothing cached, nothing broken
    monkeypatch.setenv("NETCC_CACHE_DIR", str(tmp_path / "cache"))
    assert tree == compile_spec(spec_text().encode(), "a.yaml")


def _files_hashed(monkeypatch) -> set[Path]:
    seen: set[Path] = set()
    real = Path.read_bytes

    def recording(self):
        seen.add(Path(self).resolve())
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", recording)
    cache._netcc_digest.__wrapped__()
    monkeypatch.undo()
    return seen


def test_compiler_code_and_templates_are_in_the_key(monkeypatch):
    from importlib import resources

    seen = _files_hashed(monkeypatch)
    for module in ("netcc.plan.planner", "netcc.emit.bpf", "netcc.validate.policy"):
        path = Path(__import__(module, fromlist=["_"]).__file__).resolve()
        assert path in seen, module
    templates = Path(str(resources.files("netcc.templates"))) / "bpf"
    assert (templates / "datapath.c.j2").resolve() in seen
    assert (templates / "lib" / "enforce.h").resolve() in seen


def test_json_schema_is_in_the_key(monkeypatch):
    from importlib import resources

    seen = _files_hashed(monkeypatch)
    schemas = Path(str(resources.files("netcc.schemas")))
    assert any(p.parent == schemas.resolve() and p.suffix == ".json" for p in seen)
