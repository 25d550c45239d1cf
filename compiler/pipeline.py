"""The compile pipeline: spec bytes in, artifact tree out. Pure except for clang's cache."""

from __future__ import annotations

import gc
import json
import pickle
from collections.abc import Iterator
from contextlib import contextmanager

from netcc.cache import load_tree, store_tree, tree_key
from netcc.contract.lock import LOCK_NAME
from netcc.sources.bundle import Bundle


def compile_spec(spec: bytes, filename: str, bundle: Bundle | None = None) -> dict[str, bytes]:
    """The whole `OUT` tree for a spec (and the manifests its `spec.sources` name, read into
    `bundle`). Raises SpecError (bad input) or BuildError (clang)."""
    key = tree_key(spec if bundle is None else spec + b"\0" + bundle.digest().encode())
    cached = load_tree(key)
    if cached is not None:
        return cached
    with _no_cyclic_gc():
        tree = _compile(spec, filename, bundle)
    store_tree(key, tree, json.loads(tree[LOCK_NAME])["artifacts"])  # digests: hashed once
    return tree


def _packed(*objects: object) -> bytes:
    """`objects` pickled, to be loaded again once everything else the front end made is gone.

    The front end makes millions of short-lived objects (YAML events and nodes, positions,
    schema checks) in between the few that live on (the model, the policies' text): what is
    left in the allocator's arenas afterwards is sparse, and no arena holding any of it can
    be given back. Loaded again after the originals are let go, the copy is compact, and
    most of that memory goes back (3,000 workloads: 170 arenas held for 40 MB, down to 65).
    """
    return pickle.dumps(objects, protocol=pickle.HIGHEST_PROTOCOL)


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Run the block without the cyclic garbage collector.

    A compile allocates millions of small objects that live until it ends (the document, the
    model, map entries, manifests) and makes almost no cycles. Each full pass of the
    collector walks all of them and frees next to nothing, and the passes added up to about
    as much CPU as the compile itself (a spec of 5,000 policies: 9.7 s with, 5.0 s without).
    Reference counting still frees everything else as usual; the collector is back on (if
    it was on) when the block ends.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _compile(spec: bytes, filename: str, bundle: Bundle | None = None) -> dict[str, bytes]:
    """The stages in order: load, validate and model (the front end), resolve, plan, emit,
    build. Writing the tree is the caller's (`netcc.write`)."""
    # Imported here so that a cache hit never pays for the front end and templates.
    from netcc import __version__
    from netcc.build.clang import clang_version, compile_objects
    from netcc.contract.lock import SPEC_IN_OUT, make_lock, sha256
    from netcc.diagnostics import SpecError
    from netcc.emit.bpf import render_bpf
    from netcc.emit.ipsec import render_ipsec
    from netcc.emit.k8s import render_k8s
    from netcc.emit.k8s.policies import policies_document
    from netcc.emit.maps import render_data
    from netcc.emit.tunnels import render_tunnels
    from netcc.frontend import parse_document
    from netcc.plan.planner import CapacityError, plan
    from netcc.resolve.resolution import resolve
    from netcc.sources.bundle import SOURCES_IN_OUT, lock_entries

    parsed = parse_document(spec, filename, bundle)  # load, sources, validate, model
    notes = tuple(d.format(filename) for d in parsed.notes)
    summary = parsed.summary
    kept = _packed(parsed.cluster, policies_document(parsed.document))
    del parsed  # and the source map, which only an error needs: it is made again then
    cluster, document = pickle.loads(kept)  # see `_packed`
    del kept
    try:
        p = plan(resolve(cluster))
    except CapacityError as e:
        sources = parse_document(spec, filename, bundle).sources  # made again: only errors need it
        raise SpecError([sources.diagnostic(path, msg) for msg, path in e.problems]) from None
    bpf = render_bpf(p)
    tree = {**bpf, **render_data(p, release=True)}
    del p  # what is left of the plan: the map entries went as their files were rendered
    tree.update(compile_objects(bpf, ["bpf/datapath.c"]))
    tree.update(render_tunnels(cluster))  # nodes/NODE/wireguard.json: key file paths only
    tree.update(render_ipsec(cluster))  # nodes/NODE/ipsec.json: key ids and fingerprints only
    digests = {path: sha256(data) for path, data in tree.items()}  # each file hashed once
    k8s = render_k8s(spec, filename, cluster, tree, document=document, digests=digests)
    tree.update(k8s)
    # The spec itself, so that `netcc review OUT` and `netcc diff OUT1 OUT2` need nothing else.
    # It is user input (public keys and key *file paths* only) and is not shipped to nodes.
    tree[SPEC_IN_OUT] = spec
    if bundle is not None and bundle.files:  # the manifests too, with their digests
        tree[SOURCES_IN_OUT] = bundle.to_json(summary, notes)
    tree[LOCK_NAME] = make_lock(
        tree, spec, __version__, clang_version(), digests, lock_entries(bundle) if bundle else None
    )
    return tree
