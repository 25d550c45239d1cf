"""Workload classes: the keys that matter, classes no selector tells apart, classification
from OUT's classes.json, and the address layout (blocks at the same offset on every node)."""

from __future__ import annotations

import random

import pytest
import yaml

from netcc.contract import classes as contract_classes
from netcc.diagnostics import SpecError
from netcc.frontend import parse_spec
from netcc.plan.blocks import Block, _slot_hash, block_size, layout
from netcc.resolve.classes import indistinguishable, keys_that_matter, match_of

BASE = {
    "apiVersion": "netcc.io/v1alpha1",
    "kind": "ClusterNetwork",
    "metadata": {"name": "c"},
    "spec": {
        "podCIDR": "10.244.0.0/16",
        "serviceCIDR": "10.96.0.0/16",
        "nodes": [
            {"name": "n1", "address": "192.168.1.1", "podCIDR": "10.244.1.0/24"},
            {"name": "n2", "address": "192.168.1.2", "podCIDR": "10.244.2.0/24"},
        ],
        "namespaces": [{"name": "shop", "labels": {"team": "a"}}, {"name": "mon"}],
    },
}


def cluster(workloads=(), policies=(), services=(), nodes=None):
    doc = yaml.safe_load(yaml.safe_dump(BASE))
    doc["spec"]["workloads"] = list(workloads)
    doc["spec"]["policies"] = list(policies)
    doc["spec"]["services"] = list(services)
    if nodes is not None:
        doc["spec"]["nodes"] = nodes
    return parse_spec(yaml.safe_dump(doc), "spec.yaml")[0]


def policy(name, namespace, pod_selector, peers=()):
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"podSelector": pod_selector, "ingress": [{"from": list(peers)}]},
    }


def klass(name, labels, namespace="shop", **extra):
    return {"name": name, "namespace": namespace, "labels": labels, **extra}


def test_a_workload_without_node_and_ips_is_a_class():
    c = cluster([klass("web", {"app": "web"}, perNode=4)])
    assert c.workloads == () and [k.key for k in c.classes] == ["shop/web"]
    assert c.classes[0].per_node == 4


@pytest.mark.parametrize(
    "extra,message",
    [
        ({"node": "n1"}, "a workload with a node needs its fixed addresses in ips"),
        ({"ips": ["10.244.1.5"]}, "a workload with fixed ips needs the node they live on"),
        ({"node": "n1", "ips": ["10.244.1.5"], "perNode": 2}, "perNode is for workload classes"),
    ],
)
def test_half_a_class_is_refused(extra, message):
    with pytest.raises(SpecError) as e:
        cluster([klass("web", {"app": "web"}, **extra)])
    assert message in e.value.format()


def test_keys_that_matter_come_from_selectors_that_can_apply():
    c = cluster(
        [klass("web", {"app": "web"}), klass("prom", {"app": "prom"}, namespace="mon")],
        policies=[
            policy("p", "shop", {"matchLabels": {"tier": "front"}}, [{"podSelector": {}}]),
            policy(
                "q",
                "mon",
                {},
                [
                    {
                        "namespaceSelector": {"matchLabels": {"team": "a"}},
                        "podSelector": {
                            "matchExpressions": [{"key": "role", "operator": "Exists"}]
                        },
                    },
                    {"podSelector": {"matchLabels": {"scrape": "yes"}}},
                ],
            ),
        ],
        services=[
            {
                "name": "s",
                "namespace": "shop",
                "clusterIP": "10.96.0.10",
                "selector": {"version": "v1"},
                "ports": [{"port": 80, "targetPort": 80}],
            }
        ],
    )
    keys = keys_that_matter(c)
    # shop: its policy's podSelector, a peer selecting from mon with a namespaceSelector that
    # matches shop's labels, its service's selector, its classes' own keys
    assert keys["shop"] == ["app", "role", "tier", "version"]
    # mon: the peer without namespaceSelector of a policy of mon, its class's key
    assert keys["mon"] == ["app", "scrape"]


def test_classes_that_agree_on_every_key_that_matters_are_found():
    a = klass("a", {"app": "web", "hash": "1"})
    b = klass("b", {"app": "web"})
    c = cluster([a, b])  # `hash` is declared by a, so it matters: they differ
    assert indistinguishable(c) == []
    assert match_of(c.classes[1], keys_that_matter(c)["shop"]) == {"app": "web", "hash": None}


