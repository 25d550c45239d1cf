"""Specs and helpers shared by the lab tests: a 3-node, 9-pod cluster, with and without policy."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from netcc.lab import core as lab
from netcc.lab import netns as lab_netns
from netcc.lab.state import STATE_DIR, LabState

EXTERNAL_OK = "192.0.2.10"  # inside every allowing ipBlock
EXTERNAL_BLOCKED = "203.0.113.5"  # in the frontend's ipBlock `except`
EXTERNALS = (EXTERNAL_OK, EXTERNAL_BLOCKED)

_HEAD = """\
apiVersion: netcc.io/v1alpha1
kind: ClusterNetwork
metadata: {name: lab}
spec:
  podCIDR: 10.244.0.0/16
  serviceCIDR: 10.96.0.0/16
  nodes:
    - {name: node-1, address: 192.168.77.11, podCIDR: 10.244.1.0/24}
    - {name: node-2, address: 192.168.77.12, podCIDR: 10.244.2.0/24}
    - {name: node-3, address: 192.168.77.13, podCIDR: 10.244.3.0/24}
  namespaces:
    - {name: shop, labels: {team: shop}}
    - {name: payments, labels: {team: payments}}
    - {name: monitoring, labels: {team: sre}}
    - {name: dev}
  workloads:
    - name: frontend
      namespace: shop
      node: node-1
      labels: {app: frontend, tier: web}
      ips: [10.244.1.10]
      ports: [{name: http, port: 8080}, {name: metrics, port: 9100}]
    - name: search
      namespace: shop
      node: node-1
      labels: {app: search, tier: api}
      ips: [10.244.1.11]
      ports: [{name: api, port: 7100}, {name: query, port: 5353, protocol: UDP}]
    - name: cart
      namespace: shop
      node: node-2
      labels: {app: cart, tier: api}
      ips: [10.244.2.10]
      ports: [{name: api, port: 7000}, {name: metrics, port: 9150}]
    - name: cache
      namespace: shop
      node: node-2
      labels: {app: cache, tier: data}
      ips: [10.244.2.11]
      ports: [{name: redis, port: 6379}]
    - name: payments-api
      namespace: payments
      node: node-3
      labels: {app: payments-api}
      ips: [10.244.3.10]
      ports: [{name: grpc, port: 50051}, {name: metrics, port: 9100}]
    - name: ledger
      namespace: payments
      node: node-3
      labels: {app: ledger}
      ips: [10.244.3.11]
    - name: prometheus
      namespace: monitoring
      node: node-3
      labels: {app: prometheus}
      ips: [10.244.3.20]
    - name: grafana
      namespace: monitoring
      node: node-1
      labels: {app: grafana}
      ips: [10.244.1.20]
    - name: tools
      namespace: dev
      node: node-2
      labels: {app: tools}
      ips: [10.244.2.20]
"""

SPEC_NO_POLICY = _HEAD

SPEC_POLICY = (
    _HEAD
    + """\
  policies:
    # Default deny, both ways, for the whole shop namespace.
    - apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: default-deny, namespace: shop}
      spec:
        podSelector: {}
        policyTypes: [Ingress, Egress]
    # ipBlock with except: HTTP (a named port) from anywhere but 203.0.113.0/24.
    - apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: frontend-ingress, namespace: shop}
      spec:
        podSelector: {matchLabels: {app: frontend}}
        ingress:
          - from: [{ipBlock: {cidr: 0.0.0.0/0, except: [203.0.113.0/24]}}]
            ports: [{port: http}]
    # A named port that resolves differently on each destination (cart 7000, search 7100),
    # and a named UDP port.
    - apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: frontend-egress, namespace: shop}
      spec:
        podSelector: {matchLabels: {app: frontend}}
        egress:
          - to: [{podSelector: {matchLabels: {tier: api}}}]
            ports: [{port: api}, {port: query, protocol: UDP}]
    - apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: api-ingress, namespace: shop}
      spec:
        podSelector: {matchLabels: {tier: api}}
        ingress:
          - from: [{podSelector: {matchLabels: {tier: web}}}]
            ports: [{port: api}, {port: query, protocol: UDP}]
    # Pod selector AND namespace selector in one peer; DNS-like UDP to anyone.
    - apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: cart-egress, namespace: shop}
      spec:
        podSelector: {matchLabels: {app: cart}}
        egress:
          - to: [{podSelector: {matchLabels: {app: cache}}}]
            ports: [{protocol: TCP, port: 6379}]
          - to:
              - namespaceSelector: {matchLabels: {team: payments}}
                podSelector: {matchLabels: {app: payments-api}}
            ports: [{port: grpc}]
          - ports: [{protocol: UDP, port: 53}]
    - apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: cache, namespace: shop}
      spec:
        podSelector: {matchLabels: {app: cache}}
        ingress:
          - from: [{podSelector: {matchLabels: {app: cart}}}]
            ports: [{port: redis}]
    # endPort, from another namespace by its labels.
    - apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: allow-scrape, namespace: shop}
      spec:
        podSelector: {matchExpressions: [{key: tier, operator: In, values: [web, api]}]}
        ingress:
          - from: [{namespaceSelector: {matchLabels: {team: sre}}}]
            ports: [{port: 9100, endPort: 9199}]
    # Ingress only: payments-api may call out freely.
    - apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: payments-api, namespace: payments}
      spec:
        podSelector: {matchLabels: {app: payments-api}}
        policyTypes: [Ingress]
        ingress:
          - from:
              - namespaceSelector: {matchLabels: {team: shop}}
                podSelector: {matchLabels: {tier: api}}
            ports: [{port: grpc}]
          - from: [{namespaceSelector: {matchLabels: {team: sre}}}]
            ports: [{port: metrics}]
    # ipBlock for the outside world, UDP with endPort, and any port from one pod.
    - apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: ledger, namespace: payments}
      spec:
        podSelector: {matchLabels: {app: ledger}}
        ingress:
          - from: [{ipBlock: {cidr: 192.0.2.0/24}}]
            ports: [{protocol: UDP, port: 4000, endPort: 4010}]
          - from: [{podSelector: {matchLabels: {app: payments-api}}}]
"""
)

PODS = (
    "shop/frontend",
    "shop/search",
    "shop/cart",
    "shop/cache",
    "payments/payments-api",
    "payments/ledger",
    "monitoring/prometheus",
    "monitoring/grafana",
    "dev/tools",
)
NODES = ("node-1", "node-2", "node-3")

REPO = Path(__file__).resolve().parents[2]


def netcc(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run the `netcc` command line (as `python -m netcc`) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "netcc", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=REPO,
    )


def up_seconds(stderr: str) -> float:
    """The total time `netcc lab up` reports."""
    m = re.search(r"lab up in ([0-9.]+) s", stderr)
    assert m, stderr
    return float(m.group(1))


def lab_namespaces() -> set[str]:
    return set(lab_netns.list_netns("netcc-"))


def root_links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def teardown_lab() -> None:
    """`lab down` if a lab is up (the tests' cleanup, also after a failure)."""
    if LabState.exists(STATE_DIR):
        report = lab.down()
        assert not report.problems, report.problems
