"""`netcc load apply` then `status` with the uplink (NodePort) hooks: a first apply, an update
adding them, one removing them (every service gone), an update from an object of the previous
netcc version (no uplink programs), and detach. Status must be right right after each apply.

Creates network namespaces: run under `flock /tmp/netcc-lab.lock`."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from kernelenv import compile_to
from svcnode import NODE_ADDR, spec, svc_node

from netcc.build.clang import compile_objects
from netcc.contract.lock import make_lock
from netcc.loader.attach import UPLINK_PROGRAM_FOR

UPLINK_PROGRAMS = tuple(UPLINK_PROGRAM_FOR.values())


@pytest.fixture(scope="module")
def outs(tmp_path_factory):
    root = tmp_path_factory.mktemp("svcouts")
    try:
        found = {
            "plain": compile_to(spec(service=False), root / "plain"),
            "svc": compile_to(spec(service=True), root / "svc"),
        }
        found["old"] = root / "old"
        shutil.copytree(found["plain"], found["old"])
        _without_uplink_programs(found["old"])
        yield found
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _without_uplink_programs(out: Path) -> None:
    """OUT as the previous netcc version built it: an object with the pod programs only."""
    c = out / "bpf" / "datapath.c"
    text, n = re.subn(r"/\* Packets arriving at the node's uplink.*?(?=char LICENSE)", "",
                      c.read_text(), flags=re.S)  # fmt: skip
    assert n == 1
    c.write_text(text)
    sources = {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in (out / "bpf").rglob("*")
        if p.suffix in (".c", ".h")
    }
    (out / "bpf" / "datapath.o").write_bytes(
        compile_objects(sources, ["bpf/datapath.c"])["bpf/datapath.o"]
    )
    lock = json.loads((out / "netcc.lock.json").read_text())
    tree = {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in out.rglob("*")
        if p.is_file() and p.name != "netcc.lock.json"
    }
    doc = json.loads(make_lock(tree, b"", lock["netcc"], lock["clang"]))
    doc["spec"] = lock["spec"]
    (out / "netcc.lock.json").write_text(json.dumps(doc, indent=2) + "\n")


def _uplink_hooks(st: dict) -> dict:
    ifaces = [i for i in st["interfaces"] if i.get("role") == "uplink"]
    return {d: h for i in ifaces for d, h in i["hooks"].items()}


def _assert_ok(st: dict, uplink: bool) -> None:
    assert st["ok"], st["problems"]
    hooks = _uplink_hooks(st)
    if uplink:
        assert {d: (h["program"], h["ok"]) for d, h in hooks.items()} == {
            "ingress": ("netcc_from_uplink", True),
            "egress": ("netcc_to_uplink", True),
        }
        assert all(st["programs"][p] for p in ("netcc_from_uplink", "netcc_to_uplink"))
    else:
        assert hooks == {}


@pytest.mark.parametrize("mode", ["tcx", "tc"])
def test_kernel_status_follows_uplink_hooks(mode, outs, tmp_path, monkeypatch):
    monkeypatch.setenv("NETCC_ATTACH", mode)
    with svc_node(tmp_path / "state") as node:
        uplink = node.ifindex("uplink0")
        # first apply with a NodePort service: the uplink gets both hooks
        r = node.apply(outs["svc"])
        assert {(h["ifindex"], h["program"]) for h in r.hooks if h.get("role") == "uplink"} == {
            (uplink, "netcc_from_uplink"),
            (uplink, "netcc_to_uplink"),
        }
        _assert_ok(node.status(), uplink=True)
        # every service removed: the uplink hooks go away
        r = node.apply(outs["plain"])
        gone = [h for h in r.hooks if h["ifindex"] == uplink]
        assert gone and {h["action"] for h in gone} == {"detached"}
        _assert_ok(node.status(), uplink=False)
        assert "netcc" not in node.run("tc", "filter", "show", "dev", "uplink0", "ingress")
        # and come back with an update adding a service
        node.apply(outs["svc"])
        _assert_ok(node.status(), uplink=True)
        # detach: nothing left, the uplink included
        node.detach()
        assert not node.state_dir.exists() or not (node.state_dir / "state.json").exists()
        for d in ("ingress", "egress"):
            assert "netcc" not in node.run("tc", "filter", "show", "dev", "uplink0", d)
        assert not node.pin_root.exists() or not list(node.pin_root.rglob("*"))  # no pin left
        assert NODE_ADDR in node.run("ip", "-4", "addr", "show", "dev", "uplink0")


def test_kernel_status_after_update_from_previous_version(outs, tmp_path, monkeypatch):
    monkeypatch.setenv("NETCC_ATTACH", "tcx")
    with svc_node(tmp_path / "state") as node:
        r = node.apply(outs["old"])  # an object without the uplink programs
        assert r.status == "applied"
        _assert_ok(node.status(), uplink=False)
        node.apply(outs["svc"])
        _assert_ok(node.status(), uplink=True)
        node.apply(outs["old"])  # and back (a rollback of the rollout)
        _assert_ok(node.status(), uplink=False)


def test_kernel_status_after_reapply_over_previous_loader_state(outs, tmp_path, monkeypatch):
    """The same OUT, applied before by a loader that knew only the pod programs: the next
    apply pins and attaches the uplink programs, and status is right at once."""
    monkeypatch.setenv("NETCC_ATTACH", "tcx")
    with svc_node(tmp_path / "state") as node:
        node.apply(outs["svc"])
        uplink = node.ifindex("uplink0")
        doc = json.loads((node.state_dir / "state.json").read_text())
        for d in ("ingress", "egress"):  # the old loader made no uplink links
            (node.pin_root / "links" / f"{uplink}-{d}").unlink()
        for p in UPLINK_PROGRAMS:
            (node.pin_root / "progs" / doc["digest"] / p).unlink()
            del doc["programs"][p]
        doc["hooks"] = [h for h in doc["hooks"] if h.get("role", "pod") == "pod"]
        for h in doc["hooks"]:
            h.pop("role", None)
        (node.state_dir / "state.json").write_text(json.dumps(doc))
        r = node.apply(outs["svc"])
        assert {h["action"] for h in r.hooks if h.get("role") == "uplink"} == {"attached"}
        _assert_ok(node.status(), uplink=True)
