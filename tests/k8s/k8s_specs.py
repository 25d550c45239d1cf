"""Specs for the k8s tests, and compiling them."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from netcc.pipeline import compile_spec

ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "examples" / "shop.yaml"
GOLDEN_SPECS = sorted((ROOT / "tests" / "golden" / "specs").glob("*.yaml"))

# WireGuard on, two key paths, a pinned image, and strings YAML likes to reinterpret.
TRICKY = """\
apiVersion: netcc.io/v1alpha1
kind: ClusterNetwork
metadata: {name: tricky.example}
spec:
  podCIDR: 10.244.0.0/16
  serviceCIDR: 10.96.0.0/16
  deploy:
    image: registry.example.com:5000/team/netcc:v0.1.0@sha256:DIGEST
  nodes:
    - {name: worker-1.example.com, address: 192.168.77.11, podCIDR: 10.244.1.0/24}
    - {name: "0123", address: 192.168.77.12, podCIDR: 10.244.2.0/24}
  namespaces:
    - {name: "yes", labels: {"on": "null", version: "1e3", octal: "0o17"}}
  workloads:
    - name: web
      namespace: "yes"
      node: worker-1.example.com
      labels: {app: web, "true": "False"}
      ips: [10.244.1.10]
      ports: [{name: http, port: 8080}]
  encryption:
    wireguard:
      enabled: true
      nodes:
        worker-1.example.com:
          publicKey: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
          privateKeyFile: /etc/netcc/wg/private.key
        "0123":
          publicKey: AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=
          privateKeyFile: /etc/wireguard/node.key
  policies:
    - apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata:
        name: "1.5"
        namespace: "yes"
        labels: {"no": "off", app.kubernetes.io/managed-by: someone-else}
        annotations:
          note: "a: b # not a comment\\n---\\nkind: Secret"
          example.com/null: "null"
          example.com/empty: ""
          unicode: "caf\\u00e9"
      spec:
        podSelector: {matchLabels: {"true": "False"}}
        policyTypes: [Ingress]
        ingress:
          - from:
              - namespaceSelector: {matchLabels: {"on": "null"}}
              - ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}
            ports: [{port: http}, {protocol: UDP, port: 53, endPort: 60}]
""".replace("DIGEST", "0" * 63 + "1")


# Policies of the kubernetes-network-policy-recipes collection (github.com/ahmetb/
# kubernetes-network-policy-recipes), each as the recipe writes it: most name no namespace, for
# `kubectl apply -n`, and get `default` here. Pods to apply them to, in `default` unless said.
RECIPE_POLICIES = """\
  # 01: deny all traffic to an application
  - kind: NetworkPolicy
    apiVersion: networking.k8s.io/v1
    metadata:
      name: web-deny-all
    spec:
      podSelector:
        matchLabels:
          app: web
      ingress: []
  # 02: limit traffic to an application
  - kind: NetworkPolicy
    apiVersion: networking.k8s.io/v1
    metadata:
      name: api-allow
    spec:
      podSelector:
        matchLabels:
          app: bookstore
          role: api
      ingress:
      - from:
          - podSelector:
              matchLabels:
                app: bookstore
  # 03: deny all non-whitelisted traffic in the namespace
  - kind: NetworkPolicy
    apiVersion: networking.k8s.io/v1
    metadata:
      name: default-deny-all
      namespace: default
    spec:
      podSelector: {}
      ingress: []
  # 06: allow traffic from a namespace
  - kind: NetworkPolicy
    apiVersion: networking.k8s.io/v1
    metadata:
      name: web-allow-prod
    spec:
      podSelector:
        matchLabels:
          app: web
      ingress:
      - from:
        - namespaceSelector:
            matchLabels:
              purpose: production
  # 09: allow traffic only to a port
  - kind: NetworkPolicy
    apiVersion: networking.k8s.io/v1
    metadata:
      name: api-allow-5000
    spec:
      podSelector:
        matchLabels:
          app: apiserver
      ingress:
      - ports:
        - port: 5000
        from:
        - podSelector:
            matchLabels:
              role: monitoring
  # 10: allowing traffic with multiple selectors
  - kind: NetworkPolicy
    apiVersion: networking.k8s.io/v1
    metadata:
      name: redis-allow-services
    spec:
      podSelector:
        matchLabels:
          app: bookstore
          role: db
      ingress:
      - from:
        - podSelector:
            matchLabels:
              app: bookstore
              role: search
        - podSelector:
            matchLabels:
              app: bookstore
              role: api
        - podSelector:
            matchLabels:
              app: inventory
              role: web
  # 11: deny egress traffic from an application
  - kind: NetworkPolicy
    apiVersion: networking.k8s.io/v1
    metadata:
      name: foo-deny-egress
    spec:
      podSelector:
        matchLabels:
          app: foo
      policyTypes:
      - Egress
      egress: []
