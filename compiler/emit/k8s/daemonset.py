"""The DaemonSet that runs `netcc load apply` on every node of the spec.

Security, container by container (no `privileged` anywhere):

- `assemble` (init) only copies files: any user (65534), no capability, read-only root.
- `loader` runs as root, because Kubernetes grants added capabilities to root only, with
  every capability dropped but three, each tried against the loader (tests/k8s):
  - BPF: create maps, load programs, pin and open pins, tcx links (bpf(2));
  - NET_ADMIN: SCHED_CLS programs and their attachment (tcx links, or clsact qdiscs and tc
    filters over netlink);
  - PERFMON: the verifier refuses the datapath without it ("pointer arithmetic ... prohibited
    for !root": packet pointer arithmetic is allowed only with CAP_PERFMON);
  - not SYS_ADMIN: nothing the loader does needs it; bpffs is the host's, never mounted by
    the pod (the loader script refuses to start when /sys/fs/bpf is not bpffs).
  AppArmor is `Unconfined`: container runtimes' default profile denies writes under
  /sys/fs/**, which includes pinning in bpffs. seccomp is `Unconfined` for the loader only:
  the default profiles of CRI-O and of containerd before 1.7 allow bpf(2) only with
  CAP_SYS_ADMIN (not CAP_BPF), and an unfiltered syscall table is the lesser grant. The init
  container keeps the pod's `RuntimeDefault`.
- hostNetwork: the programs go on the host's pod interfaces; `/sys/fs/bpf` (hostPath,
  HostToContainer propagation: a remount on the host is seen) holds the pins, so programs
  and maps outlive the pod; the host's `netcc` directory in /run (hostPath /run, subPath
  netcc: nothing else of /run is mounted) holds the applied state.

Rollout: `maxUnavailable: 1`, `maxSurge: 0` (two loaders on one node would fight). A
replaced or restarting pod leaves the previous programs attached (the loader never detaches
on exit), so a node is never unenforced; the new pod swaps programs in place, and readiness
(what is applied is this pod's artifacts) gates the next node.
"""

from __future__ import annotations

from typing import Any

from netcc.emit.k8s import cni, dashboard, scripts
from netcc.emit.k8s.artifacts import GENERATION_LABEL, Packed
from netcc.emit.k8s.constants import (
    ARTIFACTS_DIR,
    BPFFS_DIR,
    COMPILED_DIR,
    ENV_ARTIFACTS,
    ENV_COMPILED,
    ENV_INTERVAL,
    ENV_NODE,
    ENV_STATE,
    ENV_TMP,
    HOST_RUN,
    IPSEC_SECRET,
    LOADER,
    NAMESPACE,
    REAPPLY_SECONDS,
    STATE_DIR,
    STATE_SUBPATH,
    TMP_DIR,
    WIREGUARD_SECRET,
    labels,
    selector_labels,
)
from netcc.model.types import Cluster

CAPABILITIES = ("BPF", "NET_ADMIN", "PERFMON")
NOBODY = 65534
READ_ONLY = 0o444
KEY_MODE = 0o400


def env() -> list[dict[str, Any]]:
    """What the scripts read: the node name (downward API) and their directories."""
    return [
        {"name": ENV_NODE, "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": ENV_COMPILED, "value": COMPILED_DIR},
        {"name": ENV_ARTIFACTS, "value": ARTIFACTS_DIR},
        {"name": ENV_INTERVAL, "value": str(REAPPLY_SECONDS)},
        {"name": ENV_STATE, "value": STATE_DIR},
        {"name": ENV_TMP, "value": TMP_DIR},
    ]


def _probe(script: str, **timing: int) -> dict[str, Any]:
    return {"exec": {"command": scripts.command(script)}, "timeoutSeconds": 10, **timing}


