"""Specs for the service tests: two nodes, a web service with backends on both, and clients;
and `why`, the review's answer for a connection through a service."""

SPEC = """
apiVersion: netcc.io/v1alpha1
kind: ClusterNetwork
metadata: {name: svc}
spec:
  podCIDR: 10.244.0.0/16
  serviceCIDR: 10.96.0.0/16
  nodes:
    - {name: node-1, address: 192.168.50.11, podCIDR: 10.244.1.0/24}
    - {name: node-2, address: 192.168.50.12, podCIDR: 10.244.2.0/24}
  namespaces:
    - {name: app}
    - {name: other}
  workloads:
    - {name: client, namespace: app, node: node-1, labels: {role: client}, ips: [10.244.1.10]}
    - {name: denied, namespace: app, node: node-1, labels: {role: client, out: none},
       ips: [10.244.1.11]}
    - {name: stranger, namespace: app, node: node-1, labels: {role: stranger}, ips: [10.244.1.12]}
    - {name: web-1, namespace: app, node: node-1, labels: {app: web}, ips: [10.244.1.20],
       ports: [{name: http, port: 8080}, {name: dns, port: 5353, protocol: UDP}]}
    - {name: web-2, namespace: app, node: node-2, labels: {app: web}, ips: [10.244.2.20],
       ports: [{name: http, port: 8080}, {name: dns, port: 5353, protocol: UDP}]}
    - {name: web-3, namespace: app, node: node-2, labels: {app: web}, ips: [10.244.2.21],
       ports: [{name: http, port: 9090}]}
    - {name: web-noport, namespace: app, node: node-2, labels: {app: web}, ips: [10.244.2.22]}
    - {name: web-elsewhere, namespace: other, node: node-2, labels: {app: web},
       ips: [10.244.2.30], ports: [{name: http, port: 8080}]}
  services:
    - name: web
      namespace: app
      type: ClusterIP
      clusterIP: 10.96.0.10
      selector: {app: web}
      ports:
        - {name: http, port: 80, targetPort: http}
        - {name: dns, port: 53, protocol: UDP, targetPort: dns}
    - name: sticky
      namespace: app
      type: ClusterIP
      clusterIP: 10.96.0.11
      selector: {app: web}
      sessionAffinity: ClientIP
      sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}
      ports: [{name: http, port: 80, targetPort: 8080}]
    - name: empty
      namespace: app
      type: ClusterIP
      clusterIP: 10.96.0.12
      selector: {app: nothing}
      ports: [{name: http, port: 80, targetPort: 8080}]
    - name: np-local
      namespace: app
      type: NodePort
      clusterIP: 10.96.0.13
      selector: {app: web}
      externalTrafficPolicy: Local
      ports: [{name: http, port: 80, targetPort: http, nodePort: 30080}]
    - name: np-cluster
      namespace: app
      type: NodePort
      clusterIP: 10.96.0.14
      selector: {app: web}
      ports: [{name: http, port: 80, targetPort: http, nodePort: 30081}]
  policies:
    - apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: web-from-clients, namespace: app}
      spec:
        podSelector: {matchLabels: {app: web}}
        ingress:
          - from:
              - podSelector: {matchLabels: {role: client}}
              - ipBlock: {cidr: 0.0.0.0/0, except: [10.244.0.0/16]}
    - apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: denied-nothing-out, namespace: app}
      spec:
        podSelector: {matchLabels: {out: none}}
        policyTypes: [Egress]
"""


def why(cluster, src: str, dst: str, port: int, protocol: str = "TCP") -> dict:
    """`netcc why` from `src` to the service port at `dst`:`port`, as a JSON document."""
    from netcc.review.services import service_target, why_service
    from netcc.review.why import resolve_address

    target = service_target(cluster, dst, port, protocol)
    assert target is not None, (dst, port, protocol)
    return why_service(cluster, resolve_address(cluster, src), target, None)
