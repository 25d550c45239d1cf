"""Port names, as services and workloads give them."""

from __future__ import annotations

from typing import Any

from netcc.diagnostics import join_key
from netcc.validate.access import quote, text
from netcc.validate.context import Context
from netcc.validate.k8s_names import describe, port_name


def check_port_name(
    ctx: Context, port: dict[str, Any], port_path: str, names: dict[str, str]
) -> str | None:
    """The port's name (None: it has none), checked: a valid port name, not one `names`
    (name -> where it was first used) already holds; records it there."""
    name = text(port.get("name"))
    if name is not None:
        name_path = join_key(port_path, "name")
        if problems := port_name(name):
            ctx.error(name_path, describe("port name", name, problems))
        if name in names:
            ctx.error(name_path, f"port name {quote(name)} is already used by {names[name]}")
        names.setdefault(name, port_path)
    return name
