"""Translating objects: namespaces, workload classes, NetworkPolicies, what is skipped, errors."""

from __future__ import annotations

import pytest

from netcc.sources.manifests import read_stream
from netcc.sources.translate import Translation, translate


def tr(text: str, default_namespace: str | None = None) -> Translation:
    return translate(read_stream(text, "m.yaml"), default_namespace)


def found(t: Translation) -> list[tuple[str, str, str, int, int]]:
    """(severity, message, path, line, col) of every finding."""
    return [(f.severity, f.message, f.path, *f.manifest.locate(f.path)) for f in t.findings]


def docs(items: list) -> list[dict]:
    return [i.doc for i in items]


NS = "kubernetes.io/metadata.name"


# --- namespaces ------------------------------------------------------------------------------


def test_namespace_objects_get_their_name_label() -> None:
    t = tr("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels: {team: a}\n")
    assert docs(t.namespaces) == [{"name": "shop", "labels": {"team": "a", NS: "shop"}}]
    (ns,) = t.namespaces
    assert (ns.kind, ns.origin("name"), ns.origin("labels.team")) == (
        "namespace",
        ("m.yaml", 4, 9),
        ("m.yaml", 5, 18),
    )
    assert ns.origin(f'labels["{NS}"]') == ("m.yaml", 5, 11)  # added: the labels
    assert t.findings == []


POD = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n{ns}spec: {{}}\n"


def pod(name: str, namespace: str | None = None) -> str:
    return POD.format(name=name, ns=f"  namespace: {namespace}\n" if namespace else "")


def test_namespaces_used_but_not_declared_are_declared_once_with_a_note() -> None:
    text = "\n---\n".join([pod("a", "shop"), pod("b", "shop"), pod("c"), pod("d", "web")])
    t = tr(text)
    assert docs(t.namespaces) == [
        {"name": "shop", "labels": {NS: "shop"}},
        {"name": "default", "labels": {NS: "default"}},
        {"name": "web", "labels": {NS: "web"}},
    ]
    assert [w.doc["namespace"] for w in t.workloads] == ["shop", "shop", "default", "web"]
    assert found(t) == [
        (
            "note",
            "namespace shop of Pod shop/a is declared by no Namespace object: netcc declares "
            f"it (labels: {NS} only)",
            "metadata.namespace",
            5,
            14,
        ),
        (
            "note",
            "namespace default of Pod default/c is declared by no Namespace object: netcc "
            f"declares it (labels: {NS} only)",
            "metadata.namespace",
            20,
            3,  # no metadata.namespace: at metadata
        ),
        (
            "note",
            "namespace web of Pod web/d is declared by no Namespace object: netcc declares it "
            f"(labels: {NS} only)",
            "metadata.namespace",
            28,
            14,
        ),
    ]
    assert t.namespaces[0].origin("name") == ("m.yaml", 5, 14)


def test_a_namespace_declared_later_is_not_declared_again() -> None:
    text = pod("a", "shop") + "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n"
    t = tr(text)
    assert docs(t.namespaces) == [{"name": "shop", "labels": {NS: "shop"}}]
    assert t.namespaces[0].origin("name") == ("m.yaml", 10, 18)
    assert t.findings == []


def test_default_namespace_as_kubectl_apply_n() -> None:
    t = tr(pod("a") + "---\n" + pod("b", "other"), "shop")
    assert [w.doc["namespace"] for w in t.workloads] == ["shop", "other"]
    assert [n.doc["name"] for n in t.namespaces] == ["shop", "other"]
    empty = tr(pod("a").replace("  name: a\n", "  name: a\n  namespace: ''\n"), "shop")
    assert empty.workloads[0].doc["namespace"] == "shop"


def test_duplicate_namespaces_are_errors_at_the_second() -> None:
    one = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n"
    t = tr(one + "---\n" + one)
    assert len(t.namespaces) == 1
    assert found(t) == [
        (
            "error",
            "Namespace shop: shop is already declared by Namespace shop (m.yaml:3); names are "
            "unique",
            "metadata.name",
            7,
            18,
        )
    ]


# --- workload classes ------------------------------------------------------------------------

