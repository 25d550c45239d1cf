"""Class pods in a datapath run without their node daemon (`trace`, `verify`, tests).

The compiled OUT holds no entry for a pod of a workload class: the node daemon adds one when
the pod starts, from `classes.json` (the class's endpoint template) and the node's `node.json`
(its podCIDR and router). `class_endpoint` gives the same values for an address, so a datapath
loaded by `KernelCluster` judges a running class pod exactly as its node does.
"""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from netcc.contract import classes as classes_file
from netcc.contract.mapfile import NODE_FILE, out_node_names


def class_endpoint(
    out: Path, node: str, ip: str, classes: classes_file.Classes | None = None
) -> dict[str, Any] | None:
    """`netcc_endpoints` values of a class pod at `ip` on `node` (ifindex 0: bound to no
    interface), or None when no class block of the node holds `ip` (or OUT has no classes).
    `classes`: OUT's, when the caller has read them already."""
    if classes is None:
        classes = _classes(out)
        if classes is None:
            return None
    info = json.loads((Path(out) / NODE_FILE.format(node=node)).read_text())
    if not info.get("podCIDR") or not info.get("router"):
        return None
    cidr, addr = IPv4Network(info["podCIDR"]), IPv4Address(ip)
    for c in classes.classes:
        if addr in classes_file.block_cidr(cidr, c.offset, c.size):
            return {**c.endpoint, "ifindex": 0, "router": info["router"]}
    return None


def class_pod_node(out: Path, ip: str) -> str | None:
    """The node whose podCIDR holds `ip` inside one of its class blocks: where a class pod
    with that address runs (podCIDRs do not overlap); None for any other address."""
    classes = _classes(out)
    if classes is None:
        return None
    for node in out_node_names(out):
        if class_endpoint(out, node, ip, classes) is not None:
            return node
    return None


def _classes(out: Path) -> classes_file.Classes | None:
    path = Path(out) / classes_file.CLASSES_FILE
    return classes_file.load(path.read_bytes()) if path.is_file() else None
