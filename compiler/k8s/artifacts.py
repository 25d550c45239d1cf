"""The compiled artifacts as ConfigMaps, and how the loader pod projects them back into files.

What a node's loader gets is exactly `OUT` for that node: `bpf/`, the top-level JSON files,
`nodes/NODE/`, and `netcc.lock.json`. That lock is the node's own: the same format, digests
and versions as OUT's lock, listing only the artifacts the node gets. OUT's lock cannot be
shipped: it lists every node's files and `k8s/` itself (the manifests are artifacts too, and
they contain these locks). A per-node lock keeps verification exact, so the loader's check is
unchanged: every listed file present with its digest, and no other file.

Files are grouped: `common` (shared by all nodes) and one group per node. A group is packed
into ConfigMaps in path order, each with at most BUDGET bytes of encoded payload: text in
`data`, objects (and anything not UTF-8) base64 in `binaryData`. BUDGET keeps far below
the 1 MiB object limit, and also below the 256 KiB annotation limit that client-side
`kubectl apply` hits (it copies the whole object into `last-applied-configuration`). A file
larger than that is cut into `FILE.netcc-part-NNNN` pieces, which the pod concatenates.

Every ConfigMap is immutable and named after a digest of all the payload (the generation):
new artifacts are new ConfigMaps, the DaemonSet's pod template changes with their names, and
the rollout moves node by node; a pod never sees its files change under it.

In the pod, one projected volume holds every ConfigMap, each key at its `items` path:
`common/<file>` and `node/<NODE>/<file>`. The init container copies `common/` and its own
node's directory into an emptyDir and joins the pieces (see `scripts.py`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from netcc import __version__
from netcc.k8s.constants import NAMESPACE, labels
from netcc.lock import LOCK_NAME, SPEC_IN_OUT, make_lock

BUDGET = 192 * 1024  # encoded payload bytes per ConfigMap
PART = ".netcc-part-"  # FILE.netcc-part-0000, -0001...: pieces of one large file
COMMON = "common"
NAME_MAX = 253  # a ConfigMap name is a DNS subdomain
KEY_MAX = 253
MIN_BUDGET = 4096
_NOT_KEY = re.compile(r"[^-._a-zA-Z0-9]")
GENERATION_LABEL = "netcc.io/generation"
NODE_ANNOTATION = "netcc.io/node"


@dataclass(frozen=True)
class Piece:
    """One ConfigMap key: a file (or a part of one) and where the pod projects it."""

    key: str
    path: str  # relative to the projected volume
    data: bytes
    binary: bool

    @cached_property
    def size(self) -> int:
        """Bytes it takes in the object: base64, or the JSON-escaped text, plus the key."""
        if self.binary:
            encoded = 4 * ((len(self.data) + 2) // 3)
        else:
            encoded = len(json.dumps(self.data.decode())) - 2
        return encoded + len(self.key) + 8


@dataclass
class Bundle:
    """One ConfigMap of a group: the shared files (`node` None) or one node's."""

    node: str | None
    index: int
    pieces: list[Piece] = field(default_factory=list)
    size: int = 0  # of the pieces

    def add(self, piece: Piece) -> None:
        self.pieces.append(piece)
        self.size += piece.size


@dataclass(frozen=True)
class Packed:
    """Every artifact ConfigMap, and the projected volume sources that put them back."""

    generation: str
    configmaps: dict[str, dict[str, Any]]  # file under k8s/ -> ConfigMap
    sources: list[dict[str, Any]]  # projected volume sources, in order


def common_files(tree: dict[str, bytes]) -> dict[str, bytes]:
    """The files every node gets: all of OUT but `nodes/`, `k8s/`, the lock and the spec (which
    only reviewers read)."""
    return {
        p: d
        for p, d in tree.items()
        if p not in (LOCK_NAME, SPEC_IN_OUT) and not p.startswith(("k8s/", "nodes/"))
    }


def own_files(tree: dict[str, bytes], node: str) -> dict[str, bytes]:
    """`nodes/NODE/`: the files only `node` gets."""
    return {p: d for p, d in tree.items() if p.startswith(f"nodes/{node}/")}


def node_lock(files: dict[str, bytes], spec: bytes) -> bytes:
    """The node's own lock: OUT's format, listing exactly `files`."""
    from netcc.build import clang_version

    return make_lock(files, spec, __version__, clang_version())


