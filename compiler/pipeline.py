"""The compile pipeline: spec bytes in, artifact tree out. Pure except for clang's cache."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

from netcc.cache import load_tree, store_tree, tree_key


def compile_spec(spec: bytes, filename: str) -> dict[str, bytes]:
    """The whole `OUT` tree for a spec. Raises SpecError (bad input) or BuildError (clang)."""
    key = tree_key(spec)
    cached = load_tree(key)
    if cached is not None:
        return cached
    with _no_cyclic_gc():
        tree = _compile(spec, filename)
    store_tree(key, tree)
    return tree


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


def _compile(spec: bytes, filename: str) -> dict[str, bytes]:
    # Imported here so that a cache hit never pays for the front end and templates.
    from netcc import __version__
    from netcc.build.clang import clang_version, compile_objects
    from netcc.contract.lock import LOCK_NAME, SPEC_IN_OUT, make_lock
    from netcc.diagnostics import Diagnostic, SpecError
    from netcc.emit.bpf import render_bpf, render_data
    from netcc.emit.k8s import render_k8s
    from netcc.emit.tunnels import render_tunnels
    from netcc.frontend import parse_spec
    from netcc.plan.planner import CapacityError, plan

    cluster, sources = parse_spec(spec, filename)
    try:
        p = plan(cluster)
    except CapacityError as e:
        raise SpecError(
            [Diagnostic(msg, path, *sources.locate(path)) for msg, path in e.problems]
        ) from None
    bpf = render_bpf(p)
    tree = {**bpf, **render_data(p)}
    tree.update(compile_objects(bpf, ["bpf/datapath.c"]))
    tree.update(render_tunnels(cluster))  # nodes/NODE/wireguard.json: key file paths only
    tree.update(render_k8s(spec, filename, cluster, tree))
    # The spec itself, so that `netcc review OUT` and `netcc diff OUT1 OUT2` need nothing else.
    # It is user input (public keys and key *file paths* only) and is not shipped to nodes.
    tree[SPEC_IN_OUT] = spec
    tree[LOCK_NAME] = make_lock(tree, spec, __version__, clang_version())
    return tree
