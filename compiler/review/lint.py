"""`netcc lint`: policies and rules that do nothing, or less than they seem to.

Judged against the cluster the spec describes (its workloads, namespaces and the addresses
outside them), with the same exact connectivity `netcc review` uses:
- a policy whose podSelector selects no workload of its namespace;
- a rule that can never match: its policy does not isolate that direction (policyTypes), or
  none of its peers matches any workload or address, or none of its ports exists there;
- a rule shadowed by broader ones: everything it allows, for every pod it applies to, other
  rules of the policies selecting that pod allow too (of two identical rules, the later one);
- a named port that resolves on none of the pods it could apply to;
- a namespace left fully open: no policy isolates any of its workloads, in either direction;
- a NodePort with `externalTrafficPolicy: Cluster` in front of pods whose ingress policy denies
  some outside addresses: through another node they arrive as that node's address;
- workload classes (`netcc.review.class_lint`): blocks that take much of a node's podCIDR,
  classes left open where their namespace is isolated, classes no selector tells apart.

Workload classes count as workloads everywhere: a policy selecting only a class selects
something, a class's pods are a namespace's members, named ports resolve on them.
"""

from __future__ import annotations

from collections import defaultdict

from netcc.diagnostics import Diagnostic, SourceMap, join_key, join_path
from netcc.model.types import Cluster, NetworkPolicy, PolicyPort, Rule, Workload
from netcc.review.class_lint import lint_classes
from netcc.review.connectivity import Connectivity
from netcc.review.portset import EMPTY, PortSet
from netcc.review.services import nodeport_bypasses
from netcc.semantics.policy import policies_selecting, selector_matches

RuleKey = tuple[str, str, int]  # policy, direction, index


def _members(cluster: Cluster) -> list[Workload]:
    """Static workloads, and each class as its stand-in pod."""
    return [*cluster.workloads, *(c.pod() for c in cluster.classes)]


def _selected(cluster: Cluster, policy: NetworkPolicy) -> list[Workload]:
    return [
        w
        for w in _members(cluster)
        if w.namespace == policy.namespace and selector_matches(policy.pod_selector, dict(w.labels))
    ]


