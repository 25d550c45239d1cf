"""Deterministic generator of large, realistic ClusterNetwork specs for the benchmarks.

A seeded `random.Random` drives everything, so the same arguments give the same bytes.

The cluster looks like a multi-team production cluster:
- nodes `node-01`... with a /22 each inside 10.128.0.0/12 (1,021 pod addresses per node),
- namespaces `TEAM-ENV` (teams x prod/staging/dev) plus `kube-system` and `monitoring`,
  labelled team/env (and `pci` for payments),
- workloads in deployments: several replicas sharing app/tier/team/version/track labels
  (so replicas share an identity, as in Kubernetes), with named container ports per tier,
  spread round-robin over the nodes, addresses inside the node's podCIDR,
- NetworkPolicies: a default deny per namespace (Ingress, or Ingress+Egress in prod) first,
  then one policy of each kind, then a weighted random mix of them: DNS egress,
  same-namespace app-to-app (named ports), cross-namespace (namespaceSelector AND
  podSelector), Prometheus scraping (named port), matchExpressions (In/NotIn), public
  ingress from ipBlock 0.0.0.0/0 with excepts, egress to partner ipBlocks with excepts on
  443, port ranges (endPort), and named ports open to any peer (no `from`).

Rules are counted as the sum of ingress and egress rules of every policy; `rules=R` keeps
adding policies (and trims the last one) until exactly R rules exist.

CLI: `python3 bench/specgen.py --workloads 1000 --nodes 20 --policies 1000 -o spec.yaml`;
`--classes 1000 --policies 2000 --nodes 100` for a spec whose workloads are all classes.

Longer than most modules (~600 lines) on purpose: one generator, each policy kind a short
function beside the others, so the mix the benchmarks measure is read in one place.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

import yaml

POD_CIDR = IPv4Network("10.128.0.0/12")
NODE_PREFIX = 22
SERVICE_CIDR = "10.96.0.0/16"
TEAMS = (
    "shop",
    "payments",
    "search",
    "identity",
    "data",
    "ml",
    "ads",
    "growth",
    "media",
    "maps",
    "chat",
    "billing",
    "support",
    "infra",
    "risk",
    "catalog",
)
ENVS = ("prod", "staging", "dev")
VERSIONS = ("v1", "v2", "v3")
TRACKS = ("stable", "stable", "stable", "canary")

# tier -> (app names, container ports (name, port, protocol))
TIERS: dict[str, tuple[tuple[str, ...], tuple[tuple[str, int, str], ...]]] = {
    "web": (
        ("frontend", "gateway", "ui", "bff", "admin"),
        (("http", 8080, "TCP"), ("metrics", 9100, "TCP")),
    ),
    "api": (
        (
            "cart",
            "checkout",
            "orders",
            "users",
            "auth",
            "search-api",
            "recommend",
            "inventory",
            "pricing",
            "notify",
        ),
        (("grpc", 50051, "TCP"), ("http", 8080, "TCP"), ("metrics", 9090, "TCP")),
    ),
    "data": (
        ("postgres", "redis", "kafka", "elastic", "memcached"),
        (("db", 5432, "TCP"), ("cache", 6379, "TCP"), ("metrics", 9187, "TCP")),
    ),
    "worker": (
        ("indexer", "mailer", "batch", "etl", "scheduler"),
        (("metrics", 9100, "TCP"), ("stats", 8125, "UDP")),
    ),
}
TIER_WEIGHTS = (("web", 2), ("api", 5), ("data", 2), ("worker", 2))
PUBLIC_EXCEPTS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "203.0.113.0/24")


@dataclass
class Deployment:
    namespace: str
    team: str
    app: str
    tier: str
    labels: dict[str, str]
    ports: tuple[tuple[str, int, str], ...]


def _namespaces(count: int) -> list[dict]:
    out = [
        {"name": "kube-system", "labels": {"team": "platform", "env": "prod"}},
        {"name": "monitoring", "labels": {"team": "sre", "env": "prod"}},
    ]
    for env in ENVS:
        for team in TEAMS:
            if len(out) >= count:
                return out
            labels = {"team": team, "env": env}
            if team == "payments":
                labels["pci"] = "true"
            out.append({"name": f"{team}-{env}", "labels": labels})
    return out


def _nodes(count: int) -> list[dict]:
    subnets = POD_CIDR.subnets(new_prefix=NODE_PREFIX)
    return [
        {
            "name": f"node-{i:02d}",
            "address": str(IPv4Address("192.168.0.10") + i),
            "podCIDR": str(next(subnets)),
        }
        for i in range(1, count + 1)
    ]


def _workloads(
    rng: random.Random,
    count: int,
    nodes: list[dict],
    namespaces: list[dict],
    deployments_wanted: int | None = None,
) -> tuple[list[dict], list[Deployment]]:
    """Deployments of 1-6 replicas until `count` pods exist (or `deployments_wanted`
    deployments); round-robin over the nodes."""
    next_host = {n["name"]: 2 for n in nodes}  # .0 network, .1 router
    capacity = 2 ** (32 - NODE_PREFIX) - 3
    tiers = [t for t, w in TIER_WEIGHTS for _ in range(w)]
    user_ns = [ns for ns in namespaces if ns["name"] not in ("kube-system", "monitoring")]
    pods: list[dict] = []
    deployments: list[Deployment] = []
    taken: set[tuple[str, str]] = set()
    node_i = 0

    def add(dep: Deployment, replicas: int) -> None:
        nonlocal node_i
        for r in range(replicas):
            if len(pods) >= count:
                return
            node = nodes[node_i % len(nodes)]
            node_i += 1
            host = next_host[node["name"]]
            if host > capacity:
                raise ValueError(f"too many pods for {len(nodes)} nodes of /{NODE_PREFIX}")
            next_host[node["name"]] += 1
            ip = IPv4Network(node["podCIDR"]).network_address + host
            pods.append(
                {
                    "name": f"{dep.app}-{dep.labels['version']}-{rng.randrange(16**5):05x}{r}",
                    "namespace": dep.namespace,
                    "node": node["name"],
                    "labels": dict(dep.labels),
                    "ips": [str(ip)],
                    "ports": [{"name": n, "port": p, "protocol": pr} for n, p, pr in dep.ports],
                }
            )

    system = [
        ("kube-system", "kube-dns", "dns", {"k8s-app": "kube-dns"}, (("dns", 53, "UDP"),)),
        ("monitoring", "prometheus", "observability", {"app": "prometheus"}, ()),
    ]
    for ns, app, tier, labels, ports in system:
        dns_ports = ports + ((("dns-tcp", 53, "TCP"),) if app == "kube-dns" else ())
        dep = Deployment(ns, "platform", app, tier, {**labels, "version": "v1"}, dns_ports)
        deployments.append(dep)
        add(dep, 2)
    while len(pods) < count and (
        deployments_wanted is None or len(deployments) < deployments_wanted
    ):
        ns = rng.choice(user_ns)
        tier = rng.choice(tiers)
        names, ports = TIERS[tier]
        app = rng.choice(names)
        version = rng.choice(VERSIONS)
        if (ns["name"], app + version) in taken:
            continue
        taken.add((ns["name"], app + version))
        labels = {
            "app": app,
            "tier": tier,
            "team": ns["labels"]["team"],
            "version": version,
            "track": rng.choice(TRACKS),
        }
        dep = Deployment(ns["name"], ns["labels"]["team"], app, tier, labels, ports)
        deployments.append(dep)
        add(dep, rng.randint(1, 6))
    return pods, deployments


def _policy(name: str, namespace: str, spec: dict) -> dict:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


class _PolicyMaker:
    """Policies of each realistic kind; every method returns (name stem, namespace, spec)."""

    def __init__(self, rng: random.Random, deployments: list[Deployment], namespaces: list[dict]):
        self.rng = rng
        self.deps = [d for d in deployments if d.tier in TIERS]
        self.by_ns: dict[str, list[Deployment]] = {}
        for d in self.deps:
            self.by_ns.setdefault(d.namespace, []).append(d)
        self.teams = sorted({ns["labels"]["team"] for ns in namespaces})
        # partner ranges: public /16../24 blocks, some with a hole
        self.partners = []
        for _ in range(64):
            net = IPv4Network((rng.randrange(11, 100) << 24 | rng.randrange(1 << 16) << 8, 24))
            net = net.supernet(new_prefix=rng.choice((16, 20, 22, 24)))
            excepts = []
            if rng.random() < 0.4 and net.prefixlen < 24:
                excepts = [str(next(net.subnets(new_prefix=net.prefixlen + 2)))]
            self.partners.append({"cidr": str(net), **({"except": excepts} if excepts else {})})
        # (kind, weight); the first policies take each kind once, in this order, so that even
        # a 10-rule spec has ingress and egress, selectors, named ports and PEER_ANY entries
        self.kinds: list[tuple[Callable[[], tuple[str, str, dict]], int]] = [
            (self.app_to_app, 30),
            (self.dns_egress, 8),
            (self.open_port, 5),
            (self.partner_egress, 10),
            (self.cross_namespace, 15),
            (self.scrape, 8),
            (self.expressions, 10),
            (self.public_ingress, 6),
            (self.port_range, 8),
            (self.egress_to_data, 5),
        ]
        self.picked = 0

    def pick(self) -> tuple[str, str, dict]:
        self.picked += 1
        if self.picked <= len(self.kinds):
            return self.kinds[self.picked - 1][0]()
        fns = [f for f, w in self.kinds for _ in range(w)]
        return self.rng.choice(fns)()

    def _dep(self) -> Deployment:
        return self.rng.choice(self.deps)

    def _sel(self, d: Deployment, *keys: str) -> dict:
        return {"matchLabels": {k: d.labels[k] for k in keys}}

    def _named(self, d: Deployment) -> list[dict]:
        name, _, proto = self.rng.choice(d.ports)
        return [{"port": name, "protocol": proto}] if proto != "TCP" else [{"port": name}]

    def app_to_app(self) -> tuple[str, str, dict]:
        d = self._dep()
        peers = self.rng.sample(self.by_ns[d.namespace], min(2, len(self.by_ns[d.namespace])))
        rules = [
            {"from": [{"podSelector": self._sel(p, "app")}], "ports": self._named(d)} for p in peers
        ]
        return f"allow-{d.app}", d.namespace, {"podSelector": self._sel(d, "app"), "ingress": rules}

    def cross_namespace(self) -> tuple[str, str, dict]:
        d = self._dep()
        team = self.rng.choice(self.teams)
        peer = {
            "namespaceSelector": {"matchLabels": {"team": team, "env": d.namespace.split("-")[-1]}},
            "podSelector": {"matchLabels": {"tier": self.rng.choice(("web", "api"))}},
        }
        spec = {
            "podSelector": self._sel(d, "app", "version"),
            "ingress": [{"from": [peer], "ports": self._named(d)}],
        }
        return f"from-{team}-{d.app}", d.namespace, spec

    def scrape(self) -> tuple[str, str, dict]:
        d = self._dep()
        spec = {
            "podSelector": {"matchLabels": {"tier": d.tier}},
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {"matchLabels": {"team": "sre"}},
                            "podSelector": {"matchLabels": {"app": "prometheus"}},
                        }
                    ],
                    "ports": [{"port": "metrics"}],
                }
            ],
        }
        return f"scrape-{d.tier}", d.namespace, spec

    def dns_egress(self) -> tuple[str, str, dict]:
        d = self._dep()
        peer = {
            "namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": "kube-system"},
            },
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
        spec = {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [
                {"to": [peer], "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53}]},
            ],
        }
        return "allow-dns", d.namespace, spec

    def expressions(self) -> tuple[str, str, dict]:
        d = self._dep()
        versions = self.rng.sample(VERSIONS, 2)
        spec = {
            "podSelector": {
                "matchLabels": {"app": d.app},
                "matchExpressions": [
                    {"key": "version", "operator": "In", "values": versions},
                    {"key": "track", "operator": "NotIn", "values": ["canary"]},
                ],
            },
            "ingress": [
                {
                    "from": [
                        {
                            "podSelector": {
                                "matchExpressions": [
                                    {"key": "tier", "operator": "In", "values": ["web", "api"]},
                                    {"key": "debug", "operator": "DoesNotExist"},
                                ]
                            }
                        }
                    ],
                    "ports": self._named(d),
                }
            ],
        }
        return f"stable-{d.app}", d.namespace, spec

    def public_ingress(self) -> tuple[str, str, dict]:
        d = self._dep()
        excepts = self.rng.sample(PUBLIC_EXCEPTS, self.rng.randint(1, 3))
        spec = {
            "podSelector": self._sel(d, "app"),
            "ingress": [
                {
                    "from": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": sorted(excepts)}}],
                    "ports": [{"port": 443}, {"port": 8080}],
                }
            ],
        }
        return f"public-{d.app}", d.namespace, spec

    def open_port(self) -> tuple[str, str, dict]:
        d = self._dep()
        spec = {
            "podSelector": self._sel(d, "app"),
            "ingress": [{"ports": self._named(d)}],  # no `from`: any peer
        }
        return f"open-{d.app}", d.namespace, spec

    def partner_egress(self) -> tuple[str, str, dict]:
        d = self._dep()
        blocks = self.rng.sample(self.partners, self.rng.randint(1, 3))
        spec = {
            "podSelector": self._sel(d, "app"),
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": b} for b in blocks], "ports": [{"port": 443}]}],
        }
        return f"partner-{d.app}", d.namespace, spec

    def port_range(self) -> tuple[str, str, dict]:
        d = self._dep()
        first = self.rng.choice((8000, 9000, 10000, 30000))
        last = first + self.rng.choice((99, 999, 2767))
        proto = self.rng.choice(("TCP", "UDP"))
        spec = {
            "podSelector": self._sel(d, "tier"),
            "ingress": [
                {
                    "from": [{"namespaceSelector": {"matchLabels": {"team": d.team}}}],
                    "ports": [{"protocol": proto, "port": first, "endPort": last}],
                }
            ],
        }
        return f"range-{d.tier}", d.namespace, spec

    def egress_to_data(self) -> tuple[str, str, dict]:
        d = self._dep()
        data = [x for x in self.by_ns[d.namespace] if x.tier == "data"] or [d]
        target = self.rng.choice(data)
        spec = {
            "podSelector": self._sel(d, "app"),
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [{"podSelector": self._sel(target, "app")}],
                    "ports": [{"port": "db"}, {"port": "cache"}],
                },
                {"to": [{"ipBlock": self.rng.choice(self.partners)}], "ports": [{"port": 443}]},
            ],
        }
        return f"to-{target.app}", d.namespace, spec


def rule_count(spec: dict) -> int:
    """Ingress plus egress rules over every policy."""
    return sum(
        len(p["spec"].get("ingress", [])) + len(p["spec"].get("egress", []))
        for p in spec["spec"]["policies"]
    )


def _policies(
    rng: random.Random,
    deployments: list[Deployment],
    namespaces: list[dict],
    policies: int | None,
    rules: int | None,
) -> list[dict]:
    out: list[dict] = []
    names: dict[str, int] = {}
    total = 0

    def done() -> bool:
        return (policies is not None and len(out) >= policies) or (
            rules is not None and total >= rules
        )

    # a default deny per user namespace; prod also denies egress
    for ns in namespaces[2:]:
        if done():
            return out
        types = ["Ingress", "Egress"] if ns["labels"]["env"] == "prod" else ["Ingress"]
        out.append(_policy("default-deny", ns["name"], {"podSelector": {}, "policyTypes": types}))
    maker = _PolicyMaker(rng, deployments, namespaces)
    while not done():
        stem, namespace, spec = maker.pick()
        n = names.get(f"{namespace}/{stem}", 0)
        names[f"{namespace}/{stem}"] = n + 1
        name = stem if n == 0 else f"{stem}-{n}"
        n_rules = len(spec.get("ingress", [])) + len(spec.get("egress", []))
        if rules is not None and total + n_rules > rules:
            for direction in ("egress", "ingress"):  # trim to hit the target exactly
                while total + n_rules > rules and len(spec.get(direction, [])) > 1:
                    spec[direction].pop()
                    n_rules -= 1
            if total + n_rules > rules:
                continue
        out.append(_policy(name, namespace, spec))
        total += n_rules
    return out


def generate(
    workloads: int = 1000,
    nodes: int = 20,
    namespaces: int = 50,
    policies: int | None = 1000,
    rules: int | None = None,
    seed: int = 1,
) -> dict:
    """A spec as a dict. Give `policies` (count) or `rules` (exact rule total), or both."""
    if policies is None and rules is None:
        raise ValueError("give policies or rules")
    rng = random.Random(seed)
    ns = _namespaces(namespaces)
    node_list = _nodes(nodes)
    pods, deployments = _workloads(rng, workloads, node_list, ns)
    return {
        "apiVersion": "netcc.io/v1alpha1",
        "kind": "ClusterNetwork",
        "metadata": {"name": f"bench-w{workloads}-s{seed}"},
        "spec": {
            "podCIDR": str(POD_CIDR),
            "serviceCIDR": SERVICE_CIDR,
            "nodes": node_list,
            "namespaces": ns,
            "workloads": pods,
            "policies": _policies(rng, deployments, ns, policies, rules),
        },
    }


def generate_classes(
    classes: int = 1000,
    nodes: int = 100,
    namespaces: int = 50,
    policies: int = 2000,
    seed: int = 1,
    per_node: int = 1,
) -> dict:
    """A spec whose workloads are all classes (issue 13): one class per deployment (the
    deployments and policies `generate` would make, the pods left to runtime), each with
    `per_node` addresses on every node. At 1,000 classes, perNode 1 and /22 podCIDRs every
    node has room for 1,000 pods (100,000 on 100 nodes)."""
    rng = random.Random(seed)
    ns = _namespaces(namespaces)
    node_list = _nodes(nodes)
    _, deployments = _workloads(rng, classes * 6, node_list, ns, deployments_wanted=classes)
    workloads = [
        {
            "name": f"{d.app}-{d.labels['version']}",
            "namespace": d.namespace,
            "labels": dict(d.labels),
            "ports": [{"name": n, "port": p, "protocol": pr} for n, p, pr in d.ports],
            "perNode": per_node,
        }
        for d in deployments
    ]
    return {
        "apiVersion": "netcc.io/v1alpha1",
        "kind": "ClusterNetwork",
        "metadata": {"name": f"bench-c{classes}-s{seed}"},
        "spec": {
            "podCIDR": str(POD_CIDR),
            "serviceCIDR": SERVICE_CIDR,
            "nodes": node_list,
            "namespaces": ns,
            "workloads": workloads,
            "policies": _policies(rng, deployments, ns, policies, None),
        },
    }


class _Dumper(yaml.SafeDumper):
    """No anchors or aliases for shared objects: specs are written out in full, as by hand."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def dump(spec: dict) -> bytes:
    """YAML bytes (block style, stable key order, no anchors)."""
    return yaml.dump(spec, Dumper=_Dumper, sort_keys=False, width=120).encode()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", type=int, default=1000)
    ap.add_argument("--nodes", type=int, default=20)
    ap.add_argument("--namespaces", type=int, default=50)
    ap.add_argument("--policies", type=int, default=None, help="policy count (default 1000)")
    ap.add_argument("--rules", type=int, default=None, help="exact total of rules instead")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--classes",
        type=int,
        default=None,
        help="this many workload classes (one per deployment, no static pods) instead",
    )
    ap.add_argument("--per-node", type=int, default=1, help="perNode of each class")
    ap.add_argument("-o", "--output", default="-", help="file, or - for stdout")
    args = ap.parse_args(argv)
    policies = args.policies if args.policies is not None or args.rules else 1000
    if args.classes is not None:
        spec = generate_classes(
            args.classes, args.nodes, args.namespaces, policies, args.seed, args.per_node
        )
    else:
        spec = generate(
            args.workloads, args.nodes, args.namespaces, policies, args.rules, args.seed
        )
    data = dump(spec)
    if args.output == "-":
        sys.stdout.buffer.write(data)
    else:
        with open(args.output, "wb") as f:
            f.write(data)
    print(
        f"specgen: {len(spec['spec']['workloads'])} workloads, {len(spec['spec']['nodes'])} "
        f"nodes, {len(spec['spec']['namespaces'])} namespaces, "
        f"{len(spec['spec']['policies'])} policies, {rule_count(spec)} rules, {len(data):,} bytes",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
