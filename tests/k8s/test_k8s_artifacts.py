"""The artifact ConfigMaps: size limits, and that kubelet's projection plus the init
container's exact command give each node exactly its part of OUT, which its lock verifies."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from k8s_kube import (
    AssembleError,
    assemble,
    configmaps,
    container,
    manifests,
    volume,
)
from k8s_specs import SHOP, TRICKY, all_trees, compiled

from netcc.contract.lock import LOCK_NAME, verify_lock
from netcc.emit.k8s import render_k8s
from netcc.emit.k8s.artifacts import BUDGET, PART, configmap_name, pack
from netcc.emit.k8s.daemonset import daemonset
from netcc.frontend import parse_spec
from netcc.write.tree import read_tree

KEY = re.compile(r"[-._a-zA-Z0-9]+")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
ANNOTATIONS_MAX = 256 * 1024  # what client-side `kubectl apply` can store
OBJECT_MAX = 1024 * 1024


@pytest.fixture
def work() -> Iterator[Path]:
    """A directory the init container's user (65534) can reach, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="netcc-k8s-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def nodes_of(tree: dict[str, bytes]) -> list[str]:
    return sorted({p.split("/")[1] for p in tree if p.startswith("nodes/")})


def expected_for(tree: dict[str, bytes], node: str) -> set[str]:
    """OUT's files that `node` gets: all but `k8s/`, other nodes', OUT's lock and the spec."""
    return {
        p
        for p in tree
        if p not in (LOCK_NAME, "spec.yaml")
        and not p.startswith("k8s/")
        and (not p.startswith("nodes/") or p.startswith(f"nodes/{node}/"))
    }


def check_node(tree: dict[str, bytes], node: str, assembled: Path) -> None:
    """`assembled` is OUT for `node`, byte for byte, and its lock verifies it."""
    got = read_tree(assembled)
    want = expected_for(tree, node)
    assert set(got) == want | {LOCK_NAME}
    for path in want:
        assert got[path] == tree[path], path
    lock = verify_lock(assembled)  # the loader's own check: digests, and no other file
    out_lock = json.loads(tree[LOCK_NAME])
    assert set(lock["artifacts"]) == want
    for key in ("lockVersion", "netcc", "clang", "spec"):
        assert lock[key] == out_lock[key]
    for path, digest in lock["artifacts"].items():
        assert digest == out_lock["artifacts"][path]


@pytest.mark.parametrize("name", ["shop", "tricky", "minimal"])
def test_k8s_projection_and_init_command_give_each_node_its_out(name: str, work: Path) -> None:
    tree = all_trees()[name]
    docs = manifests(tree)
    for node in nodes_of(tree):
        assembled = assemble(docs, node, work / node)
        check_node(tree, node, assembled)


def test_k8s_small_budget_splits_configmaps_and_files(work: Path) -> None:
    """A 16 KiB budget: the object is cut in parts, every group spans several ConfigMaps,
    and the init container still puts back exactly OUT."""
    tree = compiled(SHOP.read_text(), "shop.yaml")
    cluster, _ = parse_spec(SHOP.read_bytes(), "shop.yaml")
    budget = 16 * 1024
    base = {p: d for p, d in tree.items() if not p.startswith("k8s/") and p != LOCK_NAME}
    small = {**base, **render_k8s(SHOP.read_bytes(), "shop.yaml", cluster, base, budget)}
    docs = manifests(small)
    cms = configmaps(docs)
    assert len([n for n in cms if "-common-" in n]) > 2
    keys = [k for cm in cms.values() for k in (*cm.get("data", {}), *cm.get("binaryData", {}))]
    assert any(PART in k for k in keys), "the object should be cut in parts"
    for cm in cms.values():
        payload = sum(len(k) + len(json.dumps(v)) for k, v in cm.get("data", {}).items())
        payload += sum(len(k) + len(v) for k, v in cm.get("binaryData", {}).items())
        assert payload <= budget
    for node in nodes_of(tree):
        check_node({**tree, **small}, node, assemble(docs, node, work / node))


