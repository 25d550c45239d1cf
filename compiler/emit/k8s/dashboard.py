"""The node daemon's metrics in the manifests: its port, scrape annotations, and a Grafana
dashboard.

With workload classes the loader pod runs the node daemon (`cni.py`), which serves Prometheus
metrics on `METRICS_PORT` (`netcc.loader.daemon.metrics`): the container declares the port
(hostNetwork: it is the host's port, so `hostPort` is the same), the pod template carries the
`prometheus.io/*` annotations that annotation-driven scrape configs read, and
`grafana-dashboard.yaml` is a ConfigMap holding the dashboard (`templates/grafana/
netcc-node.json`, byte for byte) labelled `grafana_dashboard: "1"`, which Grafana's dashboard
sidecar imports (set it to search the `netcc-system` namespace, or copy the ConfigMap).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from netcc.contract.cni import METRICS_PORT
from netcc.emit.k8s.constants import NAMESPACE, labels

DASHBOARD_FILE = "netcc-node.json"  # in the templates package's grafana/
DASHBOARD_CONFIGMAP = "netcc-grafana-dashboard"
DASHBOARD_PATH = "grafana-dashboard.yaml"  # in OUT/k8s
PORT_NAME = "metrics"


def container_ports() -> list[dict[str, Any]]:
    return [
        {
            "containerPort": METRICS_PORT,
            "hostPort": METRICS_PORT,
            "name": PORT_NAME,
            "protocol": "TCP",
        }
    ]


def scrape_annotations() -> dict[str, str]:
    return {
        "prometheus.io/path": "/metrics",
        "prometheus.io/port": str(METRICS_PORT),
        "prometheus.io/scrape": "true",
    }


def dashboard_json() -> str:
    """The dashboard, as shipped in the templates package."""
    return (resources.files("netcc.templates") / "grafana" / DASHBOARD_FILE).read_text("utf-8")


def dashboard_configmap() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": DASHBOARD_CONFIGMAP,
            "namespace": NAMESPACE,
            "labels": {**labels("metrics"), "grafana_dashboard": "1"},
        },
        "data": {DASHBOARD_FILE: dashboard_json()},
    }


COMMENTS = (
    f"A Grafana dashboard for the node daemons' metrics (port {METRICS_PORT}, /metrics):",
    "verdicts by policy and rule, drops by reason, map fill, CNI ADD latency, applies, flow",
    "events lost, the artifacts each node runs. Grafana's dashboard sidecar imports ConfigMaps",
    'labelled grafana_dashboard: "1" (let it search this namespace, or copy the ConfigMap).',
)
