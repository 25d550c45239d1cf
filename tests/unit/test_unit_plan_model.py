"""The planned maps, looked up the way the datapath looks them up, agree with the model.

A Python rendition of `judge()` in templates/bpf/lib/enforce.h (exact ipcache, then LPM regions,
then the policy LPM for the peer class and for PEER_ANY) is run over random specs and flows and
compared with `netcc.semantics.policy.evaluate`. No kernel needed.
"""

from __future__ import annotations

import random
from ipaddress import IPv4Address, IPv4Network

import pytest
import yaml
from specgen import random_flows, random_spec
from unitspecs import policy_map_entries

from netcc import contract as layout
from netcc.frontend import parse_spec
from netcc.plan.planner import ClusterPlan, NodePlan, plan
from netcc.resolve.resolution import resolve
from netcc.semantics.policy import evaluate


def _bits(profile: int, peer: int, d: int, proto: int, port: int) -> int:
    return (profile << 64) | (peer << 32) | (d << 24) | (proto << 16) | port


def _policy_lookup(node: NodePlan, profile: int, peer: int, d: int, proto: int, port: int) -> int:
    want = _bits(profile, peer, d, proto, port)
    best = (-1, 0)
    for e in policy_map_entries(node):
        k = e.key
        shift = 96 - k["prefixlen"]
        have = _bits(k["profile"], k["peer"], k["dir"], k["proto"], k["port"])
        if have >> shift == want >> shift and k["prefixlen"] > best[0]:
            best = (k["prefixlen"], e.value["verdict"])
    return best[1]


def _ipcache(node: NodePlan, ip: IPv4Address) -> dict:
    for e in node.maps["netcc_ipcache"]:
        if e.key.ip == str(ip):
            return e.value._asdict()
    best = None
    for e in node.maps["netcc_ipcache_cidr"]:
        net = IPv4Network(f"{e.key.ip}/{e.key.prefixlen}")
        if ip in net and (best is None or net.prefixlen > best[0]):
            best = (net.prefixlen, e.value._asdict())
    assert best is not None, "0.0.0.0/0 is always in the LPM ipcache"
    return best[1]


def judge(node: NodePlan, local: IPv4Address, d: int, remote: IPv4Address, proto, port) -> bool:
    ep = next(e.value._asdict() for e in node.maps["netcc_endpoints"] if e.key.ip == str(local))
    peer = _ipcache(node, remote)
    if peer["workload"] and peer["workload"] == ep["workload"]:
        return True
    if d == layout.DIR_INGRESS and peer["flags"] & layout.IPCACHE_FLAGS["IPCACHE_F_HOST"]:
        return True
    name = "INGRESS" if d == layout.DIR_INGRESS else "EGRESS"
    if not ep["flags"] & layout.ENDPOINT_FLAGS[f"ENDPOINT_F_{name}_ISOLATED"]:
        return True
    if _policy_lookup(node, ep["profile"], peer["peer"], d, proto, port):
        return True
    if ep["flags"] & layout.ENDPOINT_FLAGS[f"ENDPOINT_F_{name}_ANY"]:
        return bool(_policy_lookup(node, ep["profile"], layout.PEER_ANY, d, proto, port))
    return False


def _mismatches(p: ClusterPlan, flows) -> list[str]:
    cluster = p.cluster
    nodes = {n.name: n for n in p.nodes}
    wrong = []
    for src, dst, proto, port in flows:
        src, dst = IPv4Address(src), IPv4Address(dst)
        want = evaluate(cluster, src, dst, proto, port)
        got = True
        if want.egress is not None:
            w = cluster.workload_by_ip(src)
            got = got and judge(nodes[w.node], src, layout.DIR_EGRESS, dst, proto, port)
        if want.ingress is not None:
            w = cluster.workload_by_ip(dst)
            got = got and judge(nodes[w.node], dst, layout.DIR_INGRESS, src, proto, port)
        if got != want.allowed:
            wrong.append(f"{src} -> {dst} {proto}/{port}: plan {got}, model {want}")
    return wrong


@pytest.mark.parametrize("seed", range(12))
def test_plan_agrees_with_model_on_random_specs(seed):
    rng = random.Random(seed)
    spec = random_spec(rng, pods=8, policies=6)
    cluster, _ = parse_spec(yaml.safe_dump(spec), "random.yaml")
    wrong = _mismatches(plan(resolve(cluster)), random_flows(rng, spec, 150))
    assert not wrong, "\n".join(wrong[:10])


