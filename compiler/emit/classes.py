"""Emit what the node daemon networks runtime pods with: `classes.json` and node addresses.

`classes.json` (format: `netcc.contract.classes`) lists every workload class with what a pod
of it gets: its block (offset and size inside any node's podCIDR), its identity and peer
class, its profile, and the endpoint values its pods' `netcc_endpoints` entries take (all but
the address, the interface and the router, which the daemon fills in); and, for every
namespace of the spec, the label keys that decide a pod's class. A namespace without classes
is listed too (with its keys): its pods are refused as matching no class, while a namespace
the spec does not declare is refused as undeclared.

A spec with classes also gives each `nodes/NODE/node.json` the node's addresses: its address,
its podCIDR, its router address (the pods' gateway, as the datapath uses it), and the routes
to the other nodes' podCIDRs.
"""

from __future__ import annotations

from typing import Any

from netcc.contract import classes as contract
from netcc.model.types import Cluster, WorkloadClass
from netcc.plan.planner import ClassPlan, ClusterPlan
from netcc.resolve.classes import keys_that_matter, match_of


def classes_document(p: ClusterPlan) -> bytes:
    """The `classes.json` document of a plan with workload classes."""
    keys = keys_that_matter(p.cluster)
    by_key = {c.key: c for c in p.cluster.classes}
    docs = [_class(c, by_key[c.key], keys[by_key[c.key].namespace]) for c in p.classes]
    return contract.dump(keys, docs)


def _class(c: ClassPlan, cls: WorkloadClass, keys: list[str]) -> dict[str, Any]:
    return {
        "class": c.number,
        "key": c.key,
        "namespace": cls.namespace,
        "name": cls.name,
        "match": match_of(cls, keys),
        "labels": dict(cls.labels),
        "identity": c.identity,
        "peer": c.peer,
        "profile": c.profile.number,
        "endpoint": {
            "workload": 0,  # not a static workload: the datapath's self check compares addresses
            "profile": c.profile.number,
            "identity": c.identity,
            "flags": c.profile.flags,
            "ingress_deny": c.deny[0],
            "egress_deny": c.deny[1],
        },
        "block": {"offset": c.block.offset, "size": c.block.size},
        "perNode": cls.per_node,
        "ports": [
            {"name": port.name, "port": port.port, "protocol": port.protocol} for port in cls.ports
        ],
    }


def node_addresses(cluster: Cluster, name: str) -> dict[str, Any]:
    """The node's addresses as the daemon needs them (see the module's doc)."""
    node = cluster.node(name)
    return {
        "address": str(node.address),
        "podCIDR": str(node.pod_cidr),
        "router": str(node.router_ip),
        "routes": [
            {"node": n.name, "podCIDR": str(n.pod_cidr), "via": str(n.address)}
            for n in sorted(cluster.nodes, key=lambda n: n.name)
            if n.name != name
        ],
    }