TEMPLATE = """\
    metadata:
      labels:
        app: x
    spec:
      containers:
        - name: c
          ports:
            - containerPort: 80
"""


def controller(api: str, kind: str, spec_prefix: str, depth: int) -> str:
    template = "".join(" " * depth + line + "\n" for line in TEMPLATE.splitlines())
    return f"apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: x\nspec:\n{spec_prefix}{template}"


CONTROLLERS = [
    ("apps/v1", "Deployment", "  template:\n", 0, "spec.template"),
    ("apps/v1", "StatefulSet", "  serviceName: x\n  template:\n", 0, "spec.template"),
    ("apps/v1", "DaemonSet", "  template:\n", 0, "spec.template"),
    ("apps/v1", "ReplicaSet", "  template:\n", 0, "spec.template"),
    ("batch/v1", "Job", "  template:\n", 0, "spec.template"),
    (
        "batch/v1",
        "CronJob",
        "  schedule: '@daily'\n  jobTemplate:\n    spec:\n      template:\n",
        4,
        "spec.jobTemplate.spec.template",
    ),
    ("v1", "ReplicationController", "  template:\n", 0, "spec.template"),
]


@pytest.mark.parametrize(("api", "kind", "prefix", "depth", "template"), CONTROLLERS)
def test_classes_of_pod_templates(
    api: str, kind: str, prefix: str, depth: int, template: str
) -> None:
    t = tr(controller(api, kind, prefix, depth), "shop")
    (w,) = t.workloads
    assert w.kind == "workload"
    assert w.doc == {
        "name": "x",
        "namespace": "shop",
        "labels": {"app": "x"},
        "ports": [{"port": 80, "protocol": "TCP"}],
    }
    assert w.manifest_path("labels.app") == f"{template}.metadata.labels.app"
    port = f"{template}.spec.containers[0].ports[0].containerPort"
    assert w.manifest_path("ports[0].port") == port
    assert w.origin("ports[0].port") == ("m.yaml", *w.manifest.locate(port))
    assert w.origin("ports[0].port")[1] == w.origin("labels.app")[1] + 5
    assert w.origin("name") == ("m.yaml", 4, 9)
    assert w.origin("perNode") == ("m.yaml", 4, 3)  # the object's metadata


def test_a_bare_pod_is_its_own_class() -> None:
    text = """\
apiVersion: v1
kind: Pod
metadata:
  name: debug
  namespace: ops
  labels:
    run: debug
spec:
  containers:
    - name: shell
      image: busybox
"""
    (w,) = tr(text).workloads
    assert w.doc == {"name": "debug", "namespace": "ops", "labels": {"run": "debug"}}
    assert w.origin("labels.run") == ("m.yaml", 7, 10)
    assert w.origin("ports") == ("m.yaml", 10, 5)  # no ports: at the containers


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  template:
    metadata:
      labels:
        app: web
        tier: "1"
    spec:
      initContainers:
        - name: init
          ports:
            - containerPort: 7000
      containers:
        - name: app
          ports:
            - containerPort: 8080
            - name: http
              containerPort: 8080
            - containerPort: 8080
              protocol: TCP
            - containerPort: 53
              protocol: UDP
              hostPort: 53
        - name: sidecar
          ports:
            - name: admin
              containerPort: 9000
            - name: http
              containerPort: 8080
