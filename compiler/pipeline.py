"""The compile pipeline: spec bytes in, artifact tree out. Pure except for clang's cache."""

from __future__ import annotations

from netcc.cache import load_tree, store_tree, tree_key


def compile_spec(spec: bytes, filename: str) -> dict[str, bytes]:
    """The whole `OUT` tree for a spec. Raises SpecError (bad input) or BuildError (clang)."""
    key = tree_key(spec)
    cached = load_tree(key)
    if cached is not None:
        return cached
    tree = _compile(spec, filename)
    store_tree(key, tree)
    return tree


def _compile(spec: bytes, filename: str) -> dict[str, bytes]:
    # Imported here so that a cache hit never pays for the front end and templates.
    from netcc import __version__
    from netcc.build import clang_version, compile_objects
    from netcc.diagnostics import Diagnostic, SpecError
    from netcc.emit import render_bpf, render_data
    from netcc.frontend import parse_spec
    from netcc.k8s import render_k8s
    from netcc.lock import LOCK_NAME, SPEC_IN_OUT, make_lock
    from netcc.plan import CapacityError, plan
    from netcc.tunnels import render_tunnels

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
