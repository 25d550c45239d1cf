"""Service tests: most run the compiled programs in the kernel (tests/conftest.py says which)."""

import pytest


@pytest.fixture
def k(out):
    """The compiled `out` of the module, loaded as a KernelCluster for BPF_PROG_TEST_RUN."""
    from netcc.loader.kernel_cluster import KernelCluster

    with KernelCluster(out) as cluster:
        yield cluster
