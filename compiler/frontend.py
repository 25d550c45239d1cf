"""The compiler front end: YAML text -> validated, typed model (`netcc.model.types.Cluster`).

load (YAML, positions kept) -> validate (schema, then semantic checks) -> build the model ->
check what only the model tells (workload classes: classes no selector tells apart, blocks that
do not fit the nodes' podCIDRs). Every stage is a pure function; any problem comes out as one
SpecError listing all errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netcc.contract.text import escape
from netcc.diagnostics import Diagnostic, SourceMap, SpecError
from netcc.load.document import decode, load_yaml
from netcc.model.build import build_cluster
from netcc.model.types import Cluster
from netcc.plan.blocks import LayoutError, layout
from netcc.resolve.classes import indistinguishable, keys_that_matter
from netcc.sources.bundle import Bundle, source_entries
from netcc.sources.merge import merge, summary
from netcc.validate import validate

INTERNAL_ERROR = "internal compiler error"


@dataclass(frozen=True)
class Parsed:
    """A valid spec: the model, where each spec path came from, and the YAML document itself
    with its sources' entries merged in (the Kubernetes manifests copy the NetworkPolicies
    from it as written); notes about the sources, and a one-line summary of them."""

    cluster: Cluster
    sources: SourceMap
    document: dict[str, Any]
    notes: tuple[Diagnostic, ...] = ()
    summary: str = ""


def parse_spec(
    text: str | bytes, filename: str, bundle: Bundle | None = None
) -> tuple[Cluster, SourceMap]:
    """Parse and validate a ClusterNetwork spec (with the manifests its `spec.sources` name,
    read into `bundle`); raise SpecError (only) when it is invalid."""
    parsed = parse_document(text, filename, bundle)
    return parsed.cluster, parsed.sources


MAX_FOLDS = 8  # rounds of folding the sources' classes that no selector tells apart


def parse_document(text: str | bytes, filename: str, bundle: Bundle | None = None) -> Parsed:
    """`parse_spec`, keeping the document: the compile parses the YAML once."""
    try:
        folded: dict[str, str] = {}
        for _ in range(MAX_FOLDS):
            document, source_map = load_yaml(text, filename)
            merged = merge(document, source_map, bundle, folded)
            document = merged.document
            diagnostics = validate(document, source_map, decode(text))
            if diagnostics:
                raise SpecError(diagnostics, filename)
            cluster = build_cluster(document)  # type: ignore[arg-type]
            # Two pod templates of the sources that no selector tells apart: one class.
            more = {}
            for a, b in indistinguishable(cluster):
                if b.path in merged.from_sources:
                    more[b.key] = a.key
                elif a.path in merged.from_sources:
                    more[a.key] = b.key
            if more:
                folded.update(more)
                continue
            problems = class_problems(cluster)
            if problems:
                diagnostics = [source_map.diagnostic(path, msg) for msg, path in problems]
                raise SpecError(diagnostics, filename)
            return Parsed(
                cluster,
                source_map,
                document,
                tuple(merged.notes),
                summary(merged) if source_entries(document) else "",
            )
        raise SpecError([Diagnostic("the sources' classes could not be told apart")], filename)
    except SpecError:
        raise
    except RecursionError:
        raise SpecError([Diagnostic("document is nested too deeply")], filename) from None
    except Exception as e:  # a bug in netcc: still a diagnostic, never a traceback
        message = f"{INTERNAL_ERROR} ({type(e).__name__}: {e}); please report this"
        raise SpecError([Diagnostic(message)], filename) from None


def class_problems(cluster: Cluster) -> list[tuple[str, str]]:
    """(message, spec path) of every problem of the spec's workload classes: two classes of a
    namespace that agree on every key that matters, and blocks that do not fit."""
    problems = [
        (
            f"workload classes {escape(a.key)} and {escape(b.key)} agree on every label key "
            f"that matters in namespace {escape(b.namespace)} ({_keys(cluster, b.namespace)}), "
            "so no pod could be told to belong to one or the other; give one of them a label "
            "that the other lacks or has with another value",
            b.path,
        )
        for a, b in indistinguishable(cluster)
    ]
    if not problems:
        try:
            layout(cluster)
        except LayoutError as e:
            problems += e.problems
    return problems


def _keys(cluster: Cluster, namespace: str) -> str:
    keys = keys_that_matter(cluster).get(namespace, [])
    return "keys " + ", ".join(escape(k) for k in keys) if keys else "no key matters"