def _is_text(path: str, data: bytes) -> bool:
    if path.endswith(".o"):
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _key(path: str, taken: set[str]) -> str:
    """A ConfigMap key for `path` ([-._a-zA-Z0-9], unique in its ConfigMap)."""
    key = _NOT_KEY.sub("_", path.replace("/", "."))
    if len(key) > KEY_MAX or key in taken:
        digest = hashlib.sha256(path.encode()).hexdigest()[:16]
        key = f"{digest}.{key[-(KEY_MAX - 17) :]}"
    taken.add(key)
    return key


def pieces(prefix: str, files: dict[str, bytes], budget: int = BUDGET) -> list[Piece]:
    """Every file of a group as pieces projected under `prefix`; large files cut in parts."""
    assert budget >= MIN_BUDGET, f"a ConfigMap budget of {budget} bytes is too small"
    out: list[Piece] = []
    taken: set[str] = set()
    for path in sorted(files):
        data = files[path]
        whole = Piece(_key(path, taken), f"{prefix}/{path}", data, not _is_text(path, data))
        if whole.size <= budget:
            out.append(whole)
            continue
        taken.discard(whole.key)
        step = (budget - KEY_MAX - 64) // 4 * 3
        for n, start in enumerate(range(0, len(data), step)):
            part = f"{path}{PART}{n:04d}"
            out.append(
                Piece(_key(part, taken), f"{prefix}/{part}", data[start : start + step], True)
            )
    return out


def bundle(node: str | None, group: list[Piece], budget: int = BUDGET) -> list[Bundle]:
    """A group's pieces packed in order into ConfigMaps of at most `budget` bytes."""
    bundles = [Bundle(node, 0)]
    for piece in group:
        if bundles[-1].pieces and bundles[-1].size + piece.size > budget:
            bundles.append(Bundle(node, len(bundles)))
        bundles[-1].add(piece)
    return bundles


def generation(bundles: list[Bundle]) -> str:
    """Digest of everything in the ConfigMaps' payload: their names carry it."""
    h = hashlib.sha256()
    for b in bundles:
        for p in b.pieces:
            line = f"{b.node}\0{b.index}\0{p.key}\0{p.path}\0{p.binary}\0"
            h.update(line.encode() + hashlib.sha256(p.data).digest())
    return h.hexdigest()[:10]


def configmap_name(gen: str, node: str | None, index: int) -> str:
    """`netcc-GEN-common-I` or `netcc-GEN-node-NODE-I` (a hash for a very long node name)."""
    if node is None:
        return f"netcc-{gen}-{COMMON}-{index}"
    name = f"netcc-{gen}-node-{node}-{index}"
    if len(name) > NAME_MAX:
        name = f"netcc-{gen}-node-{hashlib.sha256(node.encode()).hexdigest()[:16]}-{index}"
    return name


def _configmap(b: Bundle, name: str, gen: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": NAMESPACE,
        "labels": {**labels("artifacts"), GENERATION_LABEL: gen},
    }
    if b.node is not None:
        metadata["annotations"] = {NODE_ANNOTATION: b.node}
    doc: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}
    doc["immutable"] = True
    text = {p.key: p.data.decode() for p in b.pieces if not p.binary}
    binary = {p.key: base64.b64encode(p.data).decode() for p in b.pieces if p.binary}
    if text:
        doc["data"] = text
    if binary:
        doc["binaryData"] = binary
    return doc


def pack(tree: dict[str, bytes], nodes: list[str], spec: bytes, budget: int = BUDGET) -> Packed:
    """The artifact ConfigMaps of `tree` (OUT without `k8s/` and its lock) for `nodes`."""
    common = common_files(tree)
    bundles = bundle(None, pieces(COMMON, common, budget), budget)
    for node in sorted(nodes):
        own = own_files(tree, node)
        own[LOCK_NAME] = node_lock({**common, **own}, spec)
        bundles += bundle(node, pieces(f"node/{node}", own, budget), budget)
    gen = generation(bundles)
    configmaps, sources = {}, []
    for b in bundles:
        name = configmap_name(gen, b.node, b.index)
        where = COMMON if b.node is None else f"nodes/{b.node}"
        configmaps[f"artifacts/{where}/{b.index}.yaml"] = _configmap(b, name, gen)
        items = [{"key": p.key, "path": p.path} for p in b.pieces]
        sources.append({"configMap": {"name": name, "items": items}})
    return Packed(gen, configmaps, sources)
