"""Specs and artifact directories for the loader tests.

One node `n1` with a client (10.77.1.10) and a server (10.77.1.11, ports 8080 and 9090):

- v1: the server takes 8080 from the client;
- v2: the server takes 9090 instead (same rule, new port: verdicts keep their numbers);
- v3: v2, and the client's egress is isolated to the server's two ports (a new policy
  sorted before the server's: every verdict after it is renumbered, the counters table grows).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from kernelenv import compile_to

from netcc.build.clang import compile_objects
from netcc.contract.lock import make_lock

BASE = """\
apiVersion: netcc.io/v1alpha1
kind: ClusterNetwork
metadata: {name: loadertest}
spec:
  podCIDR: 10.77.0.0/16
  serviceCIDR: 10.96.0.0/16
  nodes:
    - {name: n1, address: 192.168.250.1, podCIDR: 10.77.1.0/24}
  namespaces:
    - {name: app}
  workloads:
    - {name: client, namespace: app, node: n1, labels: {app: client}, ips: [10.77.1.10]}
    - name: server
      namespace: app
      node: n1
      labels: {app: server}
      ips: [10.77.1.11]
      ports: [{name: http, port: 8080}, {name: alt, port: 9090}]
  policies:
"""

SERVER = """\
    - apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {{name: server-ingress, namespace: app}}
      spec:
        podSelector: {{matchLabels: {{app: server}}}}
        ingress:
          - from: [{{podSelector: {{matchLabels: {{app: client}}}}}}]
            ports: [{{port: {port}}}]
"""

CLIENT = """\
    - apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: client-egress, namespace: app}
      spec:
        podSelector: {matchLabels: {app: client}}
        egress:
          - to: [{podSelector: {matchLabels: {app: server}}}]
            ports: [{port: 8080}, {port: 9090}]
"""


def spec(version: int) -> str:
    text = BASE + SERVER.format(port=8080 if version == 1 else 9090)
    return text + (CLIENT if version >= 3 else "")


def compile_version(version: int, out: Path) -> Path:
    return compile_to(spec(version), out, f"v{version}.yaml")


def relock(out: Path) -> None:
    """Rewrite the lock after artifacts were edited (what a compromised CI could do too)."""
    lock = json.loads((out / "netcc.lock.json").read_text())
    tree = {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in out.rglob("*")
        if p.is_file() and p.name != "netcc.lock.json"
    }
    data = make_lock(tree, b"", lock["netcc"], lock["clang"])
    doc = json.loads(data)
    doc["spec"] = lock["spec"]
    (out / "netcc.lock.json").write_text(json.dumps(doc, indent=2) + "\n")


def rebuild(out: Path, edit_c: dict[str, tuple[str, str]]) -> None:
    """Edit generated C (path -> (regex, replacement)), rebuild the object, re-lock."""
    for rel, (pattern, repl) in edit_c.items():
        path = out / rel
        text, n = re.subn(pattern, repl, path.read_text())
        assert n, f"{pattern!r} not in {rel}"
        path.write_text(text)
    sources = {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in (out / "bpf").rglob("*")
        if p.suffix in (".c", ".h")
    }
    obj = compile_objects(sources, ["bpf/datapath.c"])["bpf/datapath.o"]
    (out / "bpf" / "datapath.o").write_bytes(obj)
    relock(out)


def with_ct_capacity(out: Path, entries: int) -> None:
    """Change NETCC_MAX_CT: config.h and layout.json, object rebuilt, lock rewritten."""
    layout = json.loads((out / "bpf" / "layout.json").read_text())
    layout["maps"]["netcc_ct"]["max_entries"] = entries
    (out / "bpf" / "layout.json").write_text(json.dumps(layout, indent=2) + "\n")
    rebuild(out, {"bpf/config.h": (r"#define NETCC_MAX_CT \d+", f"#define NETCC_MAX_CT {entries}")})


def failing_verifier(out: Path) -> None:
    """An object the verifier refuses: a packet read without a bounds check."""
    rebuild(
        out,
        {
            "bpf/datapath.c": (
                r"return enforce\(skb, DIR_INGRESS\);",
                "return enforce(skb, DIR_INGRESS) + *(volatile __u8 *)(long)skb->data;",
            )
        },
    )
