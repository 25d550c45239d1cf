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
    out = {"shop": SHOP.read_bytes(), "tricky": TRICKY.encode()}
    return out | {p.stem: p.read_bytes() for p in GOLDEN_SPECS}


def all_trees() -> dict[str, dict[str, bytes]]:
    """shop, the golden specs and the tricky spec, compiled."""
    trees = {"shop": compiled_file(SHOP), "tricky": compiled(TRICKY)}
    for path in GOLDEN_SPECS:
        trees[path.stem] = compiled_file(path)
    return trees
