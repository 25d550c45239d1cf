"""Service kernel tests are marked `kernel` and skip with the reason when they can't run."""

import pytest
from kernelenv import kernel_skip_reason


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/tests/services/" in str(item.path) and "kernel" in item.name.split("[")[0]:
            item.add_marker(pytest.mark.kernel)
            reason = kernel_skip_reason()
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))
