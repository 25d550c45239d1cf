"""Pod-to-pod throughput and latency: plain, IPsec (ESP, AES-GCM-128) and WireGuard, in one VM run.

This machine's kernel has no ESP and no WireGuard module, so the three are measured in the
QEMU VM the kernel tests use (tests/wireguard_vm and tests/ipsec_vm boot the Debian kernel
that `make vm-kernel` unpacks): the lab of examples/shop.yaml plus three probe pods, the
datapath loaded on every node, and `bench/ipsec_vm_guest.py` measuring between a pod on node-1
and a pod on node-2 (one TCP stream to a sink; 64-byte TCP ping-pong). The three modes share
the boot, the kernel, the topology and the datapath; only the encryption differs.

Usage (root): python3 bench/ipsec_vm.py [--json bench/results/ipsec_vm.json]

The numbers' limits: under TCG (no usable KVM, as on the machine this was written on) every
instruction is emulated, AES-NI and ChaCha20's SIMD included, so the absolute figures say
little about a real node and even the ratios are the emulator's; with KVM they are a VM's
(virtio, 2 vCPUs, both ends in one kernel), still not a NIC's. The run says which it was.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO / "tests" / "support"))
sys.path.insert(0, str(REPO / "tests" / "ipsec_vm"))

import test_ipsecvm_kernel as vm  # noqa: E402  (the VM boot and the specs of the IPsec test)
from clirun import run  # noqa: E402

GUEST = BENCH / "ipsec_vm_guest.py"
MODES = ("plain", "ipsec", "wireguard")


def wireguard_spec(work: Path) -> str:
    keys = work / "wg"
    nodes = ("--nodes", "node-1,node-2,node-3", "--key-path", keys / "{node}.key")
    r = run("keys", "generate", "--out", keys, *nodes)
    assert r.code == 0, r.stderr
    nodes = "\n".join("      " + line for line in r.stdout.splitlines()[1:])
    block = f"  encryption:\n    wireguard:\n      enabled: true\n{nodes}\n"
    text = vm.spec_text(work / "keys", [(1, "send")], {1: "0" * 32})
    text = re.sub(r"  encryption:\n    ipsec:\n(      .*\n)+", block, text)
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, help="write the results here too")
    args = ap.parse_args()
    boot = vm._boot()
    vng, kernel = boot.find_vng(), boot.find_kernel()
    if vng is None or kernel is None:
        print("needs virtme-ng and `make vm-kernel`", file=sys.stderr)
        return 2
    # not under /tmp: a WireGuard privateKeyFile may not be there (the loader pod uses /tmp)
    with tempfile.TemporaryDirectory(prefix="netcc-ipsec-bench-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        (work / "keys").mkdir(mode=0o700)
        fingerprint = vm.keygen(work / "keys", 1)
        specs = {
            "ipsec": vm.spec_text(work / "keys", [(1, "send")], {1: fingerprint}),
            "wireguard": wireguard_spec(work),
        }
        specs["plain"] = re.sub(r"  encryption:\n    ipsec:\n(      .*\n)+", "", specs["ipsec"])
        config = {}
        for mode, text in specs.items():
            spec, out = work / f"{mode}.yaml", work / f"out-{mode}"
            spec.write_text(text)
            r = run("compile", spec, "-o", out)
            assert r.code == 0, r.stderr
            config[mode] = {"spec": str(spec), "out": str(out)}
        for module in (*vm.GUEST_MODULES, "netcc.loader.wireguard.netlink"):
            importlib.import_module(module)
        (work / "config.json").write_text(json.dumps(config))
        result = work / "result.json"
        vm.GUEST = GUEST
        _code, out = boot.run_vm(
            vm.vm_command(boot, vng, kernel, work, [result, work / "config.json"]), 1200
        )
        if not result.exists():
            print("\n".join(out.splitlines()[-40:]), file=sys.stderr)
            return 1
        doc = json.loads(result.read_text())
    doc["accel"] = "kvm" if boot.kvm_works() else "tcg"
    doc["vm"] = "virtme-ng, 2 vCPUs, 1536 MiB"
    print(f"pod-to-pod, node-1 -> node-2, {doc['accel'].upper()}, kernel {doc['kernel']}")
    print(f"{'mode':12} {'TCP Mbit/s':>11} {'RTT p50 us':>11} {'RTT p99 us':>11}")
    for mode in MODES:
        m = doc["modes"].get(mode)
        if m:
            print(f"{mode:12} {m['throughputMbit']:>11} {m['rttMedianUs']:>11} {m['rttP99Us']:>11}")
    for error in doc["errors"]:
        print(error, file=sys.stderr)
    if args.json:  # the layout of bench/results/*.json (bench/moved.py)
        from benchlib import git_state

        figures = {
            f"ipsec_vm.{mode}.{name}": value
            for mode, m in sorted(doc["modes"].items())
            for name, value in (
                ("tcp_mbit", m["throughputMbit"]),
                ("rtt_p50_us", m["rttMedianUs"]),
                ("rtt_p99_us", m["rttP99Us"]),
            )
        }
        result = {
            "section": "pod-to-pod plain, IPsec and WireGuard in a VM (BENCHMARKS.md)",
            "command": "python3 bench/ipsec_vm.py",
            "commit": git_state(),
            "accel": doc["accel"],
            "kernel": doc["kernel"],
            "vm": doc["vm"],
            "figures": figures,
        }
        args.json.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    return 0 if not doc["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