def test_classify_from_the_classes_document():
    c = cluster([klass("web", {"app": "web"}), klass("db", {"app": "db", "tier": "back"})])
    keys = keys_that_matter(c)
    doc = contract_classes.dump(
        keys,
        [
            {
                "class": i,
                "key": k.key,
                "namespace": k.namespace,
                "name": k.name,
                "match": match_of(k, keys[k.namespace]),
                "identity": 300 + i,
                "peer": i,
                "profile": i,
                "endpoint": {"workload": 0, "profile": i},
                "block": {"offset": 8 * i, "size": 8},
            }
            for i, k in enumerate(c.classes, start=1)
        ],
    )
    classes = contract_classes.load(doc)
    web = classes.classify("shop", {"app": "web", "pod-template-hash": "abc"})
    assert isinstance(web, contract_classes.ClassInfo) and web.key == "shop/web"
    # `tier` matters in shop (db declares it): a web pod with tier=back fits no class
    refusal = classes.classify("shop", {"app": "web", "tier": "back"}, "shop/x")
    assert isinstance(refusal, contract_classes.Refusal)
    assert "pod shop/x matches no workload class" in refusal.reason
    assert "app=web, tier=back" in refusal.reason
    assert "web (app=web, tier absent); db (app=db, tier=back)" in refusal.reason
    undeclared = classes.classify("kube-system", {"app": "web"}, "kube-system/x")
    assert "namespace kube-system is not declared" in undeclared.reason


def test_blocks_are_aligned_disjoint_and_avoid_reserved_offsets():
    ws = [klass(f"c{i}", {"app": f"c{i}"}, perNode=n) for i, n in enumerate([1, 2, 3, 5, 8, 16])]
    ws.append(
        {"name": "fixed", "namespace": "shop", "node": "n1", "ips": ["10.244.1.100"], "labels": {}}
    )
    c = cluster(ws)
    blocks = layout(c)
    seen: set[int] = set()
    for cls in c.classes:
        b = blocks[cls.key]
        assert b.size == block_size(cls.per_node) and b.offset % b.size == 0
        span = set(range(b.offset, b.offset + b.size))
        assert not span & seen and not span & {0, 1, 255, 100}
        seen |= span
    assert Block(8, 8).on(c.nodes[1].pod_cidr).with_prefixlen == "10.244.2.8/29"


def test_layout_is_deterministic_and_reports_what_to_change():
    ws = [klass(f"c{i}", {"app": f"c{i}"}, perNode=64) for i in range(4)]
    with pytest.raises(SpecError) as e:  # the front end reports LayoutError's problems
        cluster(ws)  # 4 x 64 in a /24 with 3 reserved addresses: one does not fit
    d = e.value.diagnostics[0]
    assert "lower perNode" in d.message and d.path.endswith(".perNode") and d.line > 0
    ok = [klass(f"c{i}", {"app": f"c{i}"}, perNode=32) for i in range(5)]
    assert layout(cluster(ok)) == layout(cluster(list(reversed(ok))))


def _probe_path(key: str, size: int, slots: int, end: int) -> set[int]:
    """Slots a class's search visits from its preferred one up to slot `end`."""
    start, out = _slot_hash(key) % slots, set()
    for i in range(slots):
        out.add((start + i) % slots)
        if (start + i) % slots == end:
            break
    return out


@pytest.mark.parametrize("seed", range(20))
def test_adding_a_class_moves_only_classes_whose_search_it_crosses(seed):
    rnd = random.Random(seed)
    names = [f"w{rnd.randrange(10**6)}" for _ in range(rnd.randrange(2, 12))]
    before = layout(cluster([klass(n, {"app": n}) for n in names]))
    added = f"new{seed}"
    after = layout(cluster([klass(n, {"app": n}) for n in [*names, added]]))
    slots = 256 // 8
    crossed = {after[f"shop/{added}"].offset // 8}
    for key, block in sorted(before.items()):  # the order classes are placed in
        if after[key] != block:
            # it moved only because a slot on its way was taken by the new class (or by a class
            # that itself moved for that reason)
            path = _probe_path(key, 8, slots, after[key].offset // 8)
            assert path & crossed, (key, block, after[key])
            crossed.add(after[key].offset // 8)
