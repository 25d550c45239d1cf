"""Workload classes in the kernel: packets from and to addresses inside class blocks, against
the Python model (`netcc.semantics.policy.evaluate`).

The compiled OUT knows no class pod: the node daemon adds each one's `netcc_endpoints` entry
when the pod starts, from `classes.json` (the endpoint template) and `node.json` (the router
address). Here the test does what the daemon does, for the first, a middle and the last
address of every class's block on every node, and then sends packets between them, the
static pod, unallocated offsets, an address just outside every block, nodes and the world.
The verdict of each side (from conntrack) must be one the model gives, which holds the
remote's identity and peer class (the two-level ipcache lookup) to the model too.
"""

from __future__ import annotations

import json
import random
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import yaml
from kernelenv import compile_to

from netcc.contract import classes as contract_classes
from netcc.frontend import parse_spec
from netcc.loader.kernel_cluster import KernelCluster, ct_verdict
from netcc.loader.maps import BpfMap
from netcc.semantics.policy import evaluate

GOLDEN_SPEC = Path(__file__).resolve().parents[1] / "golden" / "specs" / "classes.yaml"
RESERVED = {"self": {4}, "host": {3}, "unisolated": {1, 2}}
PORTS = ((6, 8080), (6, 9000), (6, 5432), (6, 80), (6, 81), (17, 8080))


def _cut_spec() -> str:
    """The golden spec with an ipBlock cutting inside node-a's podCIDR and inside a block."""
    doc = yaml.safe_load(GOLDEN_SPEC.read_text())
    out = compile_classes(doc)
    web = out.by_key("shop/web")
    assert web is not None
    inside = IPv4Network(f"10.244.1.{web.offset}/{32 - (web.size.bit_length() - 1) + 1}")
    doc["spec"]["policies"].append(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "api-from-half-of-web", "namespace": "shop"},
            "spec": {
                "podSelector": {"matchLabels": {"app": "api"}},
                "ingress": [
                    {"from": [{"ipBlock": {"cidr": str(inside)}}], "ports": [{"port": 81}]}
                ],
            },
        }
    )
    return yaml.safe_dump(doc, sort_keys=False)


def compile_classes(doc: dict) -> contract_classes.Classes:
    from netcc.pipeline import compile_spec

    tree = compile_spec(yaml.safe_dump(doc, sort_keys=False).encode(), "classes.yaml")
    return contract_classes.load(tree[contract_classes.CLASSES_FILE])


def class_pods(out: Path) -> dict[str, tuple[str, dict]]:
    """address -> (node, endpoint values) of the first, a middle and the last address of
    every class's block on every node, as the daemon would network them."""
    classes = contract_classes.load((out / contract_classes.CLASSES_FILE).read_bytes())
    pods = {}
    for node_dir in sorted((out / "nodes").iterdir()):
        node = json.loads((node_dir / "node.json").read_text())
        base = int(IPv4Network(node["podCIDR"]).network_address)
        for c in classes.classes:
            for i in sorted({0, c.size // 2, c.size - 1}):
                ip = str(IPv4Address(base + c.offset + i))
                pods[ip] = (node["node"], {**c.endpoint, "ifindex": 0, "router": node["router"]})
    return pods


def probes(out: Path, pods: dict[str, tuple[str, dict]]) -> list[str]:
    """Addresses that are no class pod: unallocated offsets, just outside the blocks, the
    static pod, nodes, the world."""
    classes = contract_classes.load((out / contract_classes.CLASSES_FILE).read_bytes())
    taken = {o for c in classes.classes for o in range(c.offset, c.offset + c.size)}
    found = []
    for node_dir in sorted((out / "nodes").iterdir()):
        node = json.loads((node_dir / "node.json").read_text())
        net = IPv4Network(node["podCIDR"])
        base = int(net.network_address)
        free = [o for o in range(2, net.num_addresses - 1) if o not in taken]
        after = [c.offset + c.size for c in classes.classes if c.offset + c.size not in taken]
        for o in (free[0], free[len(free) // 2], free[-1], *after[:2]):
            found.append(str(IPv4Address(base + o)))
        found += [node["address"], node["router"]]
    return [*found, "10.244.2.10", "203.0.113.9", "10.244.0.7"]


def add_endpoints(k: KernelCluster, pods: dict[str, tuple[str, dict]]) -> None:
    for ip, (node, values) in pods.items():
        dp = k.nodes[node]
        endpoints = BpfMap.borrow(dp.obj.map_fd("netcc_endpoints"), "netcc_endpoints", dp.layout)
        endpoints.put(endpoints.pack_key({"ip": ip}), dp.layout.pack("endpoint_info", values))
        k.pods[ip] = node


def rule_numbers(out: Path) -> dict[tuple[str, str, int], int]:
    doc = json.loads((out / "verdicts.json").read_text())
    return {
        (v["policy"], v["direction"], v["index"]): v["number"]
        for v in doc["verdicts"]
        if v.get("policy")
    }


def check(text: str, out: Path, flows: int, seed: int) -> list[str]:
    cluster, _ = parse_spec(text, "classes.yaml")
    compile_to(text, out)
    pods = class_pods(out)
    others = probes(out, pods)
    rules = rule_numbers(out)
    rng = random.Random(seed)
    everyone = sorted(pods) + others
    pairs = [(s, d) for s in pods for d in everyone if s != d]
    pairs += [(s, d) for s in others for d in pods]
    rng.shuffle(pairs)
    wrong: list[str] = []
    with KernelCluster(out) as k:
        add_endpoints(k, pods)
        for i, (src, dst) in enumerate(pairs[:flows]):
            proto, port = PORTS[i % len(PORTS)]
            sport = 20000 + i
            model = evaluate(cluster, IPv4Address(src), IPv4Address(dst), proto, port)
            kernel = k.allows(src, dst, proto, sport, port)
            if kernel != model.allowed:
                wrong.append(f"{src} -> {dst} {port}/{proto}: kernel {kernel}, model {model}")
                continue
            if not kernel:
                continue
            for side, local, remote, lp, rp in (
                (model.egress, src, dst, sport, port),
                (model.ingress, dst, src, port, sport),
            ):
                if side is None or local not in k.pods:
                    continue
                got = ct_verdict(k, k.pods[local], local, remote, lp, rp, proto)
                want = RESERVED.get(side.reason) or {
                    rules[(r.policy, r.direction, r.index)] for r in side.rules
                }
                if got not in want:
                    wrong.append(f"{src} -> {dst} {port}/{proto}: {side.direction} {got}, {side}")
    return wrong


def test_class_blocks_against_the_model(tmp_path):
    wrong = check(GOLDEN_SPEC.read_text(), tmp_path / "out", flows=1500, seed=1)
    assert not wrong, "\n".join(wrong[:20])


def test_an_ipblock_cutting_a_block_against_the_model(tmp_path):
    text = _cut_spec()
    wrong = check(text, tmp_path / "out", flows=1500, seed=2)
    assert not wrong, "\n".join(wrong[:20])
    cidr = (tmp_path / "out" / "maps" / "netcc_ipcache_cidr.json").read_text()
    assert "an ipBlock cuts its podCIDR" in cidr  # node-a: entries per block, not the podCIDR
