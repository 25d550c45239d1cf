"""Label maps and label selectors (metav1.LabelSelector)."""

from __future__ import annotations

from typing import Any

from netcc.diagnostics import join_key, join_path
from netcc.validate.access import entries, items, mapping, text
from netcc.validate.context import Context
from netcc.validate.k8s_names import describe, label_value, qualified_name

VALUE_OPERATORS = ("In", "NotIn")
NO_VALUE_OPERATORS = ("Exists", "DoesNotExist")


def check_label_key(ctx: Context, key: str, path: str, *, at_key: bool = True) -> None:
    if problems := qualified_name(key):
        ctx.error(path, describe("label key", key, problems), at_key=at_key)


def check_label_value(ctx: Context, value: Any, path: str) -> None:
    if isinstance(value, str) and (problems := label_value(value)):
        ctx.error(path, describe("label value", value, problems))


def check_labels(ctx: Context, labels: Any, path: str) -> None:
    """Keys are qualified names, values label values."""
    for key, value in mapping(labels).items():
        key_path = join_key(path, key)
        check_label_key(ctx, key, key_path)
        check_label_value(ctx, value, key_path)


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
