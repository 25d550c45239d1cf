"""IPsec between nodes for real: a Debian kernel with esp4 and xfrm_user booted under QEMU.

This machine's kernel has XFRM but no ESP, so the node side of IPsec is proven in a throwaway
VM, as the WireGuard kernel backend is (tests/wireguard_vm, whose boot helpers this reuses):
virtme-ng boots the kernel `scripts/vm-kernel.sh` unpacked (`make vm-kernel`), the host's root
filesystem read-only, and runs `ipsecvm_guest.py`, which writes a JSON report of its checks
into a directory shared with the host. KVM where it works, TCG otherwise.

On the host: two cluster keys from `netcc ipsec keygen`, and examples/shop.yaml (plus three
unisolated probe pods, one per node) compiled with `netcc compile` four times, once per
rollout phase of a rotation from key 1 to key 2 (`removedKeyGraceSeconds` short, so the
grace runs out within the run). In the guest: the lab with the datapath, the reconciler on
every node, probes, a capture of the underlay, a rotation under TCP streams with the XFRM
error counters watched (see ipsecvm_guest.py).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest
from clirun import run

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
GUEST = HERE / "ipsecvm_guest.py"
SHOP = REPO / "examples" / "shop.yaml"
TIMEOUT = 600  # TCG on a busy machine: the scenario alone took 90-200 s
GRACE = 4  # removedKeyGraceSeconds of the rotation's last phase
PHASES = (
    [(1, "send")],
    [(2, "accept"), (1, "send")],
    [(2, "send"), (1, "accept")],
    [(2, "send")],
)
# Without these the scenario did not run to its end, whatever else passed.
REQUIRED = (
    "with IPsec: allowed and denied probes as the policy says",
    "TCP between pods on different nodes (node-1 -> node-2, 256 KiB echoed)",
    "UDP between pods on different nodes",
    "capture: nothing but ESP between the nodes",
    "capture: no pod address on the underlay",
    "second apply: unchanged on every node",
    "second apply: unrelated XFRM state and policy untouched",
    "phase 2 (key 2 sends): every XFRM error counter 0 on every node",
    "phase 3 (key 1 removed): every stream alive and moving",
    "after the grace: key 1's in states removed",
    "streams survived the whole rotation",
    "XFRM error counters 0 on every node at the end",
    "status: key 2 SAs with sequence numbers and byte counters",
)
GUEST_MODULES = (
    "netcc.lab.core",
    "netcc.lab.probe",
    "netcc.loader.apply",
    "netcc.loader.status",
    "netcc.loader.ipsec.apply",
    "netcc.loader.ipsec.xfrm",
    "netcc.contract.lock",
)
PROBE_PODS = """\
    - {name: a, namespace: probe, node: node-1, labels: {app: probe}, ips: [10.244.1.30]}
    - {name: b, namespace: probe, node: node-2, labels: {app: probe}, ips: [10.244.2.30]}
    - {name: c, namespace: probe, node: node-3, labels: {app: probe}, ips: [10.244.3.30]}
"""


def _boot():
    """The WireGuard VM test's boot helpers (kernel, virtme-ng, KVM, 9p mounts)."""
    spec = importlib.util.spec_from_file_location(
        "_netcc_vm_boot", REPO / "tests" / "wireguard_vm" / "test_wgvm_kernel.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def spec_text(keydir: Path, keys: list[tuple[int, str]], fingerprints: dict[int, str]) -> str:
    text = SHOP.read_text()
    entries = ", ".join(
        f'{{id: {i}, state: {s}, fingerprint: "{fingerprints[i]}"}}' for i, s in keys
    )
    block = (
        "  encryption:\n    ipsec:\n      enabled: true\n"
        f"      keyDirectory: {keydir}\n      removedKeyGraceSeconds: {GRACE}\n"
        f"      keys: [{entries}]\n"
    )
    text = text.replace("  namespaces:\n", block + "  namespaces:\n", 1)
    text = text.replace("  namespaces:\n", "  namespaces:\n    - {name: probe}\n", 1)
    return text.replace("  workloads:\n", "  workloads:\n" + PROBE_PODS, 1)


def keygen(keydir: Path, key_id: int) -> str:
    """`netcc ipsec keygen`: the key file (0600) and its fingerprint, printed."""
    r = run("ipsec", "keygen", keydir / f"key-{key_id}", "--key-id", key_id)
    assert r.code == 0, r.stderr
    found = re.search(r"fingerprint ([0-9a-f]{32})", r.stdout)
    assert found, r.stdout
    return found.group(1)


def compile_all(work: Path, fingerprints: dict[int, str]) -> list[Path]:
    """`netcc compile` of each phase's spec."""
    outs = []
    for i, keys in enumerate(PHASES):
        spec = work / f"phase{i}.yaml"
        spec.write_text(spec_text(work / "keys", keys, fingerprints))
        out = work / f"out{i}"
        r = run("compile", spec, "-o", out)
        assert r.code == 0, r.stderr
        outs.append(out)
    return outs


def vm_command(boot, vng: str, kernel: Path, shared: Path, args: list[Path]) -> list[str]:
    """The WireGuard VM test's command, running GUEST (read at call time: the bench swaps it)."""
    return boot.vm_command(
        vng, kernel, shared, args, guest=GUEST, tag_prefix="ipsecvm", memory="1536M"
    )


@pytest.mark.slow
def test_ipsec_between_nodes_in_a_vm(tmp_path):
    boot = _boot()
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)")
    vng = boot.find_vng()
    if vng is None:
        pytest.skip("virtme-ng is not installed (pip install virtme-ng)")
    kernel = boot.find_kernel()
    if kernel is None:
        pytest.skip(f"no Debian kernel unpacked in {boot.kernel_cache()} (run `make vm-kernel`)")
    modules = kernel.parent.parent / "lib" / "modules" / kernel.name.removeprefix("vmlinuz-")
    assert list(modules.rglob("esp4.ko*")), f"{modules} has no esp4 (scripts/vm-kernel.sh)"
    keydir = tmp_path / "keys"
    keydir.mkdir(mode=0o700)
    fingerprints = {i: keygen(keydir, i) for i in (1, 2)}
    outs = compile_all(tmp_path, fingerprints)
    for module in GUEST_MODULES:  # leaves their bytecode for the guest, which cannot write it
        importlib.import_module(module)
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {"spec": str(tmp_path / "phase0.yaml"), "outs": [str(o) for o in outs], "grace": GRACE}
        )
    )
    report = tmp_path / "report.json"

    code, out = boot.run_vm(vm_command(boot, vng, kernel, tmp_path, [report, config]), TIMEOUT)

    tail = "\n".join(out.splitlines()[-60:])
    assert report.exists(), f"the VM wrote no report (vng exit {code}); its output ends:\n{tail}"
    doc = json.loads(report.read_text())
    failed = [f"{c['name']}: {c['detail']}" for c in doc["checks"] if not c["ok"]]
    assert not failed, "in the VM:\n" + "\n".join(failed) + f"\nfacts: {doc['facts']}"
    ran = {c["name"] for c in doc["checks"]}
    assert not set(REQUIRED) - ran, f"checks that never ran: {sorted(set(REQUIRED) - ran)}"
    assert doc["facts"]["kernel"] == kernel.name.removeprefix("vmlinuz-")
    print("ipsecvm facts:", json.dumps(doc["facts"], indent=1))  # shown with -s
    text = report.read_text() + out
    for key_file in keydir.iterdir():  # no key in anything the guest printed or wrote
        secret = key_file.read_text().split()[2]
        assert secret not in text
