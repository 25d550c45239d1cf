"""The DaemonSet as the node's CNI: what a spec with workload classes adds to it.

Pods of classes are networked at runtime by netcc, so the loader pod becomes the node daemon
(`netcc load run`), and:
- an init container `install-cni` copies the plugin binary from the image into the host's
  /opt/cni/bin (written beside, then renamed: kubelet never runs a half-written binary);
- the daemon serves the plugin on the host's /run/netcc/cni.sock, keeps each pod's address
  in the host's /var/lib/netcc/NODE (survives the pod and reboots of the pod, not of the
  disk), and writes /etc/cni/net.d/10-netcc.conflist only once the node's datapath is
  applied: until then the runtime finds no network and the node stays NotReady;
- it reads a new pod's labels from the API server (get pods, nothing else: a ClusterRole
  and its binding, and the token is mounted);
- it enters the pod's network namespace (runtimes bind-mount them under /run/netns, mounted
  with HostToContainer propagation) to configure the pod's interface: CAP_SYS_ADMIN (setns)
  joins BPF, NET_ADMIN and PERFMON.

The paths are the same inside the pod as on the host (netcc.contract.cni), so the config the
daemon writes names the socket the host's plugin reaches.
"""

from __future__ import annotations

from typing import Any

from netcc.contract import cni
from netcc.emit.k8s import dashboard
from netcc.emit.k8s.constants import ENV_NODE, LOADER, NAMESPACE, labels
from netcc.emit.k8s.scripts import command
from netcc.model.types import Cluster

RBAC_NAME = "netcc-loader-pods"
HOST_BIN_MOUNT = "/host/opt/cni/bin"  # the host's CNI bin dir, in the init container only

INSTALL = f"""\
set -eu
dst="{HOST_BIN_MOUNT}"
cp "{cni.IMAGE_CNI_BINARY}" "$dst/.{cni.PLUGIN_TYPE}.new"
chmod 0755 "$dst/.{cni.PLUGIN_TYPE}.new"
mv -f "$dst/.{cni.PLUGIN_TYPE}.new" "$dst/{cni.PLUGIN_TYPE}"
echo "netcc: installed $dst/{cni.PLUGIN_TYPE}"
"""

RUN = f"""\
set -eu
if ! stat -f -c %T /sys/fs/bpf | grep -qx bpf_fs; then
  echo "netcc: /sys/fs/bpf is not the host's bpf filesystem; mount it on the host" >&2
  exit 1
fi
exec netcc load run "$NETCC_ARTIFACTS" --node "${ENV_NODE}" --socket {cni.SOCKET_PATH} \\
  --data-dir "{cni.DATA_BASE}/${ENV_NODE}" --cni-conf-dir {cni.HOST_CNI_CONF_DIR} \\
  --interval "$NETCC_REAPPLY_SECONDS" --metrics-address ":{cni.METRICS_PORT}"
"""

COMMENTS = (
    "",
    "With workload classes the loader is the node's CNI: `netcc load run` serves the",
    f"{cni.PLUGIN_TYPE} plugin (installed into the host's {cni.HOST_CNI_BIN_DIR} by the",
    f"install-cni init container) on {cni.SOCKET_PATH}, keeps pod addresses in",
    f"{cni.DATA_BASE}/NODE and writes {cni.HOST_CNI_CONF_DIR}/{cni.CONFLIST_NAME} once the",
    "datapath is applied. It reads new pods' labels (get pods: ClusterRole",
    f"{RBAC_NAME}), watches EndpointSlices for the live backends of services over classes,",
    "and enters pods' network namespaces to configure them (CAP_SYS_ADMIN).",
    f"It serves Prometheus metrics on the host's port {cni.METRICS_PORT} (/metrics; the pod is",
    "annotated prometheus.io/scrape), shown by the dashboard of grafana-dashboard.yaml.",
)


ACCOUNT_COMMENTS = (
    "The loader's identity. It may get pods and list and watch EndpointSlices (ClusterRole",
    RBAC_NAME + "): the node daemon reads a new pod's labels to find its workload class,",
    "and follows the ready endpoints of services over workload classes. The token is",
    "mounted in the loader pod only (the pod sets automountServiceAccountToken: true).",
)


def has_classes(cluster: Cluster) -> bool:
    return bool(cluster.classes)


def install_container(image: str) -> dict[str, Any]:
    """Copies the plugin binary to the host; root (the host directory is root's), no
    capability, read-only root filesystem."""
    return {
        "name": "install-cni",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": command(INSTALL),
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsGroup": 0,
            "runAsUser": 0,
        },
        "volumeMounts": [{"name": "cni-bin", "mountPath": HOST_BIN_MOUNT}],
    }


def daemon_mounts() -> list[dict[str, Any]]:
    """The loader container's extra mounts, at the host's own paths."""
    return [
        {"name": "cni-conf", "mountPath": cni.HOST_CNI_CONF_DIR},
        {"name": "cni-run", "mountPath": cni.SOCKET_PATH.rsplit("/", 1)[0]},
        {"name": "cni-data", "mountPath": cni.DATA_BASE},
        {"name": "netns", "mountPath": cni.HOST_NETNS_DIR, "mountPropagation": "HostToContainer"},
    ]


def volumes() -> list[dict[str, Any]]:
    def host(name: str, path: str) -> dict[str, Any]:
        return {"name": name, "hostPath": {"path": path, "type": "DirectoryOrCreate"}}

    return [
        host("cni-bin", cni.HOST_CNI_BIN_DIR),
        host("cni-conf", cni.HOST_CNI_CONF_DIR),
        host("cni-run", cni.SOCKET_PATH.rsplit("/", 1)[0]),
        host("cni-data", cni.DATA_BASE),
        host("netns", cni.HOST_NETNS_DIR),
    ]


def rbac() -> dict[str, tuple[dict[str, Any], tuple[str, ...]]]:
    """path -> (object, comments): read access to pods (the daemon's classification) and to
    EndpointSlices (live service backends)."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": RBAC_NAME, "labels": labels("loader")},
        "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
            {
                "apiGroups": ["discovery.k8s.io"],
                "resources": ["endpointslices"],
                "verbs": ["list", "watch"],
            },
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": RBAC_NAME, "labels": labels("loader")},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": RBAC_NAME,
        },
        "subjects": [{"kind": "ServiceAccount", "name": LOADER, "namespace": NAMESPACE}],
    }
    why = (
        "The node daemon reads a new pod's labels to find its workload class (get pods), and",
        "follows EndpointSlices for the live backends of services (list, watch); nothing else.",
    )
    return {"clusterrole.yaml": (role, why), "clusterrolebinding.yaml": (binding, why)}


def as_cni(pod: dict[str, Any], image: str) -> None:
    """Turn the loader pod spec (daemonset.py) into the CNI daemon's, in place."""
    pod["automountServiceAccountToken"] = True
    pod["initContainers"].append(install_container(image))
    loader = pod["containers"][0]
    loader["command"] = command(RUN)
    loader["ports"] = dashboard.container_ports()
    caps = loader["securityContext"]["capabilities"]["add"]
    caps.append("SYS_ADMIN")
    caps.sort()
    loader["volumeMounts"] += daemon_mounts()
    pod["volumes"] += volumes()