class _Linter:
    def __init__(self, cluster: Cluster, sources: SourceMap):
        self.cluster = cluster
        self.sources = sources
        self.c = Connectivity(cluster)
        self.found: list[Diagnostic] = []
        # rule -> {(pod, direction, remote party name): what it allows there}
        self.shares: dict[RuleKey, dict[tuple[str, str, str], PortSet]] = defaultdict(dict)
        # (pod, direction, remote) -> {rule: ports}
        self.cells: dict[tuple[str, str, str], dict[RuleKey, PortSet]] = defaultdict(dict)
        self.rules: dict[RuleKey, tuple[NetworkPolicy, Rule]] = {}

    def warn(self, path: str, message: str, severity: str = "warning") -> None:
        line, col = self.sources.locate(path)
        file = self.sources.file_of(path)
        self.found.append(Diagnostic(message, path, line, col, severity, file))

    def collect(self) -> None:
        """Every rule's share of every side it takes part in."""
        for p in self.cluster.policies:
            for direction in ("ingress", "egress"):
                for r in p.rules(direction):
                    self.rules[(p.key, direction, r.index)] = (p, r)
        seen: set[str] = set()
        for subject in self.c.pods:
            w = subject.workload
            if w.key in seen:
                continue
            seen.add(w.key)
            for direction in ("ingress", "egress"):
                for remote in self.c.parties:
                    side = self.c.side(w, direction, remote)
                    for g in side.grants:
                        k = (g.rule.policy, g.rule.direction, g.rule.index)
                        cell = (w.key, direction, remote.name)
                        self.shares[k][cell] = g.ports
                        self.cells[cell][k] = self.cells[cell].get(k, EMPTY) | g.ports

    def policies(self) -> None:
        for p in self.cluster.policies:
            if not _selected(self.cluster, p):
                self.warn(
                    join_path(p.path, "spec", "podSelector"),
                    f"policy {p.key} selects no workload of namespace {p.namespace!r}",
                )

    def never_matching(self) -> set[RuleKey]:
        """Warn about rules that allow nothing anywhere; returns them."""
        out = set()
        for k, (p, r) in self.rules.items():
            if self.shares.get(k) or not _selected(self.cluster, p):
                continue
            out.add(k)
            direction = r.direction
            if not p.isolates(direction):
                types = ", ".join(p.policy_types)
                self.warn(
                    r.path,
                    f"{direction} rule {r.index} of {p.key} never applies: its policyTypes "
                    f"[{types}] leave out {direction.capitalize()}",
                )
            elif r.peers and not any(self.c.peers_match(p, r, x) for x in self.c.parties):
                key = "from" if direction == "ingress" else "to"
                ipv6 = all(x.ip_block is not None and x.ip_block.cidr.version == 6 for x in r.peers)
                hint = " (IPv6 ipBlocks match no IPv4 address)" if ipv6 else ""
                self.warn(
                    r.path,
                    f"{direction} rule {r.index} of {p.key} can never match: no workload or "
                    f"address of the cluster matches its {key!r} peers{hint}",
                )
            else:
                self.warn(
                    r.path,
                    f"{direction} rule {r.index} of {p.key} can never match: none of its ports "
                    "exists on the pods it would apply to",
                )
        return out

    def _order(self, k: RuleKey) -> tuple[int, int, str]:
        path = self.rules[k][1].path
        return (*self.sources.locate(path), path)

    def _covers(self, k: RuleKey, rules: set[RuleKey]) -> bool:
        """Whether `rules` together allow all that rule `k` allows, wherever it applies."""
        for cell, ports in self.shares[k].items():
            union = EMPTY
            for o in rules:
                union = union | self.cells[cell].get(o, EMPTY)
            if not ports <= union:
                return False
        return True

    def _cover(self, k: RuleKey, candidates: set[RuleKey]) -> tuple[list[RuleKey], bool]:
        """A small set of candidates covering rule `k`: one broader rule when there is one."""

        def broadness(o: RuleKey) -> int:
            return sum(
                (self.cells[cell].get(o, EMPTY) & ports).size()
                + (self.cells[cell].get(o, EMPTY) & ports).other
                for cell, ports in self.shares[k].items()
            )

        ranked = sorted(candidates, key=lambda o: (-broadness(o), self._order(o)))
        for o in ranked:
            if self._covers(k, {o}):
                return [o], True
        chosen: list[RuleKey] = []
        for o in ranked:
            chosen.append(o)
            if self._covers(k, set(chosen)):
                break
        for o in list(chosen):
            if len(chosen) > 1 and self._covers(k, set(chosen) - {o}):
                chosen.remove(o)
        return sorted(chosen, key=self._order), False

    def shadowed(self, skip: set[RuleKey]) -> None:
        """Rules whose every share other (not themselves shadowed) rules cover; of rules that
        cover each other, the later ones are reported."""
        flagged: set[RuleKey] = set()
        for k in sorted(self.shares, key=self._order, reverse=True):
            if k in skip:
                continue
            candidates = {
                o
                for cell, ports in self.shares[k].items()
                for o, share in self.cells[cell].items()
                if o != k and o not in flagged and share & ports
            }
            if not self._covers(k, candidates):
                continue
            flagged.add(k)
            p, r = self.rules[k]
            by, single = self._cover(k, candidates)
            what = "a broader rule already allows" if single else "other rules together allow"
            names = ", ".join(f"{o[0]} {o[1]}[{o[2]}]" for o in by)
            self.warn(
                r.path,
                f"{r.direction} rule {r.index} of {p.key} is shadowed: {what} everything it "
                f"allows ({names})",
            )

    def named_ports(self) -> None:
        for p in self.cluster.policies:
            selected = _selected(self.cluster, p)
            if not selected:
                continue
            for direction in ("ingress", "egress"):
                for r in p.rules(direction):
                    for i, pp in enumerate(r.ports):
                        if isinstance(pp.port, str) and not self._resolves(p, r, pp, selected):
                            where = "pod it selects" if direction == "ingress" else "pod it allows"
                            self.warn(
                                join_key(join_path(r.path, "ports", i), "port"),
                                f"named port {pp.port!r} ({pp.protocol}) resolves on no {where}",
                            )

    def _resolves(
        self, p: NetworkPolicy, r: Rule, pp: PolicyPort, selected: list[Workload]
    ) -> bool:
        assert isinstance(pp.port, str)
        if r.direction == "ingress":
            candidates = selected
        else:
            candidates = [
                x.workload for x in self.c.pods if not r.peers or self.c.peers_match(p, r, x)
            ]
        return any(w.resolve_port(pp.port, pp.protocol) is not None for w in candidates)

    def open_namespaces(self) -> None:
        for ns in self.cluster.namespaces:
            members = [w for w in _members(self.cluster) if w.namespace == ns.name]
            if not members:
                continue
            if any(
                policies_selecting(self.cluster, w, d)
                for w in members
                for d in ("ingress", "egress")
            ):
                continue
            self.warn(
                ns.path,
                f"namespace {ns.name!r} is fully open: no policy isolates any of its "
                f"{len(members)} workload(s), for ingress or egress",
            )

    def run(self) -> list[Diagnostic]:
        self.collect()
        self.policies()
        never = self.never_matching()
        self.shadowed(never)
        self.named_ports()
        self.open_namespaces()
        self.nodeports()
        lint_classes(self.cluster, self.warn)
        return sorted(set(self.found), key=Diagnostic.sort_key)

    def nodeports(self) -> None:
        for service, _, message in nodeport_bypasses(self.cluster, self.c):
            self.warn(join_key(service.path, "externalTrafficPolicy"), message)


def lint(cluster: Cluster, sources: SourceMap) -> list[Diagnostic]:
    """Every finding, sorted by position: warnings, and notes (informational)."""
    return _Linter(cluster, sources).run()