"""


def test_ports_of_every_container_collapsed() -> None:
    t = tr(DEPLOYMENT)
    (w,) = t.workloads
    assert w.doc["labels"] == {"app": "web", "tier": "1"}
    assert w.doc["ports"] == [
        {"name": "http", "port": 8080, "protocol": "TCP"},  # the unnamed 8080s folded in
        {"port": 53, "protocol": "UDP"},  # hostPort dropped
        {"name": "admin", "port": 9000, "protocol": "TCP"},
    ]
    assert w.origin("ports[0]") == ("m.yaml", 21, 15)  # the named one
    assert w.origin("ports[0].port") == ("m.yaml", 22, 30)
    assert w.origin("ports[1].protocol") == ("m.yaml", 26, 25)
    assert w.origin("ports[2].name") == ("m.yaml", 30, 21)
    assert w.origin("ports") == ("m.yaml", 20, 13)
    assert [f.severity for f in t.findings] == ["note"]  # namespace shop declared


def test_conflicting_port_names_are_left_to_validation() -> None:
    text = DEPLOYMENT.replace("- name: admin", "- name: other").replace("9000", "8080")
    (w,) = tr(text).workloads
    assert [p.get("name") for p in w.doc["ports"]] == ["http", None, "other"]


def test_label_values_must_be_strings() -> None:
    text = DEPLOYMENT.replace('tier: "1"', "tier: 1").replace("app: web", "app: [web]")
    t = tr(text)
    assert t.workloads == [] and t.namespaces == []
    assert found(t) == [
        (
            "error",
            'label "app" of the pods of Deployment shop/web must be a string, got a list ["web"] '
            "(quote it)",
            "spec.template.metadata.labels.app",
            10,
            14,
        ),
        (
            "error",
            'label "tier" of the pods of Deployment shop/web must be a string, got an integer 1 '
            "(quote it)",
            "spec.template.metadata.labels.tier",
            11,
            15,
        ),
    ]


def test_labels_must_be_a_mapping() -> None:
    text = DEPLOYMENT.replace(
        '      labels:\n        app: web\n        tier: "1"\n', "      labels: web\n"
    )
    t = tr(text)
    assert [f[1:] for f in found(t)] == [
        (
            "labels of the pods of Deployment shop/web must be a mapping, got a string",
            "spec.template.metadata.labels",
            9,
            15,
        )
    ]


def test_host_network_pods_are_errors() -> None:
    text = DEPLOYMENT.replace(
        "      initContainers:", "      hostNetwork: true\n      initContainers:"
    )
    t = tr(text)
    assert t.workloads == [] and t.namespaces == []
    assert found(t) == [
        (
            "error",
            "pods of Deployment shop/web share the node's network namespace (hostNetwork); "
            "netcc cannot give them a class address",
            "spec.template.spec.hostNetwork",
            13,
            20,
        )
    ]
    assert tr(text.replace("hostNetwork: true", "hostNetwork: false")).workloads != []


def test_no_template_and_malformed_containers() -> None:
    t = tr("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec: {replicas: 1}\n")
    assert [f[1:] for f in found(t)] == [
        ("Deployment default/a has no pod template: got none", "spec.template", 4, 7)
    ]
    t = tr(pod("p").replace("spec: {}", "spec:\n  containers: {a: 1}"))
    assert [f[1:3] for f in found(t)] == [
        ("Pod default/p: expected a list of containers, got a mapping", "spec.containers")
    ]
    t = tr(pod("p").replace("spec: {}", "spec:\n  containers:\n    - ports: [8080]"))
    assert [f[1:3] for f in found(t)] == [
        (
            "Pod default/p: expected a container port (a mapping), got an integer",
            "spec.containers[0].ports[0]",
        )
    ]


def test_class_names_are_unique_per_namespace_whatever_the_kind() -> None:
    text = controller("apps/v1", "Deployment", "  template:\n", 0)
    text += "---\n" + controller("apps/v1", "StatefulSet", "  template:\n", 0)
    text += "---\n" + pod("x", "other")
    t = tr(text)
    assert [(w.doc["namespace"], w.doc["name"]) for w in t.workloads] == [
        ("default", "x"),
        ("other", "x"),
    ]
    assert next(f for f in found(t) if f[0] == "error") == (
        "error",
        "StatefulSet default/x: default/x is already declared by Deployment default/x (m.yaml:4); "
        "netcc names a class after its object: names are unique per namespace",
        "metadata.name",
        19,
        9,
    )


# --- NetworkPolicies -------------------------------------------------------------------------

POLICY = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow
  creationTimestamp: null
  labels: {a: b}
spec:
  podSelector:
    matchLabels: null
  ingress:
    - from:
        - namespaceSelector: {}
          podSelector: {matchExpressions: []}
status: {}
"""


