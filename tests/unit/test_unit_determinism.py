"""The same spec always compiles to the same bytes: any cwd, any (empty or warm) cache."""

from __future__ import annotations

from pathlib import Path

import pytest

import netcc.build.clang
from netcc.build.clang import compile_objects
from netcc.pipeline import compile_spec

ROOT = Path(__file__).resolve().parents[2]
SPECS = [
    ROOT / "examples" / "shop.yaml",
    *sorted((ROOT / "tests" / "golden" / "specs").glob("*.yaml")),
]


def _compile_in(spec: Path, cwd: Path, cache: Path, monkeypatch, name: str) -> dict[str, bytes]:
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("NETCC_CACHE_DIR", str(cache))
    return compile_spec(spec.read_bytes(), name)


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_same_spec_same_tree_from_other_cwd_and_empty_caches(spec, tmp_path, monkeypatch):
    for d in ("cwd1", "cwd2", "cache1", "cache2"):
        (tmp_path / d).mkdir()
    first = _compile_in(spec, tmp_path / "cwd1", tmp_path / "cache1", monkeypatch, str(spec))
    second = _compile_in(spec, tmp_path / "cwd2", tmp_path / "cache2", monkeypatch, spec.name)
    assert sorted(first) == sorted(second)
    for path in first:
        assert first[path] == second[path], f"{path} differs between builds"
    # Both caches were really filled (two independent clang runs), and a warm cache agrees.
    assert list((tmp_path / "cache1" / "objects").iterdir())
    assert list((tmp_path / "cache2" / "objects").iterdir())
    third = _compile_in(spec, tmp_path / "cwd1", tmp_path / "cache2", monkeypatch, "x.yaml")
    assert third == first


def test_warm_cache_does_not_run_clang(tmp_path, monkeypatch):
    monkeypatch.setenv("NETCC_CACHE_DIR", str(tmp_path / "cache"))
    sources = {"bpf/datapath.c": b'char LICENSE[] __attribute__((section("license"))) = "GPL";\n'}
    cold = compile_objects(sources, ["bpf/datapath.c"])

    def no_clang(cmd, cwd):
        raise AssertionError(f"ran {cmd[0]} on a warm cache")

    monkeypatch.setattr(netcc.build.clang, "_run", no_clang)
    assert compile_objects(sources, ["bpf/datapath.c"]) == cold
    # Other sources are another cache entry: clang must run.
    with pytest.raises(AssertionError, match="ran"):
        compile_objects({"bpf/datapath.c": b"int changed;\n"}, ["bpf/datapath.c"])


def test_unwritable_cache_only_costs_speed(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"")
    monkeypatch.setenv("NETCC_CACHE_DIR", str(blocker))
    sources = {"bpf/datapath.c": b"int x;\n"}
    out = compile_objects(sources, ["bpf/datapath.c"])
    assert blocker.read_bytes() == b""
    monkeypatch.setenv("NETCC_CACHE_DIR", str(tmp_path / "cache"))
    assert out == compile_objects(sources, ["bpf/datapath.c"])
    assert list((tmp_path / "cache" / "objects").iterdir())  # that one was cached
