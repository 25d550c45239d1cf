"""Artifact dirs with workload classes, built by hand until the compiler emits them: a
compiled OUT with `classes.json` added, `podCIDR` and `router` in every node.json, and the
lock rewritten to match (the daemon checks every file it reads against it)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from netcc.contract import classes as classes_file
from netcc.contract.lock import LOCK_NAME

# node -> podCIDR, as examples/shop.yaml has them
SHOP_CIDRS = {"node-1": "10.244.1.0/24", "node-2": "10.244.2.0/24", "node-3": "10.244.3.0/24"}


def class_doc(
    number: int,
    namespace: str,
    name: str,
    match: Mapping[str, str | None],
    offset: int,
    size: int,
    endpoint: Mapping[str, int],
) -> dict[str, Any]:
    """One class as `classes.json` lists it."""
    return {
        "class": number,
        "key": f"{namespace}/{name}",
        "namespace": namespace,
        "name": name,
        "match": dict(match),
        "labels": {k: v for k, v in match.items() if v is not None},
        "identity": endpoint["identity"],
        "peer": 0,
        "profile": endpoint["profile"],
        "endpoint": dict(endpoint),
        "block": {"offset": offset, "size": size},
        "perNode": size,
        "ports": [],
    }


def static_endpoint(out: Path, node: str) -> dict[str, int]:
    """The endpoint values of the node's first static pod, as a class's template
    (`workload` 0: a class pod is no static workload)."""
    entries = json.loads((out / "nodes" / node / "maps" / "netcc_endpoints.json").read_text())
    value = dict(entries["entries"][0]["value"])
    for k in ("ifindex", "router"):
        value.pop(k, None)
    return {**value, "workload": 0}


def add_classes(
    out: Path,
    namespaces: Mapping[str, Sequence[str]],
    classes: Sequence[dict[str, Any]],
    cidrs: Mapping[str, str] = SHOP_CIDRS,
) -> None:
    """Write classes.json and the nodes' podCIDR/router into `out`, and its lock again."""
    changed = {classes_file.CLASSES_FILE: classes_file.dump(dict(namespaces), list(classes))}
    for node, cidr in cidrs.items():
        rel = f"nodes/{node}/node.json"
        doc = json.loads((out / rel).read_text())
        first = cidr.split("/")[0].rsplit(".", 1)
        doc |= {"podCIDR": cidr, "router": f"{first[0]}.{int(first[1]) + 1}"}
        changed[rel] = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
    lock = json.loads((out / LOCK_NAME).read_text())
    for rel, data in changed.items():
        (out / rel).write_bytes(data)
        lock["artifacts"][rel] = hashlib.sha256(data).hexdigest()
    lock["artifacts"] = dict(sorted(lock["artifacts"].items()))
    (out / LOCK_NAME).write_text(json.dumps(lock, indent=2) + "\n")
