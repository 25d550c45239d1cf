"""The compiler front end: YAML text -> validated, typed model (`netcc.model.types.Cluster`).

load (YAML, positions kept) -> validate (schema, then semantic checks) -> build the model.
Every stage is a pure function; any problem comes out as one SpecError listing all errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netcc.diagnostics import Diagnostic, SourceMap, SpecError
from netcc.load.document import decode, load_yaml
from netcc.model.build import build_cluster
from netcc.model.types import Cluster
from netcc.validate import validate

INTERNAL_ERROR = "internal compiler error"


@dataclass(frozen=True)
class Parsed:
    """A valid spec: the model, where each spec path came from, and the YAML document itself
    (the Kubernetes manifests copy the spec's NetworkPolicies from it as written)."""

    cluster: Cluster
    sources: SourceMap
    document: dict[str, Any]


def parse_spec(text: str | bytes, filename: str) -> tuple[Cluster, SourceMap]:
    """Parse and validate a ClusterNetwork spec; raise SpecError (only) when it is invalid."""
    parsed = parse_document(text, filename)
    return parsed.cluster, parsed.sources


def parse_document(text: str | bytes, filename: str) -> Parsed:
    """`parse_spec`, keeping the document: the compile parses the YAML once."""
    try:
        document, source_map = load_yaml(text, filename)
        diagnostics = validate(document, source_map, decode(text))
        if diagnostics:
            raise SpecError(diagnostics, filename)
        return Parsed(build_cluster(document), source_map, document)  # type: ignore[arg-type]
    except SpecError:
        raise
    except RecursionError:
        raise SpecError([Diagnostic("document is nested too deeply")], filename) from None
    except Exception as e:  # a bug in netcc: still a diagnostic, never a traceback
        message = f"{INTERNAL_ERROR} ({type(e).__name__}: {e}); please report this"
        raise SpecError([Diagnostic(message)], filename) from None
