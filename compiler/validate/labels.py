"""Label maps, annotation maps and label selectors (metav1.LabelSelector), validated as the
API server validates them (apimachinery's ValidateLabels and ValidateAnnotations)."""

from __future__ import annotations

from typing import Any

from netcc.diagnostics import join_key, join_path
from netcc.validate.access import entries, items, mapping, text
from netcc.validate.context import Context
from netcc.validate.k8s_names import describe, label_value, qualified_name

TOTAL_ANNOTATION_SIZE = 256 << 10  # bytes of all keys and values (TotalAnnotationSizeLimitB)
VALUE_OPERATORS = ("In", "NotIn")
NO_VALUE_OPERATORS = ("Exists", "DoesNotExist")


def check_label_key(ctx: Context, key: str, path: str, *, at_key: bool = True) -> None:
    """A label key is a qualified name: an optional DNS-1123 subdomain prefix and '/', then a
    name of at most 63 characters."""
    if problems := qualified_name(key):
        ctx.error(path, describe("label key", key, problems), at_key=at_key)


def check_label_value(ctx: Context, value: Any, path: str) -> None:
    """A label value is empty, or at most 63 alphanumerics, '-', '_' and '.' between
    alphanumerics (a non-string is left to the schema)."""
    if isinstance(value, str) and (problems := label_value(value)):
        ctx.error(path, describe("label value", value, problems))


def check_labels(ctx: Context, labels: Any, path: str) -> None:
    """Keys are qualified names, values label values."""
    for key, value in mapping(labels).items():
        key_path = join_key(path, key)
        check_label_key(ctx, key, key_path)
        check_label_value(ctx, value, key_path)


def check_annotations(ctx: Context, annotations: Any, path: str) -> None:
    """Keys are qualified names once lowercased (as Kubernetes checks them); keys and values
    together hold at most 256 KiB. Values of other types than string are left to the schema."""
    total = 0
    for key, value in mapping(annotations).items():
        if problems := qualified_name(key.lower()):
            ctx.error(join_key(path, key), describe("annotation key", key, problems), at_key=True)
        total += len(key.encode("utf-8", "surrogatepass"))
        if isinstance(value, str):
            total += len(value.encode("utf-8", "surrogatepass"))
    if total > TOTAL_ANNOTATION_SIZE:
        ctx.error(
            path, f"annotations must be no more than {TOTAL_ANNOTATION_SIZE} bytes, got {total}"
        )


def check_selector(ctx: Context, selector: Any, path: str) -> None:
    """matchLabels as labels; matchExpressions with values exactly when the operator needs them."""
    selector = mapping(selector)
    check_labels(ctx, selector.get("matchLabels"), join_key(path, "matchLabels"))
    for expr_path, expr in entries(
        selector.get("matchExpressions"), join_key(path, "matchExpressions")
    ):
        key = text(expr.get("key"))
        if key is not None:
            check_label_key(ctx, key, join_key(expr_path, "key"), at_key=False)
        operator = text(expr.get("operator"))
        values = expr.get("values")
        values_path = join_key(expr_path, "values")
        if operator in VALUE_OPERATORS and not (isinstance(values, list) and values):
            ctx.error(values_path, f"operator {operator} needs a non-empty list of values")
        if operator in NO_VALUE_OPERATORS and isinstance(values, list) and values:
            ctx.error(values_path, f"operator {operator} takes no values")
        for i, value in enumerate(items(values)):
            check_label_value(ctx, value, join_path(values_path, i))
