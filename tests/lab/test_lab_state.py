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
