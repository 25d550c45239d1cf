"""The services lab: 3 nodes, backends spread over them, clients on every node, an outside host.

- `shop/web` (ClusterIP, TCP 80 -> named port http, UDP 53 -> 5353): web-1..3, one per node
- `shop/web-sticky` (ClusterIP, sessionAffinity ClientIP): the same backends
- `shop/web-np` (NodePort 30080, externalTrafficPolicy Cluster): the same backends
- `shop/web-local` (NodePort 30081, externalTrafficPolicy Local): web-1 only (node-1)
- `guarded/api` (ClusterIP): api-1, api-2, whose ingress policy admits only `role: client`
  pods of `shop`; `shop/client-*` may call it, `shop/blocked` may not, and `shop/limited`
  may, with an egress policy naming the backends (never the VIP): policy after translation
- `shop/roll` (ClusterIP): roll-1..3; SPEC_V2 takes roll-3 out of its selector
"""

from __future__ import annotations

EXTERNAL = "192.0.2.10"
NODES = ("node-1", "node-2", "node-3")
CLIENTS = ("shop/client-1", "shop/client-2", "shop/client-3")  # one per node
WEB = ("shop/web-1", "shop/web-2", "shop/web-3")
ROLL = ("shop/roll-1", "shop/roll-2", "shop/roll-3")
API = ("guarded/api-1", "guarded/api-2")

WEB_VIP, STICKY_VIP, API_VIP, ROLL_VIP = "10.96.0.10", "10.96.0.11", "10.96.0.20", "10.96.0.30"
NODEPORT_CLUSTER, NODEPORT_LOCAL = 30080, 30081


def _workload(name: str, ns: str, node: int, ip: str, labels: str, ports: str = "") -> str:
    ports = ports or "[{name: http, port: 8080}, {name: dns, port: 5353, protocol: UDP}]"
    return (
        f"    - {{name: {name}, namespace: {ns}, node: node-{node}, labels: {labels}, "
        f"ips: [{ip}], ports: {ports}}}\n"
    )


def _spec(roll3_labels: str) -> str:
    workloads = "".join(
        [
            _workload("web-1", "shop", 1, "10.244.1.10", "{app: web, local: 'yes'}"),
            _workload("web-2", "shop", 2, "10.244.2.10", "{app: web}"),
            _workload("web-3", "shop", 3, "10.244.3.10", "{app: web}"),
            _workload("roll-1", "shop", 1, "10.244.1.30", "{app: roll}"),
            _workload("roll-2", "shop", 2, "10.244.2.30", "{app: roll}"),
            _workload("roll-3", "shop", 3, "10.244.3.30", roll3_labels),
            _workload("api-1", "guarded", 1, "10.244.1.40", "{app: api}"),
            _workload("api-2", "guarded", 2, "10.244.2.40", "{app: api}"),
            _workload("client-1", "shop", 1, "10.244.1.20", "{role: client}", "[]"),
            _workload("client-2", "shop", 2, "10.244.2.20", "{role: client}", "[]"),
            _workload("client-3", "shop", 3, "10.244.3.20", "{role: client}", "[]"),
            _workload("blocked", "shop", 3, "10.244.3.21", "{role: blocked}", "[]"),
            _workload("limited", "shop", 2, "10.244.2.21", "{role: client, egress: limited}", "[]"),
        ]
    )
    return f"""\
apiVersion: netcc.io/v1alpha1
kind: ClusterNetwork
metadata: {{name: svclab}}
spec:
  podCIDR: 10.244.0.0/16
  serviceCIDR: 10.96.0.0/16
  nodes:
    - {{name: node-1, address: 192.168.78.11, podCIDR: 10.244.1.0/24}}
    - {{name: node-2, address: 192.168.78.12, podCIDR: 10.244.2.0/24}}
    - {{name: node-3, address: 192.168.78.13, podCIDR: 10.244.3.0/24}}
  namespaces:
    - {{name: shop, labels: {{team: shop}}}}
    - {{name: guarded, labels: {{team: guarded}}}}
  workloads:
{workloads}\
  services:
    - name: web
      namespace: shop
      type: ClusterIP
      clusterIP: {WEB_VIP}
      selector: {{app: web}}
      ports:
        - {{name: http, port: 80, targetPort: http}}
        - {{name: dns, port: 53, targetPort: 5353, protocol: UDP}}
    - name: web-sticky
      namespace: shop
      type: ClusterIP
      clusterIP: {STICKY_VIP}
      selector: {{app: web}}
      sessionAffinity: ClientIP
      sessionAffinityConfig: {{clientIP: {{timeoutSeconds: 600}}}}
      ports: [{{port: 80, targetPort: 8080}}]
    - name: web-np
      namespace: shop
      type: NodePort
      clusterIP: 10.96.0.12
      selector: {{app: web}}
      externalTrafficPolicy: Cluster
      ports: [{{port: 80, targetPort: http, nodePort: {NODEPORT_CLUSTER}}}]
    - name: web-local
      namespace: shop
      type: NodePort
      clusterIP: 10.96.0.13
      selector: {{app: web, local: 'yes'}}
      externalTrafficPolicy: Local
      ports: [{{port: 80, targetPort: http, nodePort: {NODEPORT_LOCAL}}}]
    - name: api
      namespace: guarded
      type: ClusterIP
      clusterIP: {API_VIP}
      selector: {{app: api}}
      ports: [{{port: 80, targetPort: http}}]
    - name: roll
      namespace: shop
      type: ClusterIP
      clusterIP: {ROLL_VIP}
      selector: {{app: roll}}
      ports: [{{port: 80, targetPort: http}}]
  policies:
    - apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {{name: api-clients-only, namespace: guarded}}
      spec:
        podSelector: {{matchLabels: {{app: api}}}}
        ingress:
          - from:
              - namespaceSelector: {{matchLabels: {{team: shop}}}}
                podSelector: {{matchLabels: {{role: client}}}}
            ports: [{{port: http}}]
    - apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {{name: limited-egress, namespace: shop}}
      spec:
        podSelector: {{matchLabels: {{egress: limited}}}}
        policyTypes: [Egress]
        egress:
          - to:
              - namespaceSelector: {{matchLabels: {{team: guarded}}}}
                podSelector: {{matchLabels: {{app: api}}}}
            ports: [{{port: 8080}}]
"""


SPEC_V1 = _spec("{app: roll}")
SPEC_V2 = _spec("{app: roll-retired}")  # roll-3 leaves the `roll` service
