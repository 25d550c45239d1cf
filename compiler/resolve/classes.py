"""Which label keys decide a runtime pod's class, and classes no selector can tell apart.

The keys that matter in a namespace N are the keys read by every selector that can apply to
N's pods: the podSelector of each policy of N; the podSelector of each peer of a policy of N
without a namespaceSelector (it selects in N); the podSelector of each peer, in any policy,
whose namespaceSelector matches N's labels; the selector of each service of N; and every key
a class of N declares. Selectors read a key through matchLabels and matchExpressions alike.
"""

from __future__ import annotations

from collections import defaultdict

from netcc.model.types import Cluster, LabelSelector, WorkloadClass
from netcc.semantics.policy import namespace_labels, selector_matches


def selector_keys(selector: LabelSelector | None) -> set[str]:
    """The label keys `selector` reads."""
    if selector is None:
        return set()
    return {k for k, _ in selector.match_labels} | {r.key for r in selector.match_expressions}


def keys_that_matter(cluster: Cluster) -> dict[str, list[str]]:
    """Per declared namespace, the sorted label keys that decide its pods' classes."""
    keys: dict[str, set[str]] = {ns.name: set() for ns in cluster.namespaces}
    labels = {ns.name: namespace_labels(cluster, ns.name) for ns in cluster.namespaces}
    for policy in cluster.policies:
        if policy.namespace in keys:
            keys[policy.namespace] |= selector_keys(policy.pod_selector)
        for rule in policy.ingress + policy.egress:
            for peer in rule.peers:
                if peer.ip_block is not None:
                    continue
                read = selector_keys(peer.pod_selector)
                if peer.namespace_selector is None:
                    if policy.namespace in keys:
                        keys[policy.namespace] |= read
                    continue
                for ns, ns_labels in labels.items():
                    if selector_matches(peer.namespace_selector, ns_labels):
                        keys[ns] |= read
    for service in cluster.services:
        if service.namespace in keys:
            keys[service.namespace] |= {k for k, _ in service.selector}
    for cls in cluster.classes:
        if cls.namespace in keys:
            keys[cls.namespace] |= {k for k, _ in cls.labels}
    return {ns: sorted(k) for ns, k in keys.items()}


def match_of(cls: WorkloadClass, keys: list[str]) -> dict[str, str | None]:
    """The class's value for each key that matters in its namespace (None: absent)."""
    labels = dict(cls.labels)
    return {k: labels.get(k) for k in keys}


def indistinguishable(cluster: Cluster) -> list[tuple[WorkloadClass, WorkloadClass]]:
    """Pairs of classes of one namespace that agree on every key that matters (the later one
    second): no selector could tell their pods apart, so no pod could be placed."""
    keys = keys_that_matter(cluster)
    first: dict[tuple[str, tuple], WorkloadClass] = {}
    clashes = []
    for cls in cluster.classes:
        signature = (cls.namespace, tuple(match_of(cls, keys[cls.namespace]).items()))
        if signature in first:
            clashes.append((first[signature], cls))
        else:
            first[signature] = cls
    return clashes


def classes_by_namespace(cluster: Cluster) -> dict[str, list[WorkloadClass]]:
    """The classes of each namespace, in spec order."""
    out: dict[str, list[WorkloadClass]] = defaultdict(list)
    for cls in cluster.classes:
        out[cls.namespace].append(cls)
    return dict(out)
