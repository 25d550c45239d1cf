"""Shared test setup.

- Helpers in tests/support are importable from every test directory.
- Tests marked `kernel` skip, with the reason, where the kernel can't run them; as root a skip
  of a kernel test is turned into a failure, so CI (root) can never pass by skipping.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "support"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and item.get_closest_marker("kernel") and os.geteuid() == 0:
        report.outcome = "failed"
        report.longrepr = f"kernel test skipped as root: {report.longrepr}"