def test_policies_verbatim_with_their_namespace() -> None:
    t = tr(POLICY, "shop")
    (p,) = t.policies
    assert p.doc == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "allow", "labels": {"a": "b"}, "namespace": "shop"},
        "spec": {
            "podSelector": {"matchLabels": None},
            "ingress": [
                {"from": [{"namespaceSelector": {}, "podSelector": {"matchExpressions": []}}]}
            ],
        },
    }
    assert p.origin("spec.ingress[0].from[0].podSelector") == ("m.yaml", 13, 24)
    assert p.origin("metadata.namespace") == ("m.yaml", 4, 3)
    assert p.origin("") == ("m.yaml", 1, 1)
    assert p.manifest.obj["metadata"].get("namespace") is None  # the manifest is untouched
    assert docs(t.namespaces) == [{"name": "shop", "labels": {NS: "shop"}}]


def test_policies_of_other_apis() -> None:
    t = tr(POLICY.replace("networking.k8s.io/v1", "extensions/v1beta1"))
    assert t.policies == []
    assert found(t) == [
        (
            "error",
            "NetworkPolicy default/allow: extensions/v1beta1 NetworkPolicies are not served by "
            "Kubernetes; write apiVersion: networking.k8s.io/v1",
            "apiVersion",
            1,
            13,
        )
    ]
    t = tr(POLICY.replace("networking.k8s.io/v1", "crd.projectcalico.org/v1"))
    assert (t.policies, t.findings, t.skipped) == (
        [],
        [],
        {"crd.projectcalico.org/v1 NetworkPolicy": 1},
    )


def test_duplicate_policies() -> None:
    t = tr(POLICY + "---\n" + POLICY)
    assert len(t.policies) == 1
    assert [f for f in found(t) if f[0] == "error"] == [
        (
            "error",
            "NetworkPolicy default/allow: default/allow is already declared by NetworkPolicy "
            "default/allow (m.yaml:4); names are unique per namespace",
            "metadata.name",
            19,
            9,
        )
    ]


# --- what is skipped, and objects that are not objects -----------------------------------------


def test_kinds_netcc_does_not_use_are_counted() -> None:
    text = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: a}
---
apiVersion: v1
kind: ConfigMap
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: r}
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: ksvc}
spec:
  template:
    spec:
      containers: [{image: x}]
---
apiVersion: example.com/v1
kind: Deployment
metadata: {name: custom}
"""
    t = tr(text)
    assert t.skipped == {
        "v1 ConfigMap": 2,
        "rbac.authorization.k8s.io/v1 ClusterRole": 1,
        "serving.knative.dev/v1 Service": 1,
        "example.com/v1 Deployment": 1,
    }
    assert (t.namespaces, t.workloads, t.services, t.policies, t.findings) == ([],) * 4 + ([],)


def test_objects_without_kind_api_version_or_name() -> None:
    text = """\
kind: Pod
metadata: {name: a}
---
apiVersion: v1
metadata: {name: b}
---
apiVersion: v1
kind: 3
---
apiVersion: v1
kind: Service
metadata:
  generateName: web-
---
apiVersion: batch/v1
kind: Job
metadata:
  name: 5
---
apiVersion: v1
kind: Service
---
apiVersion: v1
kind: Service
metadata:
  name: x
  namespace: [a]
"""
    t = tr(text)
    assert (t.services, t.workloads, t.skipped) == ([], [], {})
    assert [f[1:] for f in found(t)] == [
        (
            "object without API version: every Kubernetes object names its apiVersion (a string)",
            "apiVersion",
            1,
            1,
        ),
        ("object without kind: every Kubernetes object names its kind (a string)", "kind", 4, 1),
        (
            "object without kind: every Kubernetes object names its kind (a string), got an "
            "integer",
            "kind",
            8,
            7,
        ),
        (
            "Service default/(no name) has no metadata.name (generateName gives a new name each "
            "time; netcc needs one)",
            "metadata.name",
            13,
            3,
        ),
        (
            "Job default/(no name): metadata.name must be a string, got an integer",
            "metadata.name",
            18,
            9,
        ),
        ("Service default/(no name): metadata must be a mapping, got none", "metadata", 20, 1),
        (
            "Service x: metadata.namespace must be a string, got a list",
            "metadata.namespace",
            27,
            14,
        ),
    ]


def test_output_follows_input_order() -> None:
    names = ["c", "a", "b"]
    t = tr("---\n".join(pod(n, "ns") for n in names))
    assert [w.doc["name"] for w in t.workloads] == names
