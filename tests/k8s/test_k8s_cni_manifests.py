"""With workload classes the loader DaemonSet is the node's CNI (compiler/emit/k8s/cni.py):
the plugin installed into the host's CNI bin dir, the daemon on the CNI socket, the network
config written by the daemon once ready, read access to pods and nothing more. Without
classes nothing of it appears (the static manifests are the goldens)."""

from __future__ import annotations

import yaml

from netcc.contract import cni
from netcc.emit.k8s import render_k8s
from netcc.frontend import parse_spec

SPEC = b"""\
apiVersion: netcc.io/v1alpha1
kind: ClusterNetwork
metadata: {name: pods}
spec:
  podCIDR: 10.244.0.0/16
  serviceCIDR: 10.96.0.0/16
  nodes:
    - {name: n1, address: 192.168.10.1, podCIDR: 10.244.1.0/24}
    - {name: n2, address: 192.168.10.2, podCIDR: 10.244.2.0/24}
  namespaces:
    - {name: shop}
  workloads:
    - {name: web, namespace: shop, labels: {app: web}, perNode: 8}
"""
STATIC = SPEC.replace(b"labels: {app: web}, perNode: 8", b"node: n1, ips: [10.244.1.10]")
TREE = {"nodes/n1/node.json": b"{}\n", "nodes/n2/node.json": b"{}\n", "verdicts.json": b"{}\n"}


def _docs(spec: bytes) -> dict[str, dict]:
    cluster, _ = parse_spec(spec, "spec.yaml")
    files = render_k8s(spec, "spec.yaml", cluster, dict(TREE))
    return {path: yaml.safe_load(data) for path, data in files.items()}


def _pod(docs: dict[str, dict]) -> dict:
    return docs["k8s/daemonset.yaml"]["spec"]["template"]["spec"]


def test_with_classes_the_loader_is_the_nodes_cni_daemon() -> None:
    docs = _docs(SPEC)
    pod = _pod(docs)
    loader = pod["containers"][0]
    script = loader["command"][-1]
    assert loader["command"][:2] == ["/bin/sh", "-c"]
    assert 'exec netcc load run "$NETCC_ARTIFACTS" --node "$NODE_NAME"' in script
    assert f"--socket {cni.SOCKET_PATH}" in script
    assert f'--data-dir "{cni.DATA_BASE}/$NODE_NAME"' in script
    assert f"--cni-conf-dir {cni.HOST_CNI_CONF_DIR}" in script
    # setns into pods' namespaces: SYS_ADMIN joins the loader's three, nothing else
    caps = loader["securityContext"]["capabilities"]
    assert caps == {"add": ["BPF", "NET_ADMIN", "PERFMON", "SYS_ADMIN"], "drop": ["ALL"]}
    assert loader["securityContext"]["privileged"] is False
    mounts = {m["name"]: m for m in loader["volumeMounts"]}
    vols = {v["name"]: v for v in pod["volumes"]}
    for name, path in [
        ("cni-conf", cni.HOST_CNI_CONF_DIR),
        ("cni-run", "/run/netcc"),
        ("cni-data", cni.DATA_BASE),
        ("netns", cni.HOST_NETNS_DIR),
    ]:
        assert mounts[name]["mountPath"] == path, "the same path in the pod as on the host"
        assert vols[name]["hostPath"] == {"path": path, "type": "DirectoryOrCreate"}
    assert mounts["netns"]["mountPropagation"] == "HostToContainer"
    assert pod["automountServiceAccountToken"] is True  # the daemon reads pods' labels


