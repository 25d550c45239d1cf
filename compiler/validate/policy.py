"""NetworkPolicies: metadata, selectors, policyTypes, peers (ipBlock) and ports.

As in networking.k8s.io/v1, `spec`, `spec.podSelector` and `metadata.namespace` are optional. A
policy without a namespace is in the spec's default namespace (`spec.defaultNamespace`, else
`default`), as `kubectl apply -n NAMESPACE` places it; that namespace must then be declared.
"""

from __future__ import annotations

from typing import Any

from netcc.diagnostics import join_key, join_path, show
from netcc.model.types import DEFAULT_NAMESPACE
from netcc.validate.access import entries, integer, items, mapping, quote, text
from netcc.validate.addresses import parse_cidr
from netcc.validate.context import Context
from netcc.validate.k8s_names import describe, dns1123_label, dns1123_subdomain, port_name
from netcc.validate.labels import check_annotations, check_labels, check_selector

DIRECTIONS = (("ingress", "from"), ("egress", "to"))
SELECTORS = ("podSelector", "namespaceSelector")


def check_policies(ctx: Context, policies: Any, default_namespace: Any = None) -> None:
    """`default_namespace`: the spec's `defaultNamespace` as written (None when absent)."""
    names: dict[tuple[str, str], str] = {}
    default = _check_default_namespace(ctx, default_namespace)
    for path, policy in entries(policies, "spec.policies"):
        _check_metadata(ctx, mapping(policy.get("metadata")), path, names, default)
        spec_path = join_key(path, "spec")
        spec = mapping(policy.get("spec"))
        check_selector(ctx, spec.get("podSelector"), join_key(spec_path, "podSelector"))
        _check_policy_types(ctx, spec.get("policyTypes"), join_key(spec_path, "policyTypes"))
        for direction, peers_key in DIRECTIONS:
            for rule_path, rule in entries(spec.get(direction), join_key(spec_path, direction)):
                for peer_path, peer in entries(rule.get(peers_key), join_key(rule_path, peers_key)):
                    _check_peer(ctx, peer, peer_path)
                for port_path, port in entries(rule.get("ports"), join_key(rule_path, "ports")):
                    _check_port(ctx, port, port_path)


def _check_default_namespace(ctx: Context, value: Any) -> tuple[str, bool] | None:
    """(the default namespace, whether the spec states it); None when it is not a valid name
    (reported here, and then not again for each policy using it)."""
    if value is None:
        return DEFAULT_NAMESPACE, False
    name = text(value)
    if name is None:  # the schema reports the type
        return None
    if problems := dns1123_label(name):
        ctx.error("spec.defaultNamespace", describe("namespace name", name, problems))
        return None
    return name, True


def _check_metadata(
    ctx: Context,
    meta: dict[str, Any],
    path: str,
    names: dict[tuple[str, str], str],
    default: tuple[str, bool] | None,
) -> None:
    meta_path = join_key(path, "metadata")
    name, namespace = text(meta.get("name")), text(meta.get("namespace"))
    # Both reach OUT/k8s as written: the API server must accept them.
    check_labels(ctx, meta.get("labels"), join_key(meta_path, "labels"))
    check_annotations(ctx, meta.get("annotations"), join_key(meta_path, "annotations"))
    if "namespace" in meta:
        ctx.check_reference(
            "namespace", namespace, ctx.namespaces, join_key(meta_path, "namespace")
        )
    elif default is not None:
        namespace = default[0]
        _check_default_reference(ctx, namespace, stated=default[1], path=meta_path)
    if name is None:
        return
    name_path = join_key(meta_path, "name")
    if problems := dns1123_subdomain(name):
        ctx.error(name_path, describe("policy name", name, problems))
    if namespace is not None:
        if (namespace, name) in names:
            first = names[namespace, name]
            message = f"policy {show(namespace)}/{show(name)} is already declared by {first}"
            ctx.error(name_path, message)
        names.setdefault((namespace, name), path)


def _check_default_reference(ctx: Context, namespace: str, *, stated: bool, path: str) -> None:
    """A policy without metadata.namespace is in the default namespace, which must exist."""
    if ctx.namespaces is None or namespace in ctx.namespaces:
        return
    if stated:
        ctx.error(
            path,
            f"the policy names no namespace, and spec.defaultNamespace {quote(namespace)} "
            "is not declared in spec.namespaces",
        )
    else:
        ctx.error(
            path,
            f"the policy names no namespace, and the default namespace {quote(namespace)} is "
            "not declared in spec.namespaces (declare it, set spec.defaultNamespace, or give "
            "the policy a metadata.namespace)",
        )


def _check_policy_types(ctx: Context, types: Any, path: str) -> None:
    seen: set[str] = set()
    for i, value in enumerate(items(types)):
        if isinstance(value, str) and value in seen:
            ctx.error(join_path(path, i), f"duplicate policyType {quote(value)}")
        seen.add(value if isinstance(value, str) else "")


def _check_peer(ctx: Context, peer: dict[str, Any], path: str) -> None:
    if not peer:
        ctx.error(path, "a peer must set at least one of podSelector, namespaceSelector or ipBlock")
        return
    for key in SELECTORS:
        if key in peer:
            check_selector(ctx, peer[key], join_key(path, key))
    if "ipBlock" not in peer:
        return
    block_path = join_key(path, "ipBlock")
    if any(key in peer for key in SELECTORS):
        ctx.error(block_path, "ipBlock cannot be combined with podSelector or namespaceSelector")
    _check_ip_block(ctx, mapping(peer["ipBlock"]), block_path)


def _check_ip_block(ctx: Context, block: dict[str, Any], path: str) -> None:
    cidr_text = text(block.get("cidr"))
    if cidr_text is None:
        return
    cidr, problem = parse_cidr(cidr_text)
    if problem:
        ctx.error(join_key(path, "cidr"), problem)
    for i, value in enumerate(items(block.get("except"))):
        if not isinstance(value, str):
            continue
        except_path = join_path(path, "except", i)
        excluded, problem = parse_cidr(value)
        if problem or excluded is None:
            ctx.error(except_path, problem or "invalid CIDR")
        elif cidr is None:
            continue
        elif excluded.version != cidr.version:
            ctx.error(
                except_path,
                f"except {excluded} is IPv{excluded.version} but cidr {cidr} is IPv{cidr.version}",
            )
        elif excluded == cidr:
            ctx.error(
                except_path,
                f"except {excluded} must be strictly inside cidr {cidr}, not equal to it",
            )
        elif not excluded.subnet_of(cidr):  # type: ignore[arg-type]
            ctx.error(except_path, f"except {excluded} is not inside cidr {cidr}")


def _check_port(ctx: Context, port: dict[str, Any], path: str) -> None:
    value = port.get("port")
    name = text(value)
    if name is not None and (problems := port_name(name)):
        ctx.error(join_key(path, "port"), describe("named port", name, problems))
    if "endPort" not in port:
        return
    end_path = join_key(path, "endPort")
    number, end = integer(value), integer(port.get("endPort"))
    if "port" not in port or name is not None:
        ctx.error(end_path, "endPort requires a numeric port")
    elif number is not None and end is not None and end < number:
        ctx.error(end_path, f"endPort {end} is less than port {number}")
