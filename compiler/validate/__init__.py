"""Validation: the JSON Schema first, then semantic checks on whatever can be read.

`validate(document, source_map)` returns every diagnostic; an empty list means the document can
be turned into a model.
"""

from __future__ import annotations

from typing import Any

from netcc.diagnostics import Diagnostic, SourceMap
from netcc.validate.access import mapping, text
from netcc.validate.context import Context
from netcc.validate.deploy import check_deploy
from netcc.validate.ipsec import check_ipsec
from netcc.validate.k8s_names import describe, dns1123_subdomain
from netcc.validate.labels import check_annotations, check_labels
from netcc.validate.namespaces import check_namespaces
from netcc.validate.network import check_network
from netcc.validate.policy import check_policies
from netcc.validate.schema import check_schema
from netcc.validate.secrets import check_secrets, check_stray_keys, is_under
from netcc.validate.services import check_services
from netcc.validate.wireguard import check_wireguard
from netcc.validate.workloads import check_workloads

__all__ = ["check_semantics", "validate"]


def check_semantics(document: Any, source_map: SourceMap) -> list[Diagnostic]:
    """Checks the schema cannot express: syntax of names and addresses, references, uniqueness."""
    ctx = Context(source_map)
    root = mapping(document)
    spec = mapping(root.get("spec"))
    metadata = mapping(root.get("metadata"))
    name = text(metadata.get("name"))
    if name is not None and (problems := dns1123_subdomain(name)):
        ctx.error("metadata.name", describe("cluster name", name, problems))
    check_labels(ctx, metadata.get("labels"), "metadata.labels")
    check_annotations(ctx, metadata.get("annotations"), "metadata.annotations")
    check_network(ctx, spec)
    check_namespaces(ctx, spec.get("namespaces"))
    check_workloads(ctx, spec.get("workloads"))
    check_services(ctx, spec.get("services"))
    check_policies(ctx, spec.get("policies"), spec.get("defaultNamespace"))
    check_wireguard(ctx, spec)
    check_ipsec(ctx, spec)
    check_deploy(ctx, spec)
    return ctx.diagnostics


def validate(document: Any, source_map: SourceMap, text: str | None = None) -> list[Diagnostic]:
    """Schema errors, semantic errors and secrets together. `text` is the spec as written
    (for the scan of comments and raw text; decoded values are always scanned).

    Secrets are reported once, by the secrets checks: no other message about them is kept, so
    none can quote them."""
    secrets = Context(source_map)
    secret_paths = check_secrets(secrets, document)
    check_stray_keys(secrets, document, secret_paths, text)
    found = check_schema(document, source_map) + check_semantics(document, source_map)
    kept = [d for d in found if not any(is_under(d.path, p) for p in secret_paths)]
    return secrets.diagnostics + kept
