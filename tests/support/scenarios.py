"""Conformance scenarios: a base cluster plus policies, and probes with Kubernetes' verdicts."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import yaml

from netcc.frontend import parse_spec
from netcc.model.types import Cluster

ROOT = Path(__file__).resolve().parent.parent / "scenarios"
PROTO = {"TCP": 6, "UDP": 17, "SCTP": 132, "ICMP": 1}


@dataclass(frozen=True)
class Probe:
    src: str
    dst: str
    port: int
    proto: int
    allowed: bool

    def __str__(self) -> str:
        return f"{self.src} -> {self.dst} {self.port}/{self.proto}"


def scenario_names() -> list[str]:
    return sorted(p.stem for p in ROOT.glob("*.yaml") if not p.name.startswith("_"))


def scenario_spec(name: str) -> str:
    """The YAML text of the base cluster with the scenario's policies."""
    base = yaml.safe_load((ROOT / "_base.yaml").read_text())
    scenario = yaml.safe_load((ROOT / f"{name}.yaml").read_text())
    base["spec"]["policies"] = scenario.get("policies") or []
    return yaml.safe_dump(base, sort_keys=False)


def load(name: str) -> tuple[Cluster, list[Probe]]:
    scenario = yaml.safe_load((ROOT / f"{name}.yaml").read_text())
    cluster, _ = parse_spec(scenario_spec(name), f"{name}.yaml")
    probes = []
    for src, dst, port_proto, verdict in scenario["probes"]:
        port, proto = port_proto.split("/")
        probes.append(Probe(src, dst, int(port), PROTO[proto], verdict == "allow"))
    return cluster, probes


def address(cluster: Cluster, who: str) -> IPv4Address:
    """`namespace/pod` -> its first IP; an address stays itself."""
    if "/" in who:
        ns, name = who.split("/")
        return next(w for w in cluster.workloads if w.namespace == ns and w.name == name).ips[0]
    return IPv4Address(who)