# Wider vocabulary than specgen: several addresses per pod, nested blocks and excepts that cut
# through node pod CIDRs and node addresses, IPv6 blocks, arbitrary port ranges.
BLOCKS = (
    ("10.0.0.0/8", ["10.244.1.0/24", "10.244.2.128/25"]),
    ("10.244.0.0/16", []),
    ("10.244.1.0/24", ["10.244.1.16/28"]),
    ("10.244.1.16/28", []),
    ("0.0.0.0/0", ["192.168.0.0/16"]),
    ("192.168.77.11/32", []),
    ("192.168.77.0/24", ["192.168.77.12/32"]),
    ("fd00::/8", []),
    ("203.0.113.0/24", ["203.0.113.0/25"]),
)
OTHERS = (
    "192.168.77.11",
    "192.168.77.12",
    "10.244.1.1",
    "10.244.2.1",
    "10.244.1.20",
    "10.244.1.17",
    "10.244.2.200",
    "10.1.2.3",
    "203.0.113.5",
    "203.0.113.200",
    "192.168.1.1",
    "8.8.8.8",
)


def _wide_spec(rng: random.Random) -> dict:
    nodes = [("n1", "192.168.77.11", "10.244.1.0/24"), ("n2", "192.168.77.12", "10.244.2.0/24")]
    workloads, seen = [], set()
    for i in range(8):
        name, _, cidr = nodes[i % 2]
        base = IPv4Address(cidr.split("/")[0])
        offsets = {rng.choice([5, 10, 17, 20, 130, 140, 200 + i]) for _ in range(rng.randint(1, 2))}
        ips = [str(base + o) for o in sorted(offsets) if str(base + o) not in seen]
        if not ips:
            continue
        seen.update(ips)
        ports, used = [], set()
        for port_name in rng.sample(["http", "dns", "m"], rng.randint(0, 2)):
            proto, number = rng.choice(["TCP", "UDP"]), rng.choice([80, 8080, 53, 1000, 65535])
            if (number, proto) not in used:
                used.add((number, proto))
                ports.append({"name": port_name, "port": number, "protocol": proto})
        workloads.append(
            {
                "name": f"w{i}",
                "namespace": rng.choice("ab"),
                "node": name,
                "labels": {"app": rng.choice("xy")},
                "ips": ips,
                "ports": ports,
            }
        )

    def port() -> dict:
        r, out = rng.random(), {"protocol": rng.choice(["TCP", "UDP", "SCTP"])}
        if r < 0.3:
            out["port"] = rng.choice(["http", "dns", "m"])
        elif r < 0.8:
            out["port"] = first = rng.randint(1, 65535)
            if rng.random() < 0.7:
                out["endPort"] = rng.randint(first, min(65535, first + rng.choice([1, 99, 5000])))
        return out

    def peer() -> dict:
        r = rng.random()
        if r < 0.6:
            cidr, excepts = rng.choice(BLOCKS)
            block = {"cidr": cidr}
            if excepts and rng.random() < 0.7:
                block["except"] = excepts
            return {"ipBlock": block}
        out = {}
        if r < 0.8:
            out["podSelector"] = {"matchLabels": {"app": rng.choice("xy")}} if r < 0.7 else {}
        if r >= 0.7:
            out["namespaceSelector"] = {}
        return out

    policies = []
    for i in range(5):
        spec: dict = {"podSelector": rng.choice([{}, {"matchLabels": {"app": rng.choice("xy")}}])}
        for direction, key in (("ingress", "from"), ("egress", "to")):
            if rng.random() < 0.7:
                rules = []
                for _ in range(rng.randint(0, 2)):
                    rule = {}
                    if rng.random() < 0.8:
                        rule[key] = [peer() for _ in range(rng.randint(1, 2))]
                    if rng.random() < 0.8:
                        rule["ports"] = [port() for _ in range(rng.randint(1, 2))]
                    rules.append(rule)
                spec[direction] = rules
        policies.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": f"p{i}", "namespace": rng.choice("ab")},
                "spec": spec,
            }
        )
    return {
        "apiVersion": "netcc.io/v1alpha1",
        "kind": "ClusterNetwork",
        "metadata": {"name": "wide"},
        "spec": {
            "podCIDR": "10.244.0.0/16",
            "serviceCIDR": "10.96.0.0/16",
            "nodes": [{"name": n, "address": a, "podCIDR": c} for n, a, c in nodes],
            "namespaces": [{"name": "a"}, {"name": "b", "labels": {"t": "z"}}],
            "workloads": workloads,
            "policies": policies,
        },
    }


@pytest.mark.parametrize("seed", range(12))
def test_plan_agrees_with_model_on_blocks_ranges_and_multi_address_pods(seed):
    rng = random.Random(1000 + seed)
    spec = _wide_spec(rng)
    cluster, _ = parse_spec(yaml.safe_dump(spec), "wide.yaml")
    pods = [str(a) for w in cluster.workloads for a in w.ips]
    flows = []
    for _ in range(200):
        src = rng.choice(pods + list(OTHERS))
        dst = (
            rng.choice(pods)
            if src not in pods or rng.random() < 0.6
            else rng.choice(pods + list(OTHERS))
        )
        proto = rng.choice([6, 17, 132, 1])
        port = 0 if proto == 1 else rng.choice([80, 8080, 53, 1000, 65535, rng.randint(1, 65535)])
        flows.append((src, dst, proto, port))
    wrong = _mismatches(plan(resolve(cluster)), flows)
    assert not wrong, "\n".join(wrong[:10])
