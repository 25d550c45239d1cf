"""Kernel tests: every test here is marked `kernel` and skips with the reason when it can't run."""

import pytest
from kernelenv import kernel_skip_reason


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/tests/kernel/" in str(item.path):
            item.add_marker(pytest.mark.kernel)
            reason = kernel_skip_reason()
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))