def test_k8s_large_artifacts_fit_kubectl_apply(work: Path) -> None:
    """Files of several MiB: every ConfigMap stays under what client-side `kubectl apply`
    stores (256 KiB) and far under the 1 MiB object limit; the pieces reassemble."""
    tree = {
        "bpf/datapath.o": bytes(range(256)) * 4096 * 3,  # 3 MiB of binary
        "bpf/layout.json": b'{"maps": {}}\n',
        "verdicts.json": ('{"v": "' + "\\u00e9\\" * 200_000 + '"}\n').encode(),
        "nodes/a/maps/m.json": ('{"entries": [' + '{"k": 1},' * 150_000 + "]}\n").encode(),
        "nodes/b/maps/m.json": b"{}\n",
    }
    packed = pack(tree, ["a", "b"], b"spec")
    for cm in packed.configmaps.values():
        compact = json.dumps(cm, separators=(",", ":"))
        assert len(compact) < ANNOTATIONS_MAX - 4096
        assert len(compact) < OBJECT_MAX
    assert len(packed.configmaps) > 10
    cluster, _ = parse_spec(SHOP.read_bytes(), "shop.yaml")
    docs = {"daemonset.yaml": daemonset(cluster, packed), **packed.configmaps}
    for node in ("a", "b"):
        assembled = assemble(docs, node, work / node)
        got = read_tree(assembled)
        assert {p: d for p, d in got.items() if p != LOCK_NAME} == {
            p: d for p, d in tree.items() if not p.startswith("nodes/") or f"/{node}/" in p
        }
        verify_lock(assembled)


def test_k8s_init_command_refuses_a_node_not_in_the_spec(work: Path) -> None:
    docs = manifests(all_trees()["shop"])
    with pytest.raises(AssembleError, match="node node-9: it is not a node of the compiled spec"):
        assemble(docs, "node-9", work)


@pytest.mark.parametrize("name", sorted(all_trees()))
def test_k8s_configmaps_are_immutable_valid_and_within_budget(name: str) -> None:
    docs = manifests(all_trees()[name])
    cms = configmaps(docs)
    generation = docs["daemonset.yaml"]["spec"]["template"]["metadata"]["labels"][
        "netcc.io/generation"
    ]
    for cm_name, cm in cms.items():
        assert cm["immutable"] is True
        assert cm["metadata"]["namespace"] == "netcc-system"
        assert cm["metadata"]["labels"]["netcc.io/generation"] == generation
        assert generation in cm_name and DNS_SUBDOMAIN.fullmatch(cm_name)
        assert len(cm_name) <= 253
        for key in (*cm.get("data", {}), *cm.get("binaryData", {})):
            assert KEY.fullmatch(key) and len(key) <= 253
        assert len(json.dumps(cm, separators=(",", ":"))) <= BUDGET + 4096
    assert [s["configMap"]["name"] for s in volume(docs, "compiled")["projected"]["sources"]] == (
        sorted(cms, key=lambda n: (("-node-" in n), n))
    )
    init = container(docs, "assemble")
    assert {"name": "compiled", "mountPath": "/netcc/compiled", "readOnly": True} in (
        init["volumeMounts"]
    )


def test_k8s_generation_follows_the_artifacts() -> None:
    """The same artifacts give the same names; any change gives new ones everywhere."""
    a = manifests(compiled(TRICKY))
    b = manifests(compiled(TRICKY.replace("port: 8080", "port: 8081")))
    assert set(configmaps(a)).isdisjoint(configmaps(b))
    assert manifests(compiled(TRICKY)) == a


def test_k8s_long_node_names_give_valid_configmap_names() -> None:
    long = ".".join(["a" * 63] * 3) + "." + "b" * 50
    name = configmap_name("0123456789", long, 7)
    assert len(name) <= 253 and DNS_SUBDOMAIN.fullmatch(name)
    assert name.endswith("-7")
    assert name == configmap_name("0123456789", long, 7)
    assert name != configmap_name("0123456789", long + "c", 7)
    assert hashlib.sha256(long.encode()).hexdigest()[:16] in name
