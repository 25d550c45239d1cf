"""Where the pods of workload classes are, and which ipBlocks hold their addresses.

Every node's podCIDR holds one block per class, at the same offset on every node
(`netcc.plan.blocks.layout`). A remote node knows a class pod's class from its address alone:
the podCIDR's entry in `netcc_ipcache_cidr` sends the lookup on to `netcc_class_blocks`, keyed
by the offset inside the podCIDR, which every node holds alike. That works where the policies'
ipBlocks see a podCIDR as a whole:

- a *plain* node: no ipBlock cidr or except lies strictly inside its podCIDR, and the podCIDR
  is in the same ipBlocks as those of the other plain nodes (`common`): then the class's blocks
  on all plain nodes are one peer class, and one shared entry per class serves them all;
- a *cut* node (rare: Kubernetes says ipBlock is for addresses outside the cluster): its
  podCIDR gets no such entry; each class block gets entries of its own in `netcc_ipcache_cidr`
  instead, split further where an ipBlock cuts inside the block (`ClassRegion`), each in the
  peer class of its exact ipBlock set.

The common ipBlock set is the one most plain candidates share (ties: the smallest), so in the
usual spec (no ipBlock inside the pod network) every node is plain.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from ipaddress import IPv4Network

from netcc.model.types import Cluster
from netcc.plan.blocks import Block, layout
from netcc.resolve.cidr import BlockIndex


@dataclass(frozen=True)
class ClassRegion:
    """Addresses of one class's block on a cut node that lie in the same ipBlocks: an LPM
    region (its more specific regions excepted)."""

    network: IPv4Network
    cls: str  # the class, namespace/name
    blocks: frozenset[int]  # the ipBlocks holding it (indices into the resolution's blocks)


@dataclass(frozen=True)
class ClassAddresses:
    """The address layout of the classes, and how ipBlocks see it (see the module's doc)."""

    blocks: dict[str, Block]  # class key -> its block, in spec order
    common: frozenset[int]  # the ipBlocks holding the podCIDRs (and blocks) of plain nodes
    plain: tuple[str, ...]  # nodes whose podCIDR gets one entry flagged for class blocks
    cut: dict[str, tuple[ClassRegion, ...]]  # other nodes -> entries of their class blocks


NO_CLASSES = ClassAddresses({}, frozenset(), (), {})


def class_addresses(
    cluster: Cluster, index: BlockIndex, prefixes: set[IPv4Network]
) -> ClassAddresses:
    """The layout and how the ipBlocks (their cidrs and excepts are `prefixes`, indexed in
    `index`) see it. Raises `netcc.plan.blocks.LayoutError` when blocks do not fit."""
    if not cluster.classes:
        return NO_CLASSES
    blocks = layout(cluster)
    inside: dict[str, list[IPv4Network]] = {}
    whole: dict[str, frozenset[int]] = {}
    for n in sorted(cluster.nodes, key=lambda n: n.name):
        p = n.pod_cidr
        inside[n.name] = sorted(
            (q for q in prefixes if q.prefixlen > p.prefixlen and q.subnet_of(p)),
            key=lambda q: (int(q.network_address), q.prefixlen),
        )
        whole[n.name] = index.of_region(p)
    seen = Counter(whole[name] for name, cuts in inside.items() if not cuts)
    common = min(seen, key=lambda s: (-seen[s], sorted(s))) if seen else frozenset()
    plain = tuple(name for name, cuts in inside.items() if not cuts and whole[name] == common)
    cut: dict[str, tuple[ClassRegion, ...]] = {}
    for n in sorted(cluster.nodes, key=lambda n: n.name):
        if n.name in plain:
            continue
        regions: list[ClassRegion] = []
        for key, block in blocks.items():
            b = block.on(n.pod_cidr)
            networks = {b} | {q for q in inside[n.name] if q.subnet_of(b)}
            for r in sorted(networks, key=lambda q: (int(q.network_address), q.prefixlen)):
                regions.append(ClassRegion(r, key, index.of_region(r)))
        cut[n.name] = tuple(regions)
    return ClassAddresses(blocks, common, plain, cut)
