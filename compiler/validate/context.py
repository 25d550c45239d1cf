"""What semantic checks share: the error list and what earlier checks learned about the spec."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Network

from netcc.diagnostics import Diagnostic, SourceMap, quote


@dataclass
class Context:
    """Collects diagnostics; `nodes`/`namespaces` are None when they could not be read reliably,
    so that reference checks stay quiet rather than cascade."""

    source_map: SourceMap
    diagnostics: list[Diagnostic] = field(default_factory=list)
    pod_cidr: IPv4Network | None = None
    service_cidr: IPv4Network | None = None
    nodes: dict[str, IPv4Network | None] | None = None  # name -> podCIDR (None if invalid)
    namespaces: set[str] | None = None

    def error(self, path: str, message: str, *, at_key: bool = False) -> None:
        """Report `message` about the value (or, with `at_key`, the map key) at `path`."""
        self.diagnostics.append(self.source_map.diagnostic(path, message, at_key=at_key))

    def check_reference(
        self,
        kind: str,
        name: str | None,
        known: set[str] | dict | None,
        path: str,
        *,
        at_key: bool = False,
    ) -> bool:
        """Report `name` unless it is in `known`; True when it is known (or unknowable)."""
        if name is None or known is None or name in known:
            return True
        section = "nodes" if kind == "node" else "namespaces"
        self.error(path, f"{kind} {quote(name)} is not declared in spec.{section}", at_key=at_key)
        return False
