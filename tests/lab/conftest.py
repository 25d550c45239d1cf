"""Lab tests: real namespaces, veths and sockets. They are kernel tests (tests/conftest.py;
test_lab_plan.py, pure, aside), so they skip without root, and fail when skipped as root.

Every test that brings a lab up tears it down again, also when it fails; a lab that is
already up when the tests start (someone's own) is left alone and the tests fail instead.
The loader not importing fails the tests that load it, never skips them (`loader`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from labspecs import SPEC_NO_POLICY, SPEC_POLICY

from netcc.lab import core as lab
from netcc.lab.state import STATE_DIR, LabState


def no_lab_up() -> None:
    if LabState.exists(STATE_DIR):
        pytest.fail(f"a lab is already up ({STATE_DIR}); not touching it: run `netcc lab down`")


@pytest.fixture
def root() -> None:
    """No lab is up (someone's own would be in the way): the test may make one."""
    no_lab_up()


@pytest.fixture(scope="module")
def module_root() -> None:
    """`root` for the tests of a module that share one lab."""
    no_lab_up()


@pytest.fixture(scope="session")
def loader() -> None:
    """The node loader can run: a loader that does not import is a failure, never a skip."""
    if reason := lab.loader_unavailable_reason():
        pytest.fail(f"the node loader is not available: {reason}")


@pytest.fixture(scope="session")
def spec_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("lab-specs")
    files = {"policy": d / "lab-policy.yaml", "none": d / "lab-none.yaml"}
    files["policy"].write_text(SPEC_POLICY)
    files["none"].write_text(SPEC_NO_POLICY)
    return files
