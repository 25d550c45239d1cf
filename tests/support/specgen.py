"""Random cluster specs and flows for differential tests (kernel vs model).

Specs are plain dicts, as a user would write them, so they go through the real front end. The
vocabulary is small on purpose: selectors, ports and blocks then often hit, miss and overlap.
"""

from __future__ import annotations

import random
from ipaddress import IPv4Address

LABEL_KEYS = ("app", "tier", "env")
LABEL_VALUES = ("a", "b", "c")
PORT_NAMES = ("http", "dns", "metrics")
NUMBERS = (53, 80, 443, 8080, 9090, 9100)
PROTOCOLS = ("TCP", "UDP", "SCTP")
BLOCKS = (
    ("10.244.1.0/24", ["10.244.1.16/28"]),
    ("10.244.0.0/16", ["10.244.2.0/24"]),
    ("192.0.2.0/24", ["192.0.2.128/25"]),
    ("0.0.0.0/0", ["10.0.0.0/8"]),
    ("198.51.100.0/24", []),
    ("192.168.77.0/24", []),
)
EXTERNALS = ("192.0.2.10", "192.0.2.200", "198.51.100.7", "203.0.113.9", "10.9.9.9")
NODES = (("node-1", "192.168.77.11", "10.244.1.0/24"), ("node-2", "192.168.77.12", "10.244.2.0/24"))
NAMESPACES = ("red", "blue", "green")


def _labels(rng: random.Random, at_most: int = 2) -> dict[str, str]:
    keys = rng.sample(LABEL_KEYS, rng.randint(0, at_most))
    return {k: rng.choice(LABEL_VALUES) for k in keys}


def _selector(rng: random.Random) -> dict:
    sel: dict = {}
    if rng.random() < 0.6:
        sel["matchLabels"] = _labels(rng, 1)
    if rng.random() < 0.4:
        op = rng.choice(("In", "NotIn", "Exists", "DoesNotExist"))
        expr = {"key": rng.choice(LABEL_KEYS), "operator": op}
        if op in ("In", "NotIn"):
            expr["values"] = rng.sample(LABEL_VALUES, rng.randint(1, 2))
        sel["matchExpressions"] = [expr]
    return sel


def _peer(rng: random.Random) -> dict:
    r = rng.random()
    if r < 0.25:
        cidr, excepts = rng.choice(BLOCKS)
        block: dict = {"cidr": cidr}
        if excepts and rng.random() < 0.6:
            block["except"] = excepts
        return {"ipBlock": block}
    peer = {}
    if r < 0.65:
        peer["podSelector"] = _selector(rng)
    if r >= 0.5:
        peer["namespaceSelector"] = _selector(rng)
    return peer


def _port(rng: random.Random) -> dict:
    r = rng.random()
    port: dict = {}
    if rng.random() < 0.7:
        port["protocol"] = rng.choice(PROTOCOLS)
    if r < 0.35:
        port["port"] = rng.choice(NUMBERS)
    elif r < 0.6:
        port["port"] = rng.choice(PORT_NAMES)
    elif r < 0.85:
        first = rng.choice(NUMBERS)
        port["port"], port["endPort"] = first, first + rng.choice((0, 1, 20, 1000))
    return port


def _rule(rng: random.Random, peers_key: str) -> dict:
    rule = {}
    if rng.random() < 0.75:
        rule[peers_key] = [_peer(rng) for _ in range(rng.randint(0, 2))]
    if rng.random() < 0.7:
        rule["ports"] = [_port(rng) for _ in range(rng.randint(0, 2))]
    return rule


def _policy(rng: random.Random, i: int) -> dict:
    spec: dict = {"podSelector": _selector(rng)}
    if rng.random() < 0.6:
        spec["ingress"] = [_rule(rng, "from") for _ in range(rng.randint(0, 2))]
    if rng.random() < 0.5:
        spec["egress"] = [_rule(rng, "to") for _ in range(rng.randint(0, 2))]
    if rng.random() < 0.5:
        types = rng.choice((["Ingress"], ["Egress"], ["Ingress", "Egress"]))
        spec["policyTypes"] = types
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"p{i}", "namespace": rng.choice(NAMESPACES)},
        "spec": spec,
    }


def random_spec(rng: random.Random, pods: int = 8, policies: int = 5) -> dict:
    """A two-node cluster with random pods, labels, ports and policies."""
    workloads = []
    for i in range(pods):
        node = NODES[i % 2]
        ip = str(IPv4Address(node[2].split("/")[0]) + 10 + i)
        names = rng.sample(PORT_NAMES, rng.randint(0, 2))
        ports = [
            {"name": n, "port": rng.choice(NUMBERS), "protocol": rng.choice(PROTOCOLS)}
            for n in names
        ]
        # a (port, protocol) may appear once per pod
        seen, unique = set(), []
        for p in ports:
            if (p["port"], p["protocol"]) not in seen:
                seen.add((p["port"], p["protocol"]))
                unique.append(p)
        workloads.append(
            {
                "name": f"w{i}",
                "namespace": rng.choice(NAMESPACES),
                "node": node[0],
                "labels": _labels(rng),
                "ips": [ip],
                "ports": unique,
            }
        )
    return {
        "apiVersion": "netcc.io/v1alpha1",
        "kind": "ClusterNetwork",
        "metadata": {"name": "random"},
        "spec": {
            "podCIDR": "10.244.0.0/16",
            "serviceCIDR": "10.96.0.0/16",
            "nodes": [{"name": n, "address": a, "podCIDR": c} for n, a, c in NODES],
            "namespaces": [{"name": n, "labels": _labels(rng, 1)} for n in NAMESPACES],
            "workloads": workloads,
            "policies": [_policy(rng, i) for i in range(policies)],
        },
    }


def random_flows(rng: random.Random, spec: dict, count: int) -> list[tuple[str, str, int, int]]:
    """(src, dst, proto, port) flows between pods, nodes and external hosts."""
    pods = [w["ips"][0] for w in spec["spec"]["workloads"]]
    nodes = [n["address"] for n in spec["spec"]["nodes"]] + ["10.244.1.1", "10.244.2.1"]
    numbers = sorted(
        {p["port"] for w in spec["spec"]["workloads"] for p in w["ports"]}
        | set(NUMBERS)
        | {n + 1 for n in NUMBERS}
        | {1, 65535}
    )
    flows = []
    for _ in range(count):
        src = rng.choice(pods) if rng.random() < 0.75 else rng.choice(EXTERNALS + tuple(nodes))
        dst = rng.choice(pods) if rng.random() < 0.75 or src not in pods else rng.choice(EXTERNALS)
        proto = rng.choice((6, 6, 17, 132, 1))
        port = 0 if proto == 1 else rng.choice(numbers)
        flows.append((src, dst, proto, port))
    return flows
