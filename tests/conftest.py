"""Shared test setup, and the one place that decides which tests are kernel and golden tests.

- Helpers in tests/support are importable from every test directory.
- Kernel tests are every test under a path of KERNEL and not under one of PURE (paths relative
  to tests/). They are marked `kernel` here and nowhere else: a `kernel` marker written in a
  test file is an error. A kernel test skips, with the reason, without root, clang, the tools
  of TOOLS or a BPF-capable kernel; as root a skipped kernel test is a failure, so CI (root)
  can never pass by skipping.
- netcc that does not import is a failure, never a skip: when the loader (the part of netcc
  the kernel tests need to decide whether they can run) does not import, every kernel test
  fails with the import error, root or not. tests/unit/test_unit_imports.py imports every
  module of netcc.
- Golden tests are the tests that use the `golden` fixture (tests/support/golden.py); they are
  marked `golden`, which is what `make golden` runs.
"""

from __future__ import annotations

import os
import shutil
import sys
import traceback
from functools import cache
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "support"))

from golden import Golden, updating  # noqa: E402

# Where the kernel tests are: whole directories (ending in /) and single files.
KERNEL = (
    "daemon/",  # the node daemon (`netcc load run`) serving CNI through the real shim
    "kernel/",  # the compiled datapath through BPF_PROG_TEST_RUN
    "lab/",  # network namespaces, veths, the loader on every node
    "loader/",  # libbpf: objects, maps, pins, test runs
    "loader_apply/",  # `netcc load` on namespaces and veths
    "services/",  # service translation in the kernel, `load apply` of updates
    "services_lab/",  # services with real traffic in the lab
    "wireguard_vm/",  # the kernel backend of WireGuard in a QEMU VM
    "ipsec_vm/",  # IPsec (XFRM, ESP) between lab nodes in a QEMU VM
    "ipsec_xfrm/test_xfrm_netns.py",  # the XFRM netlink client against this kernel
    "k8s/test_k8s_loader.py",  # the DaemonSet's commands in a node namespace
    "review/test_review_kernel.py",  # `why` and the review against the kernel
    "wireguard/test_wg_lab.py",  # a lab with wireguard-go on every node
    "wireguard/test_wg_reconcile.py",  # the reconciler against wireguard-go in a namespace
    "wireguard/test_wg_device_errors.py",  # netlink errors from a real kernel
)
# Files inside those directories that need no kernel, no root and no namespace.
PURE = (
    "daemon/test_daemon_units.py",
    "lab/test_lab_plan.py",
    "loader/test_libbpf_types.py",
    "loader/test_mapdata.py",
    "loader/test_testrun.py",
    "loader_apply/test_loader_apply_plan.py",
    "loader_apply/test_loader_apply_units.py",
    "services/test_svc_plan.py",
    "services/test_svc_why.py",
    "services_lab/test_svclab_resolve.py",
    "wireguard_vm/test_wgvm_translate.py",
)
# What kernel tests run besides Python: clang builds the objects; the rest set up namespaces,
# links and filters, or check them (bpftool).
TOOLS = ("clang", "ip", "tc", "bpftool", "nsenter", "setpriv")


def is_kernel_test(path: Path) -> bool:
    """Whether the test file at `path` holds kernel tests (see KERNEL and PURE)."""
    try:
        rel = path.resolve().relative_to(HERE).as_posix()
    except ValueError:
        return False

    def under(entries: tuple[str, ...]) -> bool:
        return any(rel == e or (e.endswith("/") and rel.startswith(e)) for e in entries)

    return under(KERNEL) and not under(PURE)


@cache
def netcc_import_error() -> str | None:
    """The traceback when the loader's modules do not import, else None."""
    try:
        import kernelenv  # noqa: F401  (imports netcc.loader and the pipeline)
    except Exception:
        return traceback.format_exc(limit=-3)
    return None


@cache
def kernel_skip_reason() -> str | None:
    """Why kernel tests cannot run here, or None (only called when netcc imports)."""
    from kernelenv import kernel_skip_reason as reason

    if os.geteuid() != 0:
        return "needs root: loads BPF programs and makes network namespaces"
    for tool in TOOLS:
        if shutil.which(tool) is None:
            return f"needs {tool}"
    return reason()


def pytest_configure(config: pytest.Config) -> None:
    """KERNEL and PURE name what exists, and PURE only exceptions inside KERNEL directories."""
    stale = [e for e in KERNEL + PURE if not (HERE / e).exists()]
    stray = [e for e in PURE if not any(e.startswith(k) for k in KERNEL if k.endswith("/"))]
    if stale or stray:
        raise pytest.UsageError(
            f"tests/conftest.py: paths that do not exist {stale}, PURE outside KERNEL {stray}"
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    written = sorted({str(i.path) for i in items if i.get_closest_marker("kernel")})
    if written:
        raise pytest.UsageError(
            "kernel tests are chosen in tests/conftest.py (KERNEL), not by a `kernel` marker "
            "in the test file: " + ", ".join(written)
        )
    for item in items:
        if "golden" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.golden)
        if not is_kernel_test(Path(item.path)):
            continue
        item.add_marker(pytest.mark.kernel)
        if netcc_import_error() is None and (reason := kernel_skip_reason()):
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("kernel") and (error := netcc_import_error()):
        pytest.fail(f"netcc does not import, so this kernel test cannot run:\n{error}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and item.get_closest_marker("kernel") and os.geteuid() == 0:
        report.outcome = "failed"
        report.longrepr = f"kernel test skipped as root: {report.longrepr}"


@pytest.fixture
def golden() -> Golden:
    """Compare output with its checked-in golden file: `golden(path, actual)`,
    `golden.tree(root, files)` (see tests/support/golden.py). Using this fixture marks the
    test `golden`; `make golden` regenerates what these tests compare."""
    return Golden(update=updating())