def wireguard_keys(cluster: Cluster) -> tuple[list[dict], list[dict]]:
    """(volumes, mounts): with WireGuard enabled, Secret `netcc-wireguard` (one key per node
    name, created by the operator) and, at each node's privateKeyFile, that node's key
    (subPathExpr picks the pod's own node). When nodes keep their keys at different paths,
    a pod sees its own key at each of them: never another node's."""
    wg = cluster.wireguard
    if wg is None or not wg.enabled or not wg.nodes:
        return [], []
    items = [{"key": n.node, "path": n.node} for n in sorted(wg.nodes, key=lambda n: n.node)]
    secret = {"secretName": WIREGUARD_SECRET, "defaultMode": KEY_MODE, "items": items}
    volume = {"name": "wireguard-keys", "secret": secret}
    mounts = [
        {
            "name": "wireguard-keys",
            "mountPath": path,
            "subPathExpr": f"$({ENV_NODE})",
            "readOnly": True,
        }
        for path in sorted({n.private_key_file for n in wg.nodes})
    ]
    return [volume], mounts


def ipsec_keys(cluster: Cluster) -> tuple[list[dict], list[dict]]:
    """(volumes, mounts): with IPsec enabled, Secret `netcc-ipsec` (one item `key-ID` per key
    of the spec, each a file `netcc ipsec keygen` wrote; created by the operator) mounted as
    the plan's keyDirectory, read-only, mode 0400. Every node holds the same cluster keys."""
    ipsec = cluster.ipsec
    if ipsec is None or not ipsec.enabled:
        return [], []
    items = [
        {"key": f"key-{k.id}", "path": f"key-{k.id}"}
        for k in sorted(ipsec.keys, key=lambda k: k.id)
    ]
    secret = {"secretName": IPSEC_SECRET, "defaultMode": KEY_MODE, "items": items}
    volume = {"name": "ipsec-keys", "secret": secret}
    mount = {"name": "ipsec-keys", "mountPath": ipsec.key_directory, "readOnly": True}
    return [volume], [mount]


def _assemble(image: str) -> dict[str, Any]:
    return {
        "name": "assemble",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": scripts.command(scripts.ASSEMBLE),
        "env": env(),
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsGroup": NOBODY,
            "runAsNonRoot": True,
            "runAsUser": NOBODY,
        },
        "volumeMounts": [
            {"name": "compiled", "mountPath": COMPILED_DIR, "readOnly": True},
            {"name": "artifacts", "mountPath": ARTIFACTS_DIR},
        ],
    }


