"""The spec of the lab tests of services over workload classes (issue 14).

- `shop/web` (NodePort 30080, externalTrafficPolicy Cluster): TCP 80 -> the class shop/web's
  port http (8080), UDP 53 -> its port dns (5353);
- `shop/web-local` (NodePort 30081, externalTrafficPolicy Local): TCP 80 -> http;
- `shop/api` (ClusterIP, TCP 9000): the class shop/api, whose ingress policy admits only
  `role: client` pods of shop;
- `monitoring/prom`'s egress policy admits the shop namespace on TCP 8080 only: the web
  service's port 80 is reached (its backends serve 8080), the api service is not. Policy
  judges the backend, after translation.
"""

from __future__ import annotations

EXTERNAL = "192.0.2.10"
NODES = {"node-1": 1, "node-2": 2, "node-3": 3}
WEB_VIP, API_VIP = "10.96.0.10", "10.96.0.11"
NODEPORT, NODEPORT_LOCAL = 30080, 30081
LABELS = {"web": "app=web", "api": "app=api", "client": "role=client", "prom": "app=prom"}
PORTS = {"web": 8080, "api": 9000}

SPEC = """\
apiVersion: netcc.io/v1alpha1
kind: ClusterNetwork
metadata: {name: dynsvc}
spec:
  podCIDR: 10.244.0.0/16
  serviceCIDR: 10.96.0.0/16
  nodes:
    - {name: node-1, address: 192.168.79.11, podCIDR: 10.244.1.0/24}
    - {name: node-2, address: 192.168.79.12, podCIDR: 10.244.2.0/24}
    - {name: node-3, address: 192.168.79.13, podCIDR: 10.244.3.0/24}
  namespaces:
    - {name: shop, labels: {team: shop}}
    - {name: monitoring, labels: {team: sre}}
  workloads:
    - name: web
      namespace: shop
      labels: {app: web}
      perNode: 16
      ports: [{name: http, port: 8080}, {name: dns, port: 5353, protocol: UDP}]
    - name: api
      namespace: shop
      labels: {app: api}
      perNode: 8
      ports: [{name: http, port: 9000}]
    - name: client
      namespace: shop
      labels: {role: client}
      perNode: 8
    - name: prom
      namespace: monitoring
      labels: {app: prom}
      perNode: 4
  policies:
    - apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: default-deny, namespace: shop}
      spec: {podSelector: {}, policyTypes: [Ingress]}
    - apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: web-from-anywhere, namespace: shop}
      spec:
        podSelector: {matchLabels: {app: web}}
        ingress:
          - ports: [{port: 8080}, {port: 5353, protocol: UDP}]
    - apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: api-from-clients, namespace: shop}
      spec:
        podSelector: {matchLabels: {app: api}}
        ingress:
          - from: [{podSelector: {matchLabels: {role: client}}}]
            ports: [{port: 9000}]
    - apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: prom-egress, namespace: monitoring}
      spec:
        podSelector: {}
        policyTypes: [Egress]
        egress:
          - to: [{namespaceSelector: {matchLabels: {team: shop}}}]
            ports: [{port: 8080}]
  services:
    - name: web
      namespace: shop
      type: NodePort
      clusterIP: 10.96.0.10
      selector: {app: web}
      ports:
        - {name: http, port: 80, targetPort: http, nodePort: 30080}
        - {name: dns, port: 53, targetPort: dns, protocol: UDP}
    - name: web-local
      namespace: shop
      type: NodePort
      clusterIP: 10.96.0.12
      selector: {app: web}
      externalTrafficPolicy: Local
      ports: [{name: http, port: 80, targetPort: http, nodePort: 30081}]
    - name: api
      namespace: shop
      clusterIP: 10.96.0.11
      selector: {app: api}
      ports: [{name: http, port: 9000, targetPort: http}]
"""
