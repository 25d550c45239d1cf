"""Every document of `OUT/k8s` validates against the official Kubernetes 1.30 schemas, in
strict mode (unknown fields are errors), offline (kubernetes-validate bundles the schemas);
the kustomization builds and lists every other document."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from k8s_kube import manifests
from k8s_specs import all_trees

from netcc.emit.k8s.constants import KUBERNETES_VERSION
from netcc.write.tree import write_tree

TREES = all_trees()
VERSION = f"{KUBERNETES_VERSION}.0"


def validate(doc: dict) -> None:
    kubernetes_validate.validate(doc, VERSION, strict=True)


@pytest.mark.parametrize("name", sorted(TREES))
def test_k8s_every_document_validates_strictly(name: str) -> None:
    docs = manifests(TREES[name])
    kinds = set()
    for path, doc in docs.items():
        kinds.add(doc["kind"])
        if path == "kustomization.yaml":
            continue  # not a Kubernetes API object: checked below
        try:
            validate(doc)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{name}: k8s/{path}: {'.'.join(map(str, e.path))}: {e.message}")
    assert {"Namespace", "ServiceAccount", "ConfigMap", "DaemonSet", "Kustomization"} <= kinds


def test_k8s_validation_is_strict() -> None:
    """The control: the same validator refuses an unknown field and a wrong type."""
    ds = manifests(TREES["shop"])["daemonset.yaml"]
    validate(ds)
    unknown = copy.deepcopy(ds)
    unknown["spec"]["template"]["spec"]["containers"][0]["privilegd"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(unknown)
    wrong = copy.deepcopy(ds)
    wrong["spec"]["template"]["spec"]["hostNetwork"] = "yes"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(wrong)


@pytest.mark.parametrize("name", sorted(TREES))
def test_k8s_kustomization_lists_every_document(name: str) -> None:
    tree = TREES[name]
    kustomization = yaml.safe_load(tree["k8s/kustomization.yaml"])
    assert set(kustomization) == {"apiVersion", "kind", "resources"}
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    others = sorted(p.removeprefix("k8s/") for p in tree if p.startswith("k8s/"))
    others.remove("kustomization.yaml")
    assert kustomization["resources"] == others


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl (kustomize)")
@pytest.mark.parametrize("name", ["shop", "tricky"])
def test_k8s_kustomize_builds_exactly_the_documents(name: str, tmp_path: Path) -> None:
    write_tree(TREES[name], tmp_path / "out")
    built = subprocess.run(
        ["kubectl", "kustomize", str(tmp_path / "out" / "k8s")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    got = sorted(
        (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"])
        for d in yaml.safe_load_all(built)
    )
    docs = manifests(TREES[name])
    want = sorted(
        (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"])
        for p, d in docs.items()
        if p != "kustomization.yaml"
    )
    assert got == want
    for doc in yaml.safe_load_all(built):
        validate(doc)
