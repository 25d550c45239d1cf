"""The WireGuard kernel backend for real: a Debian kernel with wireguard.ko booted under QEMU.

The host kernel here has no WireGuard module, so `KernelBackend` is proven in a throwaway VM:
virtme-ng boots the kernel unpacked by `scripts/vm-kernel.sh` (`make vm-kernel`) with the
host's root filesystem read-only, and runs `wgvm_guest.py`, which writes a JSON report of its
checks into a directory shared read-write with the host. KVM is used when it works here
(/dev/kvm and a CPU with vmx/svm), TCG (`--disable-kvm`) otherwise.

Python under TCG spends most of its time in imports over 9p, whose root mount caches nothing;
the Python installation and the repository are therefore exported once more and mounted with
`cache=loose` over themselves (read-only, unchanged during the run).
"""

from __future__ import annotations

import importlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
GUEST = HERE / "wgvm_guest.py"
TIMEOUT = 300
# Without these the scenario did not run to its end, whatever else passed.
REQUIRED = (
    "TCP through the tunnel",
    "read: a handshake after traffic",
    "read: rx and tx byte counters",
    "update in place: same interface index",
    "update in place: no new handshake forced",
    "key rotation: traffic resumes",
    "remove: no peers left",
    "reconcile: idempotent",
    "reconcile: peer of a removed node removed",
)
GUEST_MODULES = (
    "netcc.keys",
    "netcc.loader.netns",
    "netcc.loader.wireguard.netlink",
    "netcc.loader.wireguard.apply",
)


def kernel_cache() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "netcc/vm-kernel"
    return Path(os.environ.get("NETCC_VM_KERNEL_CACHE", default))


def find_kernel() -> Path | None:
    """The vmlinuz that `scripts/vm-kernel.sh` unpacked, None if there is none."""
    roots = sorted(p.parent for p in kernel_cache().glob("*/.complete"))
    for root in reversed(roots):
        images = sorted((root / "boot").glob("vmlinuz-*"))
        if images:
            return images[-1]
    return None


def find_vng() -> str | None:
    beside = Path(sys.executable).parent / "vng"
    return str(beside) if beside.exists() else shutil.which("vng")


def kvm_works() -> bool:
    """/dev/kvm usable and a CPU that virtualizes (nested KVM without vmx/svm hangs)."""
    forced = os.environ.get("NETCC_VM_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced == "kvm"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "vmx" in flags or "svm" in flags


def loose_mounts() -> list[Path]:
    """Directories the guest imports from, outermost only: the stdlib, site-packages, the repo."""
    paths = sysconfig.get_paths()
    wanted = {Path(paths[k]).resolve() for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    wanted.add(REPO)
    return [p for p in sorted(wanted) if p.is_dir() and not any(q in p.parents for q in wanted)]


def vm_command(
    vng: str,
    kernel: Path,
    shared: Path,
    args: list[Path],
    guest: Path = GUEST,
    tag_prefix: str = "wgvm",
    memory: str = "1G",
) -> list[str]:
    """virtme-ng running `guest ARGS` in the VM (also the IPsec VM test's and bench's)."""
    mounts = loose_mounts()
    qemu_opts, script = [], ["set -e"]
    for i, path in enumerate(mounts):
        if "," in str(path):
            pytest.skip(f"{path}: a comma in a path QEMU cannot export")
        tag = f"{tag_prefix}{i}"
        qemu_opts += [
            f"-fsdev local,id={tag},path={path},security_model=none,readonly=on,multidevs=remap",
            f"-device virtio-9p-pci,fsdev={tag},mount_tag={tag}",
        ]
        opts = "trans=virtio,version=9p2000.L,cache=loose,msize=512000,ro"
        script.append(f"mount -t 9p -o {opts} {tag} {shlex.quote(str(path))}")
    python = shlex.quote(os.path.realpath(sys.executable))
    argv = " ".join(shlex.quote(str(a)) for a in [guest, *args])
    script.append(f"exec {python} {argv}")
    cmd = [
        vng,
        "--run",
        str(kernel),
        "--force-9p",  # no Rust virtiofsd here; skip trying qemu's C one
        "--verbose",
        "--cpus",
        "2",
        "--memory",
        memory,
        "--rwdir",
        str(shared),
        "--qemu-opts=" + " ".join(qemu_opts),  # `=`: the value starts with a dash
        "--exec",
        "; ".join(script),
    ]
    return cmd if kvm_works() else [*cmd, "--disable-kvm"]


def run_vm(cmd: list[str], timeout: float = TIMEOUT) -> tuple[int, str]:
    """Run the VM to its end (or `timeout`, then kill it and everything it started)."""
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        out += f"\n[killed after {timeout} s]".encode()
    return proc.returncode, out.decode(errors="replace")


@pytest.mark.slow
def test_wgvm_kernel_backend_in_a_vm(tmp_path):
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)")
    vng = find_vng()
    if vng is None:
        pytest.skip("virtme-ng is not installed (pip install virtme-ng)")
    kernel = find_kernel()
    if kernel is None:
        pytest.skip(f"no Debian kernel unpacked in {kernel_cache()} (run `make vm-kernel`)")
    for module in GUEST_MODULES:  # leaves their bytecode for the guest, which cannot write it
        importlib.import_module(module)
    report = tmp_path / "report.json"

    code, out = run_vm(vm_command(vng, kernel, tmp_path, [report]))

    tail = "\n".join(out.splitlines()[-40:])
    assert report.exists(), f"the VM wrote no report (vng exit {code}); its output ends:\n{tail}"
    doc = json.loads(report.read_text())
    failed = [f"{c['name']}: {c['detail']}" for c in doc["checks"] if not c["ok"]]
    assert not failed, "in the VM:\n" + "\n".join(failed)
    ran = {c["name"] for c in doc["checks"]}
    assert not set(REQUIRED) - ran, f"checks that never ran: {sorted(set(REQUIRED) - ran)}"
    assert doc["facts"]["kernel"] == kernel.name.removeprefix("vmlinuz-")
