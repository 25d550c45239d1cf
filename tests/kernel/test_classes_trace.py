"""`netcc trace` of class pods: an address inside a class block is a pod of that class on the
node whose podCIDR holds it, given the endpoint entry its node daemon would write; the kernel's
verdict then agrees with `netcc why` (the reference semantics) on every pair, in both
directions, and names the same rule."""

from __future__ import annotations

import itertools
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from netcc.contract import classes as classes_file
from netcc.frontend import parse_spec
from netcc.loader.classpods import class_endpoint, class_pod_node
from netcc.loader.kernel_cluster import KernelCluster
from netcc.loader.trace import trace
from netcc.pipeline import compile_spec
from netcc.review.why import question, why
from netcc.write.tree import write_tree

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "examples" / "pods.yaml"
PORTS = (8080, 9000, 5432)  # the ports examples/pods.yaml's rules name


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pods") / "out"
    write_tree(compile_spec(SPEC.read_bytes(), "pods.yaml"), path)
    return path


def _class_addresses(out: Path) -> list[str]:
    """The first and last address of every class's block on every node."""
    import json

    classes = classes_file.load((out / classes_file.CLASSES_FILE).read_bytes())
    found = []
    for node_json in sorted((out / "nodes").glob("*/node.json")):
        cidr = IPv4Network(json.loads(node_json.read_text())["podCIDR"])
        for c in classes.classes:
            first = cidr.network_address + c.offset
            found += [str(first), str(first + c.size - 1)]
    return found


def test_class_addresses_are_placed_on_their_node(out: Path) -> None:
    for ip in _class_addresses(out):
        node = class_pod_node(out, ip)
        assert node is not None, ip
        values = class_endpoint(out, node, ip)
        assert values is not None and values["workload"] == 0 and values["ifindex"] == 0
    assert class_pod_node(out, "10.244.3.10") is None  # the static db: OUT lists it
    assert class_pod_node(out, "10.244.1.2") is None  # no class block holds it


def test_the_kernel_agrees_with_why_on_class_pods(out: Path) -> None:
    """Every pair of class-block ends and the static db, in both directions, on each port
    a policy names: one cluster loaded once, each class pod added as `trace` adds it."""
    cluster, _ = parse_spec(SPEC.read_bytes(), "pods.yaml")
    ends = [*_class_addresses(out)[::3], "10.244.3.10"]
    checked = 0
    with KernelCluster(out) as k:
        for ip in ends:
            node = class_pod_node(out, ip)
            assert node is None or k.add_class_pod(ip, node)
        for (src, dst), port in itertools.product(itertools.permutations(ends, 2), PORTS):
            kernel = k.allows(src, dst, 6, 43210, port)
            model = why(cluster, question(cluster, src, dst, port, "TCP"))
            assert kernel == model.allowed, (src, dst, port)
            checked += 1
    assert checked >= 60


def test_trace_names_the_rule_for_class_pods(out: Path) -> None:
    """`netcc trace` from a web pod on node-1 to an api pod on node-2: the api's ingress rule
    on 9000; on 8080 the api's default deny."""
    classes = classes_file.load((out / classes_file.CLASSES_FILE).read_bytes())
    api = classes.by_key("shop/api")
    assert api is not None
    node2 = IPv4Network("10.244.2.0/24")
    api_ip = str(node2.network_address + api.offset + 1)
    web = classes.by_key("shop/web")
    assert web is not None
    web_ip = str(IPv4Network("10.244.1.0/24").network_address + web.offset)
    assert class_pod_node(out, web_ip) == "node-1" and class_pod_node(out, api_ip) == "node-2"
    allowed = trace(out, web_ip, api_ip, 9000, "TCP")
    assert [h.node for h in allowed] == ["node-1", "node-2"] and all(h.passed for h in allowed)
    assert "shop/api-from-web ingress rule 0" in allowed[-1].doc
    denied = trace(out, web_ip, api_ip, 8080, "TCP")
    assert not denied[-1].passed and "shop/api ingress: isolated by" in denied[-1].doc
