"""What users have: an app's manifests (a directory, a `helm template` stream), translated into
entries a spec takes as they are, with every later message pointing into the manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from netcc.diagnostics import SourceMap
from netcc.model.build import build_cluster
from netcc.sources.manifests import read_path, read_stream
from netcc.sources.translate import Item, Translation, translate
from netcc.validate import validate

FIXTURES = Path(__file__).parent / "fixtures"
SECTIONS = ("namespaces", "workloads", "services", "policies")


def line_of(path: Path, needle: str) -> int:
    text = path.read_text()
    return text[: text.index(needle)].count("\n") + 1


def spec_with(t: Translation) -> tuple[dict[str, Any], SourceMap]:
    """A spec holding the translation's entries (cluster IPs given), and a source map that
    places them in their manifests, as the spec's merge does."""
    source_map = SourceMap()
    spec: dict[str, Any] = {
        "podCIDR": "10.244.0.0/16",
        "serviceCIDR": "10.96.0.0/16",
        "nodes": [{"name": "n1", "address": "192.168.1.10", "podCIDR": "10.244.1.0/24"}],
    }
    for section in SECTIONS:
        items: list[Item] = getattr(t, section)
        spec[section] = []
        for i, item in enumerate(items):
            doc = dict(item.doc)
            if section == "services":
                doc.setdefault("clusterIP", f"10.96.0.{10 + i}")
            spec[section].append(doc)

            def locate(rest: str, item: Item = item) -> tuple[int, int]:
                return item.origin(rest)[1:]

            source_map.mount(f"spec.{section}[{i}]", item.manifest.file, locate)
    document = {
        "apiVersion": "netcc.io/v1alpha1",
        "kind": "ClusterNetwork",
        "metadata": {"name": "shop"},
        "spec": spec,
    }
    return document, source_map


def test_a_directory_of_manifests() -> None:
    root = FIXTURES / "shop"
    t = translate(read_path(root, "k8s"))
    assert [i.doc["name"] for i in t.namespaces] == ["shop"]
    assert t.namespaces[0].doc["labels"] == {
        "tier": "frontend",
        "kubernetes.io/metadata.name": "shop",
    }
    assert [(i.doc["name"], i.manifest.kind) for i in t.workloads] == [
        ("db", "StatefulSet"),
        ("web", "Deployment"),
    ]
    web = t.workloads[1]
    assert web.doc == {
        "name": "web",
        "namespace": "shop",
        "labels": {"app": "web", "version": "2"},
        "ports": [
            {"name": "http", "port": 8080, "protocol": "TCP"},
            {"name": "metrics", "port": 9090, "protocol": "TCP"},
            {"port": 8443, "protocol": "TCP"},
        ],
    }
    assert [i.doc["name"] for i in t.services] == ["web"]  # db is headless
    assert [i.doc["metadata"]["name"] for i in t.policies] == ["default-deny", "allow-web"]
    assert t.skipped == {"v1 ConfigMap": 2}
    assert [(f.severity, f.manifest.file, f.path) for f in t.findings] == [
        ("note", "k8s/db/statefulset.json", "spec.clusterIP")
    ]
    assert t.findings[0].manifest.locate("spec.clusterIP") == (26, 26)

    # every entry points into its own file
    web_yaml = root / "web.yaml"
    assert web.origin("ports[2].port") == (
        "k8s/web.yaml",
        line_of(web_yaml, "containerPort: 8443"),
        30,
    )
    assert t.services[0].origin("ports[0].nodePort") == (
        "k8s/web.yaml",
        line_of(web_yaml, "nodePort: 30080"),
        17,
    )
    db = t.workloads[0]
    assert db.origin("labels.app") == ("k8s/db/statefulset.json", 13, 37)
    allow = t.policies[1]
    policy_yaml = root / "policies" / "allow-web.yaml"
    assert allow.origin("spec.ingress[0].ports[0].port") == (
        "k8s/policies/allow-web.yaml",
        line_of(policy_yaml, "- port: http"),
        17,
    )

    # the entries are a valid spec as they are
    document, source_map = spec_with(t)
    assert validate(document, source_map) == []
    cluster = build_cluster(document)
    assert [c.name for c in cluster.classes] == ["db", "web"]
    assert [p.name for p in cluster.policies] == ["default-deny", "allow-web"]


HELM = """\
---
# Source: shop/templates/service.yaml
apiVersion: v1
kind: Service
metadata:
  name: shop-api
  labels:
    app.kubernetes.io/name: api
    app.kubernetes.io/instance: shop
spec:
  type: ClusterIP
  ports:
    - port: 80
      targetPort: web_port
      protocol: TCP
      name: http
  selector:
    app.kubernetes.io/name: api
    app.kubernetes.io/instance: shop
---
# Source: shop/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop-api
  labels:
    app.kubernetes.io/name: api
spec:
  replicas: 2
  selector:
    matchLabels:
      app.kubernetes.io/name: api
      app.kubernetes.io/instance: shop
  template:
    metadata:
      labels:
        app.kubernetes.io/name: api
        app.kubernetes.io/instance: shop
    spec:
      containers:
        - name: api
          image: "registry.example/api:1.0.0"
          ports:
            - name: web_port
              containerPort: 8080
              protocol: TCP
---
# Source: shop/templates/networkpolicy.yaml
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: shop-api
spec:
  podSelector:
    matchLabels:
      app.kubernetes.io/name: api
  ingress:
    - ports:
        - port: web_port
"""


def test_a_helm_template_stream_in_a_namespace() -> None:
    t = translate(read_stream(HELM, "<stdin>"), "shop")
    assert [i.doc["namespace"] for i in t.workloads + t.services] == ["shop", "shop"]
    assert t.policies[0].doc["metadata"]["namespace"] == "shop"
    assert [n.doc["name"] for n in t.namespaces] == ["shop"]
    assert [(f.severity, f.path, f.manifest.locate(f.path)) for f in t.findings] == [
        ("note", "metadata.namespace", (6, 3))
    ]
    # a port name Kubernetes itself refuses: validation says so, in the manifest
    document, source_map = spec_with(t)
    diagnostics = validate(document, source_map)
    assert sorted((d.file, d.line, d.col, d.path) for d in diagnostics) == [
        ("<stdin>", 14, 19, "spec.services[0].ports[0].targetPort"),
        ("<stdin>", 44, 21, "spec.workloads[0].ports[0].name"),
        ("<stdin>", 59, 17, "spec.policies[0].spec.ingress[0].ports[0].port"),
    ]
    assert all("web_port" in d.message for d in diagnostics)
    fixed = translate(read_stream(HELM.replace("web_port", "web-port"), "<stdin>"), "shop")
    assert validate(*spec_with(fixed)) == []
