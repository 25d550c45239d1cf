"""The compiled artifacts as ConfigMaps, and how the loader pod projects them back into files.

What a node's loader gets is exactly `OUT` for that node: `bpf/`, the top-level JSON files,
`nodes/NODE/`, and `netcc.lock.json`. That lock is the node's own: the same format, digests
and versions as OUT's lock, listing only the artifacts the node gets. OUT's lock cannot be
shipped: it lists every node's files and `k8s/` itself (the manifests are artifacts too, and
they contain these locks). A per-node lock keeps verification exact, so the loader's check is
unchanged: every listed file present with its digest, and no other file.

Files are grouped: `common` (shared by all nodes: `bpf/`, the tables, the shared map files
`maps/`) and one group per node (`nodes/NODE/`: its map overlays and its own lock). A group is
packed into ConfigMaps in path order, each with at most BUDGET bytes of encoded payload: text
in `data`, objects (and anything not UTF-8) base64 in `binaryData`. BUDGET keeps far below
the 1 MiB object limit, and also below the 256 KiB annotation limit that client-side
`kubectl apply` hits (it copies the whole object into `last-applied-configuration`). A file
larger than that is cut into `FILE.netcc-part-NNNN` pieces, which the pod concatenates: text
at line ends (each piece text again, in `data`), a file without line ends in base64.

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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from netcc import __version__
from netcc.contract.lock import LOCK_NAME, SPEC_IN_OUT, make_lock, sha256
from netcc.emit.k8s.constants import NAMESPACE, labels

BUDGET = 192 * 1024  # encoded payload bytes per ConfigMap
PART = ".netcc-part-"  # FILE.netcc-part-0000, -0001...: pieces of one large file
COMMON = "common"
NAME_MAX = 253  # a ConfigMap name is a DNS subdomain
KEY_MAX = 253
MIN_BUDGET = 4096
_NOT_KEY = re.compile(r"[^-._a-zA-Z0-9]")
GENERATION_LABEL = "netcc.io/generation"
NODE_ANNOTATION = "netcc.io/node"


_ESCAPED = b'"\\\n'  # what JSON escapes, as two bytes each, in printable ASCII text
_UNESCAPED = bytes(b for b in range(0x20, 0x7F) if b not in _ESCAPED)


def _encoded(data: bytes | memoryview, binary: bool) -> int:
    """Bytes `data` takes in an object: base64, or the text JSON-escaped."""
    if binary:
        return 4 * ((len(data) + 2) // 3)
    rest = bytes(data).translate(None, _UNESCAPED)  # one pass: what is left needs a look
    if not rest.translate(None, _ESCAPED):  # printable ASCII and line ends: counted
        return len(data) + len(rest)
    return len(json.dumps(str(data, "utf-8"))) - 2


@dataclass(frozen=True)
class Piece:
    """One ConfigMap key: a file (or a part of one) and where the pod projects it."""

    key: str
    path: str  # relative to the projected volume
    data: bytes | memoryview  # a part of a large file is a view of it, not a copy
    binary: bool
    encoded: int = -1  # the data's encoded bytes, when known already

    @cached_property
    def size(self) -> int:
        """Bytes it takes in the object: base64, or the JSON-escaped text, plus the key."""
        encoded = self.encoded if self.encoded >= 0 else _encoded(self.data, self.binary)
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
    configmaps: Mapping[str, dict[str, Any]]  # file under k8s/ -> ConfigMap (`ConfigMaps`)
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


def files_by_node(tree: dict[str, bytes], nodes: list[str]) -> dict[str, dict[str, bytes]]:
    """`own_files` of every node in `nodes`, in one pass over the tree (a node name has no
    `/`, so a file's node is the second part of its path)."""
    out: dict[str, dict[str, bytes]] = {node: {} for node in nodes}
    for path, data in tree.items():
        parts = path.split("/", 2)
        if len(parts) == 3 and parts[0] == "nodes" and parts[1] in out:
            out[parts[1]][path] = data
    return out


def node_lock(
    files: dict[str, bytes], spec: bytes, digests: Mapping[str, str] | None = None
) -> bytes:
    """The node's own lock: OUT's format, listing exactly `files` (`digests`: the sha256 of
    some of them, known already)."""
    from netcc.build.clang import clang_version

    return make_lock(files, spec, __version__, clang_version(), digests)


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
        key = _key(path, taken)
        # Encoded, a file takes at least its own length (base64 and JSON escapes only grow
        # it): one that cannot fit is cut without being encoded first.
        if len(data) + len(key) + 8 <= budget:
            whole = Piece(key, f"{prefix}/{path}", data, not _is_text(path, data))
            if whole.size <= budget:
                out.append(whole)
                continue
        taken.discard(key)
        room = budget - KEY_MAX - 64  # for a part's encoded bytes
        binary = not _is_text(path, data)
        cuts = None if binary else _text_cuts(data, room)
        if cuts is None:  # not text, or no line end to cut at
            binary, step = True, room // 4 * 3
            cuts = [
                (start, min(start + step, len(data)), -1) for start in range(0, len(data), step)
            ]
        view = memoryview(data)
        for n, (start, end, encoded) in enumerate(cuts):
            part = f"{path}{PART}{n:04d}"
            out.append(
                Piece(_key(part, taken), f"{prefix}/{part}", view[start:end], binary, encoded)
            )
    return out


def _text_cuts(data: bytes, room: int) -> list[tuple[int, int, int]] | None:
    """(start, end, encoded bytes) of text pieces of `data`, each ending at a line end (the
    last at the end of the file) and taking at most `room` bytes encoded; None where a line
    alone is larger. Pieces are sized by the file's own ratio of escapes, so that most fit
    at the first try."""
    cuts: list[tuple[int, int, int]] = []
    full = max(room * len(data) // max(_encoded(data, False), 1), 1)  # raw bytes in `room`
    start, step = 0, full
    while start < len(data):
        end = len(data) if len(data) - start <= step else data.rfind(b"\n", start, start + step) + 1
        if end <= start:
            return None
        encoded = _encoded(memoryview(data)[start:end], False)
        if encoded > room:  # more escapes here than on average: take less
            step = (end - start) * 7 // 8
            continue
        cuts.append((start, end, encoded))
        start, step = end, full
    return cuts


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
    text = {p.key: str(p.data, "utf-8") for p in b.pieces if not p.binary}
    binary = {p.key: base64.b64encode(p.data).decode() for p in b.pieces if p.binary}
    if text:
        doc["data"] = text
    if binary:
        doc["binaryData"] = binary
    return doc


def pack(
    tree: dict[str, bytes],
    nodes: list[str],
    spec: bytes,
    budget: int = BUDGET,
    digests: Mapping[str, str] | None = None,
) -> Packed:
    """The artifact ConfigMaps of `tree` (OUT without `k8s/` and its lock) for `nodes`;
    `digests`: the sha256 of files of the tree, known already (each file is hashed once)."""
    common = common_files(tree)
    known = digests or {}
    common_digests = {path: known.get(path) or sha256(data) for path, data in common.items()}
    bundles = bundle(None, pieces(COMMON, common, budget), budget)
    by_node = files_by_node(tree, nodes)
    for node in sorted(nodes):
        own = by_node[node]
        own[LOCK_NAME] = node_lock({**common, **own}, spec, {**known, **common_digests})
        bundles += bundle(node, pieces(f"node/{node}", own, budget), budget)
    gen = generation(bundles)
    named, sources = {}, []
    for b in bundles:
        name = configmap_name(gen, b.node, b.index)
        where = COMMON if b.node is None else f"nodes/{b.node}"
        named[f"artifacts/{where}/{b.index}.yaml"] = (b, name)
        items = [{"key": p.key, "path": p.path} for p in b.pieces]
        sources.append({"configMap": {"name": name, "items": items}})
    return Packed(gen, ConfigMaps(named, gen), sources)


class ConfigMaps(Mapping[str, dict[str, Any]]):
    """The artifact ConfigMaps by file under k8s/, each built when it is looked up.

    Together they hold every node's files again (base64 for the large ones), so they are
    not kept: whoever writes them out takes one at a time and lets it go.
    """

    def __init__(self, named: dict[str, tuple[Bundle, str]], gen: str) -> None:
        self._named = named  # file -> (bundle, ConfigMap name)
        self._gen = gen

    def __getitem__(self, path: str) -> dict[str, Any]:
        b, name = self._named[path]
        return _configmap(b, name, self._gen)

    def __iter__(self) -> Iterator[str]:
        return iter(self._named)

    def __len__(self) -> int:
        return len(self._named)
