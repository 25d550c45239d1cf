"""The lab's state file, and `down` refusing entries that are not the lab's."""

from __future__ import annotations

import json

import pytest

from netcc.lab import core as lab
from netcc.lab import netns as lab_netns
from netcc.lab.state import LabState, LabStateError


def test_create_is_exclusive_and_incremental(tmp_path):
    state = LabState.create(tmp_path / "lab", spec="x.yaml")
    with pytest.raises(LabStateError, match="already up"):
        LabState.create(tmp_path / "lab")
    state.record("netns", name="netcc-a")
    on_disk = json.loads((tmp_path / "lab" / "state.json").read_text())
    assert on_disk["resources"] == [{"kind": "netns", "name": "netcc-a"}]
    assert on_disk["status"] == "building" and on_disk["spec"] == "x.yaml"
    assert LabState.load(tmp_path / "lab").of_kind("netns") == [
        {"kind": "netns", "name": "netcc-a"}
    ]


def test_remove_takes_the_directories_it_made(tmp_path):
    state = LabState.create(tmp_path / "a" / "b")
    state.remove()
    assert not (tmp_path / "a").exists() and tmp_path.exists()


def test_load_errors(tmp_path):
    with pytest.raises(LabStateError, match="no lab is up"):
        LabState.load(tmp_path)
    (tmp_path / "state.json").write_text("{nonsense")
    with pytest.raises(LabStateError, match="unreadable"):
        LabState.load(tmp_path)


def test_down_leaves_what_is_not_the_labs(tmp_path, root):
    """A damaged state file naming foreign things: down refuses each, touches none."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("mine")
    lab_netns.create("labtest-foreign")
    try:
        state = LabState.create(tmp_path / "lab")
        state.record("netns", name="labtest-foreign")
        state.record("dir", path=str(outside))
        state.record("pins", path="/sys/fs/bpf")
        report = lab.down(tmp_path / "lab")
        assert len(report.problems) == 3, report.problems
        assert all("left alone" in p for p in report.problems)
        assert lab_netns.exists("labtest-foreign")
        assert (outside / "keep").read_text() == "mine"
        assert len(LabState.load(tmp_path / "lab").resources) == 3  # kept, for a human
    finally:
        lab_netns.remove("labtest-foreign")


def _add_pods(directory: str, worker: int, count: int) -> None:
    """One process: record pods, fill each in after it was recorded, as `pod add` does."""
    from pathlib import Path

    for i in range(count):
        with LabState.locked(Path(directory)) as state:
            entry = state.record("pod", key=f"p{worker}-{i}")
        entry["ips"] = [f"10.0.{worker}.{i}"]
        state.save()


def test_saves_of_concurrent_processes_lose_nothing(tmp_path):
    """Processes recording and changing resources at once: every change of each is kept,
    and a forget by one is not undone by another's later save."""
    import multiprocessing

    directory = tmp_path / "lab"
    first = LabState.create(directory)
    first.record("netns", name="netcc-a")
    stale = LabState.load(directory)  # loaded before everything below
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_add_pods, args=(str(directory), w, 20)) for w in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 6
    first.forget(first.of_kind("netns"))
    stale.update(status="up")  # knows nothing of the pods nor the forget: undoes neither
    state = LabState.load(directory)
    assert state.doc["status"] == "up" and state.of_kind("netns") == []
    pods = {r["key"]: r["ips"] for r in state.of_kind("pod")}
    assert pods == {f"p{w}-{i}": [f"10.0.{w}.{i}"] for w in range(6) for i in range(20)}
    assert sorted(p.name for p in directory.iterdir()) == ["state.json"]
