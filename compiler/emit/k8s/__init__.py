"""`OUT/k8s`: what an operator applies (`kubectl apply -k OUT/k8s`) to run the datapath.

    kustomization.yaml          lists every document below
    namespace.yaml              netcc-system (Pod Security: privileged)
    serviceaccount.yaml         the loader's identity: no token, no RBAC (with workload
                                classes: get pods, clusterrole*.yaml, see cni.py)
    daemonset.yaml              the loader on every node of the spec (daemonset.py)
    grafana-dashboard.yaml      with workload classes: the metrics dashboard (dashboard.py)
    artifacts/common/I.yaml     ConfigMaps: the files every node gets (artifacts.py)
    artifacts/nodes/NODE/I.yaml ConfigMaps: one node's files and its own lock
    policies/NS/NAME.yaml       the spec's NetworkPolicies, as Kubernetes objects (policies.py)

Every file is one YAML document written by the safe dumper (yamlout.py), sorted and
deterministic. Nothing here holds key material: WireGuard keys come from a Secret the
operator creates, which the DaemonSet only references.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from netcc.emit.k8s import cni, dashboard
from netcc.emit.k8s.artifacts import BUDGET, Packed, pack
from netcc.emit.k8s.constants import (
    IPSEC_SECRET,
    K8S_DIR,
    KUBERNETES_VERSION,
    LOADER,
    NAMESPACE,
    WIREGUARD_SECRET,
)
from netcc.emit.k8s.daemonset import COMMENTS, daemonset
from netcc.emit.k8s.objects import (
    NAMESPACE_COMMENTS,
    SERVICE_ACCOUNT_COMMENTS,
    namespace,
    service_account,
)
from netcc.emit.k8s.policies import policy_comments, policy_objects
from netcc.emit.k8s.yamlout import dump
from netcc.model.types import Cluster

__all__ = ["render_k8s"]

KUSTOMIZATION = "kustomization.yaml"


def kustomization(resources: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": sorted(resources),
    }


def wireguard_comments(cluster: Cluster) -> list[str]:
    """How to create the Secret the DaemonSet mounts keys from (when WireGuard is on)."""
    wg = cluster.wireguard
    if wg is None or not wg.enabled or not wg.nodes:
        return []
    lines = [
        "",
        f"WireGuard is enabled: before applying, create Secret {WIREGUARD_SECRET}, one key per",
        "node, named after the node (each pod mounts its own node's key at the spec's",
        "privateKeyFile; keys never appear in these files):",
        f"  kubectl apply -f OUT/{K8S_DIR}/namespace.yaml",
        f"  kubectl -n {NAMESPACE} create secret generic {WIREGUARD_SECRET} \\",
    ]
    nodes = sorted(n.node for n in wg.nodes)
    lines += [f"    --from-file={n}=PATH-OF-{n}-PRIVATE-KEY \\" for n in nodes[:-1]]
    lines.append(f"    --from-file={nodes[-1]}=PATH-OF-{nodes[-1]}-PRIVATE-KEY")
    return lines


def ipsec_comments(cluster: Cluster) -> list[str]:
    """How to create the Secret the DaemonSet mounts the cluster keys from (IPsec on)."""
    ipsec = cluster.ipsec
    if ipsec is None or not ipsec.enabled:
        return []
    ids = sorted(k.id for k in ipsec.keys)
    lines = [
        "",
        f"IPsec is enabled: before applying, create Secret {IPSEC_SECRET} with the cluster keys",
        "(`netcc ipsec keygen FILE --key-id ID` writes one), item key-ID each; every node mounts",
        f"them at {ipsec.key_directory} (keys never appear in these files):",
        f"  kubectl apply -f OUT/{K8S_DIR}/namespace.yaml",
        f"  kubectl -n {NAMESPACE} create secret generic {IPSEC_SECRET} \\",
    ]
    lines += [f"    --from-file=key-{i}=PATH-OF-KEY-{i} \\" for i in ids[:-1]]
    lines.append(f"    --from-file=key-{ids[-1]}=PATH-OF-KEY-{ids[-1]}")
    return lines


def cni_comments(cluster: Cluster) -> tuple[str, ...]:
    return cni.COMMENTS if cni.has_classes(cluster) else ()


def kustomization_comments(cluster: Cluster, packed: Packed) -> list[str]:
    gen = packed.generation
    return [
        f"The datapath of ClusterNetwork {cluster.name} on Kubernetes {KUBERNETES_VERSION}+:",
        f"  kubectl apply -k OUT/{K8S_DIR}",
        f"  kubectl -n {NAMESPACE} rollout status daemonset/{LOADER}",
        "The spec's namespaces must exist: their NetworkPolicies are created there.",
        "",
        f"Artifacts: generation {gen}. Their ConfigMaps are immutable and named after it; the",
        "previous generation's stay (for `kubectl rollout undo`). Once a rollout is done:",
        f"  kubectl -n {NAMESPACE} delete configmap \\",
        f"    -l 'netcc.io/generation,netcc.io/generation!={gen}'",
        "",
        "Deleting the DaemonSet leaves every node's datapath attached. To remove it, detach",
        "on every node first:",
        f"  kubectl -n {NAMESPACE} exec POD -c loader -- netcc load detach",
        *wireguard_comments(cluster),
        *ipsec_comments(cluster),
    ]


def render_k8s(
    spec: bytes,
    filename: str,
    cluster: Cluster,
    tree: dict[str, bytes],
    budget: int = BUDGET,
    document: dict[str, Any] | None = None,
    digests: Mapping[str, str] | None = None,
) -> dict[str, bytes]:
    """`k8s/...` files for the compiled `tree` (OUT without `k8s/` and its lock); `budget`:
    payload bytes per artifact ConfigMap (see artifacts.py); `document`: the spec's YAML
    document as the front end parsed it (`netcc.frontend.parse_document`), else parsed here;
    `digests`: the sha256 of files of `tree` known already (the node locks list them).

    Each document is dumped as soon as it is made: the artifact ConfigMaps copy every node's
    files, so holding them all as objects next to their YAML would double the peak memory.
    """
    if document is None:
        from netcc.load.document import load_yaml

        document, _ = load_yaml(spec, filename)  # type: ignore[assignment]
    assert isinstance(document, dict)
    packed = pack(tree, [n.name for n in cluster.nodes], spec, budget, digests)
    files: dict[str, bytes] = {}

    def put(path: str, doc: dict[str, Any], comments: list[str] | tuple[str, ...]) -> None:
        files[f"{K8S_DIR}/{path}"] = dump(doc, comments)

    put("namespace.yaml", namespace(), NAMESPACE_COMMENTS)
    account_comments = cni.ACCOUNT_COMMENTS if cni.has_classes(cluster) else None
    put("serviceaccount.yaml", service_account(), account_comments or SERVICE_ACCOUNT_COMMENTS)
    if cni.has_classes(cluster):
        for path, (obj, why) in cni.rbac().items():
            put(path, obj, why)
        put(dashboard.DASHBOARD_PATH, dashboard.dashboard_configmap(), dashboard.COMMENTS)
    put("daemonset.yaml", daemonset(cluster, packed), COMMENTS + cni_comments(cluster))
    for path in packed.configmaps:
        configmap = packed.configmaps[path]  # built now, let go once dumped
        node = configmap["metadata"].get("annotations", {}).get("netcc.io/node")
        whose = f"node {node} (and its own lock)" if node else "every node"
        put(path, configmap, [f"Compiled artifacts for {whose}: see {KUSTOMIZATION}."])
    defaulted = {(p.namespace, p.name) for p in cluster.policies if p.namespace_defaulted}
    for path, policy in policy_objects(document).items():
        meta = policy["metadata"]
        key = (meta["namespace"], meta["name"])
        put(path, policy, policy_comments(cluster.name, key[0], key in defaulted))
    resources = [p.removeprefix(f"{K8S_DIR}/") for p in files]
    comments = kustomization_comments(cluster, packed)
    files[f"{K8S_DIR}/{KUSTOMIZATION}"] = dump(kustomization(resources), comments)
    return dict(sorted(files.items()))