def test_the_plugin_is_installed_by_an_unprivileged_init_container() -> None:
    pod = _pod(_docs(SPEC))
    install = {c["name"]: c for c in pod["initContainers"]}["install-cni"]
    assert install["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert install["securityContext"]["readOnlyRootFilesystem"] is True
    script = install["command"][-1]
    assert cni.IMAGE_CNI_BINARY in script
    # written beside, then renamed over: never a half-written binary in the bin dir
    assert script.index(".netcc-cni.new") < script.index('mv -f "$dst/.netcc-cni.new"')
    assert {m["mountPath"] for m in install["volumeMounts"]} == {"/host/opt/cni/bin"}
    assert {v["name"]: v for v in pod["volumes"]}["cni-bin"]["hostPath"]["path"] == (
        cni.HOST_CNI_BIN_DIR
    )


def test_rbac_grants_get_pods_list_watch_endpointslices_and_nothing_else() -> None:
    docs = _docs(SPEC)
    role = docs["k8s/clusterrole.yaml"]
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
        {
            "apiGroups": ["discovery.k8s.io"],
            "resources": ["endpointslices"],
            "verbs": ["list", "watch"],
        },
    ]
    binding = docs["k8s/clusterrolebinding.yaml"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "netcc-loader", "namespace": "netcc-system"}
    ]
    resources = docs["k8s/kustomization.yaml"]["resources"]
    assert {"clusterrole.yaml", "clusterrolebinding.yaml"} <= set(resources)


def test_without_classes_no_cni_no_rbac_no_token() -> None:
    docs = _docs(STATIC)
    pod = _pod(docs)
    assert "k8s/clusterrole.yaml" not in docs
    assert pod["automountServiceAccountToken"] is False
    assert [c["name"] for c in pod["initContainers"]] == ["assemble"]
    assert "netcc load apply" in pod["containers"][0]["command"][-1]


def test_the_daemons_command_line_is_one_netcc_accepts() -> None:
    """The `netcc load run` line of the DaemonSet's script, its variables as kubelet gives
    them, parses with netcc's own argument parser: every flag exists and takes what it gets."""
    import shlex

    from netcc.cli.main import parser

    script = _pod(_docs(SPEC))["containers"][0]["command"][-1]
    line = script[script.index("exec netcc load run") :].replace("\\\n", " ").splitlines()[0]
    env = {
        "$NETCC_ARTIFACTS": "/netcc/artifacts",
        "$NODE_NAME": "n1",
        "$NETCC_REAPPLY_SECONDS": "30",
    }
    for name, value in env.items():
        line = line.replace(name, value)
    argv = shlex.split(line)[2:]  # after `exec netcc`
    args = parser().parse_args(argv)
    assert (args.out, args.node) == ("/netcc/artifacts", "n1")
    assert args.socket == cni.SOCKET_PATH and args.data_dir == f"{cni.DATA_BASE}/n1"
    assert args.cni_conf_dir == cni.HOST_CNI_CONF_DIR and args.interval == 30.0
    assert args.metrics_address == f":{cni.METRICS_PORT}"


def test_the_daemon_exposes_its_metrics_port_to_annotation_scrapers() -> None:
    docs = _docs(SPEC)
    template = docs["k8s/daemonset.yaml"]["spec"]["template"]
    loader = template["spec"]["containers"][0]
    # hostNetwork: the container's port is the host's, so hostPort equals it
    assert template["spec"]["hostNetwork"] is True
    assert loader["ports"] == [
        {"containerPort": cni.METRICS_PORT, "hostPort": cni.METRICS_PORT, "name": "metrics",
         "protocol": "TCP"}
    ]  # fmt: skip
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(cni.METRICS_PORT)
    assert annotations["prometheus.io/path"] == "/metrics"
    assert f'--metrics-address ":{cni.METRICS_PORT}"' in loader["command"][-1]


def test_the_grafana_dashboard_ships_byte_for_byte_with_the_daemon() -> None:
    from importlib import resources

    shipped = (resources.files("netcc.templates") / "grafana" / "netcc-node.json").read_text()
    cm = _docs(SPEC)["k8s/grafana-dashboard.yaml"]
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["name"] == "netcc-grafana-dashboard"
    assert cm["metadata"]["namespace"] == "netcc-system"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["data"] == {"netcc-node.json": shipped}
    assert "grafana-dashboard.yaml" in _docs(SPEC)["k8s/kustomization.yaml"]["resources"]


def test_without_classes_no_daemon_no_metrics_port_no_dashboard() -> None:
    docs = _docs(STATIC)
    template = docs["k8s/daemonset.yaml"]["spec"]["template"]
    assert "ports" not in template["spec"]["containers"][0]
    assert not any(k.startswith("prometheus.io/") for k in template["metadata"]["annotations"])
    assert "k8s/grafana-dashboard.yaml" not in docs
