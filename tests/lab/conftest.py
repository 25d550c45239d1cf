"""Lab tests: real namespaces, veths and sockets, so most of them need root.

Every test that brings a lab up tears it down again, also when it fails; a lab that is
already up when the tests start (someone's own) is left alone and the tests fail instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from labspecs import SPEC_NO_POLICY, SPEC_POLICY

from netcc.lab.state import STATE_DIR, LabState


@pytest.fixture
def root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: creates network namespaces")
    if LabState.exists(STATE_DIR):
        pytest.fail(f"a lab is already up ({STATE_DIR}); not touching it: run `netcc lab down`")


@pytest.fixture(scope="module")
def module_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: creates network namespaces")
    if LabState.exists(STATE_DIR):
        pytest.fail(f"a lab is already up ({STATE_DIR}); not touching it: run `netcc lab down`")


@pytest.fixture(scope="session")
def spec_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("lab-specs")
    files = {"policy": d / "lab-policy.yaml", "none": d / "lab-none.yaml"}
    files["policy"].write_text(SPEC_POLICY)
    files["none"].write_text(SPEC_NO_POLICY)
    return files
