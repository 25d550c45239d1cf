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


@pytest.fixture
def k(out):
    """The compiled `out` of the module, loaded as a KernelCluster for BPF_PROG_TEST_RUN."""
    from netcc.loader.kernel_cluster import KernelCluster

    with KernelCluster(out) as cluster:
        yield cluster