"""
RECIPE_PODS = {  # name: (namespace, labels, address)
    "web": ("default", "{app: web}", "10.244.1.10"),
    "api": ("default", "{app: bookstore, role: api}", "10.244.1.11"),
    "bookstore-frontend": ("default", "{app: bookstore, role: frontend}", "10.244.1.12"),
    "db": ("default", "{app: bookstore, role: db}", "10.244.1.13"),
    "search": ("default", "{app: bookstore, role: search}", "10.244.1.14"),
    "apiserver": ("default", "{app: apiserver}", "10.244.1.15"),
    "monitoring": ("default", "{role: monitoring}", "10.244.1.16"),
    "foo": ("default", "{app: foo}", "10.244.1.17"),
    "prod-client": ("production", "{app: client}", "10.244.1.20"),
    "dev-client": ("dev", "{app: client}", "10.244.1.21"),
}
RECIPES = (
    """\
apiVersion: netcc.io/v1alpha1
kind: ClusterNetwork
metadata: {name: recipes}
spec:
  podCIDR: 10.244.0.0/16
  serviceCIDR: 10.96.0.0/16
  nodes:
    - {name: node-1, address: 192.168.77.11, podCIDR: 10.244.1.0/24}
  namespaces:
    - {name: default}
    - {name: production, labels: {purpose: production}}
    - {name: dev}
  workloads:
"""
    + "".join(
        f"    - {{name: {name}, namespace: {ns}, node: node-1, labels: {labels}, ips: [{ip}]}}\n"
        for name, (ns, labels, ip) in RECIPE_PODS.items()
    )
    + "  policies:\n"
    + RECIPE_POLICIES
)


def node_spec(node: str, pods: dict[str, str]) -> str:
    """One node with the given pods (name -> IP in 10.78.1.0/24); the server takes 8080 from
    the client only."""
    lines = [
        "apiVersion: netcc.io/v1alpha1",
        "kind: ClusterNetwork",
        "metadata: {name: k8stest}",
        "spec:",
        "  podCIDR: 10.78.0.0/16",
        "  serviceCIDR: 10.96.0.0/16",
        "  nodes:",
        f"    - {{name: {node}, address: 192.168.251.1, podCIDR: 10.78.1.0/24}}",
        "  namespaces: [{name: app}]",
        "  workloads:",
    ]
    for name, ip in sorted(pods.items()):
        lines.append(
            f"    - {{name: {name}, namespace: app, node: {node}, labels: {{app: {name}}}, "
            f"ips: [{ip}], ports: [{{name: http, port: 8080}}]}}"
        )
    lines += [
        "  policies:",
        "    - apiVersion: networking.k8s.io/v1",
        "      kind: NetworkPolicy",
        "      metadata: {name: server, namespace: app}",
        "      spec:",
        "        podSelector: {matchLabels: {app: server}}",
        "        ingress: [{from: [{podSelector: {matchLabels: {app: client}}}], "
        "ports: [{port: 8080}]}]",
    ]
    return "\n".join(lines) + "\n"


@cache
def compiled(text: str, name: str = "spec.yaml") -> dict[str, bytes]:
    return compile_spec(text.encode(), name)


@cache
def compiled_file(path: Path) -> dict[str, bytes]:
    return compile_spec(path.read_bytes(), path.name)


def sources() -> dict[str, bytes]:
    """The text of every spec of `all_trees`, by name."""
    out = {"shop": SHOP.read_bytes(), "tricky": TRICKY.encode(), "recipes": RECIPES.encode()}
    out["ipsec"] = IPSEC_SHOP.encode()
    return out | {p.stem: p.read_bytes() for p in GOLDEN_SPECS}


# The shop with IPsec, in the middle of a key rotation (key 2 accepted, key 1 sent with).
IPSEC_SHOP = SHOP.read_text().replace(
    "  namespaces:\n",
    "  encryption:\n    ipsec:\n      enabled: true\n"
    "      keys: [{id: 1, state: send}, {id: 2, state: accept}]\n  namespaces:\n",
    1,
)


def all_trees() -> dict[str, dict[str, bytes]]:
    """shop, the golden specs, the tricky spec and the recipes, compiled."""
    trees = {
        "shop": compiled_file(SHOP),
        "tricky": compiled(TRICKY),
        "recipes": compiled(RECIPES, "recipes.yaml"),
        "ipsec": compiled(IPSEC_SHOP, "ipsec.yaml"),
    }
    for path in GOLDEN_SPECS:
        trees[path.stem] = compiled_file(path)
    return trees
