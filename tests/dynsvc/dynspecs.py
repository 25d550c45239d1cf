"""Specs of services over workload classes, for the dynamic-service tests."""

SPEC = """
apiVersion: netcc.io/v1alpha1
kind: ClusterNetwork
metadata: {name: dyn}
spec:
  podCIDR: 10.244.0.0/16
  serviceCIDR: 10.96.0.0/16
  nodes:
    - {name: n1, address: 192.168.90.11, podCIDR: 10.244.1.0/24}
    - {name: n2, address: 192.168.90.12, podCIDR: 10.244.2.0/24}
    - {name: n3, address: 192.168.90.13, podCIDR: 10.244.3.0/24}
  namespaces:
    - {name: app}
    - {name: other}
  workloads:
    - name: web
      namespace: app
      labels: {app: web, track: stable}
      perNode: 16
      ports: [{name: http, port: 8080}, {name: dns, port: 5353, protocol: UDP}]
    - name: canary
      namespace: app
      labels: {app: web, track: canary}
      perNode: 8
      ports: [{name: http, port: 9090}]
    - name: api
      namespace: app
      labels: {app: api}
      perNode: 8
      ports: [{name: http, port: 7000}]
    - name: stranger
      namespace: other
      labels: {app: web}
      perNode: 8
      ports: [{name: http, port: 8080}]
    - name: legacy
      namespace: app
      node: n2
      labels: {app: web, track: legacy}
      ips: [10.244.2.200]
      ports: [{name: http, port: 8081}]
  services:
    - name: web
      namespace: app
      type: NodePort
      clusterIP: 10.96.0.10
      selector: {app: web}
      externalTrafficPolicy: Local
      ports:
        - {name: http, port: 80, targetPort: http, nodePort: 30080}
        - {name: dns, port: 53, targetPort: dns, protocol: UDP}
    - name: api
      namespace: app
      clusterIP: 10.96.0.11
      selector: {app: api}
      internalTrafficPolicy: Local
      ports: [{name: http, port: 7000, targetPort: 7000}]
    - name: fixed
      namespace: app
      clusterIP: 10.96.0.12
      selector: {app: web, track: legacy}
      ports: [{port: 81, targetPort: 8081}]
"""