def _loader(image: str, key_mounts: list[dict]) -> dict[str, Any]:
    return {
        "name": "loader",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": scripts.command(scripts.LOADER),
        "env": env(),
        "startupProbe": _probe(scripts.ALIVE, periodSeconds=5, failureThreshold=60),
        "livenessProbe": _probe(scripts.ALIVE, periodSeconds=30, failureThreshold=3),
        "readinessProbe": _probe(scripts.READY, periodSeconds=10, failureThreshold=1),
        # No limits: an OOM kill in the middle of an apply is worse than a node's memory.
        "resources": {"requests": {"cpu": "20m", "memory": "96Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "appArmorProfile": {"type": "Unconfined"},
            "capabilities": {"add": list(CAPABILITIES), "drop": ["ALL"]},
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsGroup": 0,
            "runAsUser": 0,
            "seccompProfile": {"type": "Unconfined"},
        },
        "volumeMounts": [
            {"name": "artifacts", "mountPath": ARTIFACTS_DIR, "readOnly": True},
            {"name": "bpffs", "mountPath": BPFFS_DIR, "mountPropagation": "HostToContainer"},
            {"name": "state", "mountPath": STATE_DIR, "subPath": STATE_SUBPATH},
            {"name": "tmp", "mountPath": TMP_DIR},
            *key_mounts,
        ],
    }


def _volumes(packed: Packed, key_volumes: list[dict]) -> list[dict[str, Any]]:
    projected = {"defaultMode": READ_ONLY, "sources": packed.sources}
    return [
        {"name": "compiled", "projected": projected},
        {"name": "artifacts", "emptyDir": {}},
        {"name": "bpffs", "hostPath": {"path": BPFFS_DIR, "type": "Directory"}},
        {"name": "state", "hostPath": {"path": HOST_RUN, "type": "Directory"}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        *key_volumes,
    ]


def daemonset(cluster: Cluster, packed: Packed) -> dict[str, Any]:
    """The loader DaemonSet: on every node of the spec (and only there), whatever its taints."""
    key_volumes, key_mounts = wireguard_keys(cluster)
    ipsec_volumes, ipsec_mounts = ipsec_keys(cluster)
    key_volumes, key_mounts = key_volumes + ipsec_volumes, key_mounts + ipsec_mounts
    nodes = sorted(n.name for n in cluster.nodes)
    on_spec_nodes = {"key": "metadata.name", "operator": "In", "values": nodes}
    pod_labels = {**labels("loader"), GENERATION_LABEL: packed.generation}
    pod = {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchFields": [on_spec_nodes]}]
                }
            }
        },
        "automountServiceAccountToken": False,
        "containers": [_loader(cluster.deploy.image, key_mounts)],
        "enableServiceLinks": False,
        "hostNetwork": True,
        "initContainers": [_assemble(cluster.deploy.image)],
        "priorityClassName": "system-node-critical",
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "serviceAccountName": LOADER,
        "terminationGracePeriodSeconds": 30,
        "tolerations": [{"operator": "Exists"}],
        "volumes": _volumes(packed, key_volumes),
    }
    annotations = {"kubectl.kubernetes.io/default-container": "loader"}
    if cni.has_classes(cluster):
        cni.as_cni(pod, cluster.deploy.image)
        annotations.update(dashboard.scrape_annotations())  # the daemon serves metrics
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": LOADER, "namespace": NAMESPACE, "labels": labels("loader")},
        "spec": {
            "minReadySeconds": 5,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": selector_labels()},
            "template": {
                "metadata": {"annotations": annotations, "labels": pod_labels},
                "spec": pod,
            },
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
            },
        },
    }


COMMENTS = (
    "The datapath loader, on every node of the spec: the init container assembles the",
    "node's OUT from the ConfigMaps of artifacts/, the loader runs `netcc load apply` on it,",
    f"then again every {REAPPLY_SECONDS} s (idempotent: it repairs drift).",
    "",
    "No privileged container. The loader runs as root (Kubernetes grants added capabilities",
    "to root only) with every capability dropped but:",
    "  BPF        maps, programs, pins, tcx links (bpf(2));",
    "  NET_ADMIN  tc programs and their attachment (tcx links, clsact qdiscs, tc filters);",
    "  PERFMON    the verifier refuses the datapath without it (packet pointer arithmetic);",
    "  no SYS_ADMIN: bpffs is the host's (hostPath), never mounted by the pod.",
    "AppArmor is Unconfined: default profiles deny writes under /sys/fs/**, bpffs pins",
    "included. seccomp is Unconfined for the loader (RuntimeDefault for the init container):",
    "CRI-O's and older containerd's default profiles allow bpf(2) only with CAP_SYS_ADMIN.",
    "hostNetwork: the programs go on the host's pod interfaces. /sys/fs/bpf (the pins, so",
    "programs and maps outlive the pod) is the host's, and so is the applied state: the",
    "directory netcc in the host's /run (volume /run, of which only that is mounted).",
    "",
    "Rollout: maxUnavailable 1, maxSurge 0 (two loaders on one node would fight). The loader",
    "never detaches on exit: a restarting or replaced pod leaves the previous programs",
    "attached, so no node is ever unenforced. The new pod swaps them in place, and is ready",
    "only once the node runs its artifacts, so a version that fails to apply halts the",
    "rollout on the first node, which keeps enforcing the previous version.",
    "Readiness and liveness run `netcc load status`.",
)
