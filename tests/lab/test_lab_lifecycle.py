"""`lab down` removes exactly what `lab up` made: after a clean up, a crash, or a failure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from labspecs import EXTERNALS, SPEC_POLICY, lab_namespaces, netcc, root_links, teardown_lab

from netcc.lab import core as lab
from netcc.lab import netns as lab_netns
from netcc.lab.state import STATE_DIR, LabState
from netcc.lab.topology import InjectedFailure, LabBuildError
from netcc.pipeline import compile_spec
from netcc.write.tree import write_tree


@pytest.fixture
def clean(root):
    """What the host looks like before the test; the lab is down after it, whatever happens."""
    before = {"netns": lab_namespaces(), "links": root_links()}
    try:
        yield before
    finally:
        teardown_lab()


def assert_nothing_left(before: dict, made: set[str], inodes: set[int]) -> None:
    assert not (made & lab_namespaces()), "lab namespaces left behind"
    assert lab_namespaces() <= before["netns"], "netcc- namespaces left behind"
    assert root_links() == before["links"], "links in the root namespace changed"
    assert not lab_netns.pids_in(inodes), "processes left in the lab's namespaces"
    assert not STATE_DIR.exists(), "state left behind"
    assert not os.path.exists(lab.PIN_BASE), "pins left behind"


def test_down_leaves_nothing(clean, spec_files):
    r = netcc("lab", "up", str(spec_files["none"]), "--external", *EXTERNALS, "--no-load", "--json")
    assert r.returncode == 0, r.stderr
    inv = json.loads(r.stdout)
    made = lab_namespaces() - clean["netns"]
    assert len(made) == 3 + 9 + 2
    inodes = {lab_netns.inode(n) for n in made}
    assert lab.probe_many([("shop/frontend", "dev/tools", 80, "TCP")])[0].allowed
    r = netcc("lab", "down")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("removed netns") == len(made)
    assert {n["netns"] for n in inv["nodes"].values()} <= made
    assert_nothing_left(clean, made, inodes)
    r = netcc("lab", "down")
    assert r.returncode == 1 and "no lab is up" in r.stderr


def test_crash_half_way_then_down(clean, spec_files):
    """SIGKILL after 5 namespaces: no chance to clean up; the state file knows what was made."""
    r = netcc(
        "lab",
        "up",
        str(spec_files["none"]),
        "--external",
        EXTERNALS[0],
        "--no-load",
        env={"NETCC_LAB_FAIL_AFTER": "5", "NETCC_LAB_FAIL_HARD": "1"},
    )
    assert r.returncode == -signal.SIGKILL
    state = LabState.load(STATE_DIR)
    listed = [e["name"] for e in state.of_kind("netns")]
    assert len(listed) == 5 and state.doc["status"] == "building"
    made = lab_namespaces() - clean["netns"]
    assert made == set(listed)
    inodes = {lab_netns.inode(n) for n in made}
    r = netcc("lab", "probe", "shop/frontend", "shop/cart", "80/tcp")
    assert r.returncode == 1 and "not up" in r.stderr
    r = netcc("lab", "up", str(spec_files["none"]), "--no-load")
    assert r.returncode == 1 and "already up" in r.stderr
    r = netcc("lab", "down")
    assert r.returncode == 0, r.stderr
    assert_nothing_left(clean, made, inodes)


@pytest.mark.parametrize("after", [0, 3, 13])
def test_failure_rolls_back(clean, spec_files, after):
    """A failure inside `up` removes what was made before it returns."""
    with pytest.raises(InjectedFailure):
        lab.up(spec_files["none"], external=EXTERNALS, load=False, fail_after=after)
    assert_nothing_left(clean, set(), set())


def test_foreign_namespace_is_not_touched(clean, spec_files):
    """A namespace the lab would use already exists: up fails and leaves it as it was."""
    lab_netns.create("netcc-node-2")
    try:
        foreign = lab_netns.inode("netcc-node-2")
        with pytest.raises(LabBuildError, match="netcc-node-2 already exists"):
            lab.up(spec_files["none"], load=False)
        assert lab_netns.inode("netcc-node-2") == foreign
        assert lab_namespaces() == clean["netns"] | {"netcc-node-2"}
        assert not STATE_DIR.exists()
    finally:
        lab_netns.remove("netcc-node-2")


def test_second_up_is_refused_and_the_first_lab_survives(clean, spec_files):
    lab.up(spec_files["none"], load=False)
    r = netcc("lab", "up", str(spec_files["none"]), "--no-load")
    assert r.returncode == 1 and "already up" in r.stderr
    assert lab.probe_many([("shop/cart", "payments/ledger", 9, "UDP")])[0].allowed


@pytest.fixture(scope="module")
def policy_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("lifecycle-out") / "out"
    write_tree(compile_spec(SPEC_POLICY.encode(), "lab-policy.yaml"), out)
    return out


def test_loader_failure_rolls_back(clean, loader, spec_files, policy_out, monkeypatch):
    """The loader fails on the second node: the first node's datapath and all else go."""
    import netcc.loader.apply as apply_module

    real = apply_module.apply

    def flaky(out, node, **kw):
        if node == "node-2":
            raise RuntimeError("injected loader failure")
        return real(out, node, **kw)

    monkeypatch.setattr(apply_module, "apply", flaky)
    with pytest.raises(lab.LabError, match="the loader failed on node-2"):
        lab.up(spec_files["policy"], external=EXTERNALS, artifacts=policy_out)
    assert_nothing_left(clean, set(), set())


def test_crash_while_loading_then_down(clean, loader, spec_files, policy_out):
    """SIGKILL right after the loader ran on node-1: down detaches it and removes the rest."""
    code = (
        "import os, signal, sys\n"
        "import netcc.loader.apply as m\n"
        "real = m.apply\n"
        "def once(out, node, **kw):\n"
        "    r = real(out, node, **kw)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "m.apply = once\n"
        "from netcc.cli.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    argv = ["lab", "up", str(spec_files["policy"]), "--artifacts", str(policy_out)]
    r = subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert os.path.isdir(f"{lab.PIN_BASE}/node-1")
    made = lab_namespaces() - clean["netns"]
    inodes = {lab_netns.inode(n) for n in made}
    r = netcc("lab", "down")
    assert r.returncode == 0, r.stderr
    assert "removed loader on node-1" in r.stdout
    assert_nothing_left(clean, made, inodes)
