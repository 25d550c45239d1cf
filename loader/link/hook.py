"""A hook: one attach point of the datapath, whichever kind of attachment holds it.

Each pod's host-side interface gets two hooks: `ingress` (packets the pod sends) runs
`netcc_from_container`, `egress` (packets delivered to it) runs `netcc_to_container`; the
node's uplink the two NodePort programs (`netcc.contract.programs` names them all).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from netcc.contract.programs import POD, PROGRAM_FOR, UPLINK, UPLINK_PROGRAM_FOR

HookKey = tuple[int, str]  # (ifindex, direction): one hook per interface and direction


class Mode(StrEnum):
    """How netcc holds its hooks (the `mode` of state, status and results)."""

    TCX = "tcx"  # a pinned BPF link per hook (Linux 6.6+)
    TC = "tc"  # a cls_bpf filter on the interface's clsact qdisc

    @property
    def needs_clsact(self) -> bool:
        """Whether the interface needs a clsact qdisc before a hook can be attached."""
        return self is Mode.TC

    @property
    def pins_links(self) -> bool:
        """Whether each hook is held by a link pinned under the pin root."""
        return self is Mode.TCX


@dataclass(frozen=True)
class Hook:
    """One attach point: an interface's tc ingress or egress, in tcx or tc mode."""

    ifindex: int
    ifname: str
    direction: str  # netcc.contract.programs INGRESS | EGRESS
    mode: Mode
    link_pin: str | None = None  # tcx: where the link is pinned
    role: str = POD  # POD: a pod's veth; UPLINK: the node's uplink (NodePort)

    @property
    def program(self) -> str:
        """The name of the program this hook runs."""
        return (UPLINK_PROGRAM_FOR if self.role == UPLINK else PROGRAM_FOR)[self.direction]

    def key(self) -> HookKey:
        return (self.ifindex, self.direction)

    def to_json(self) -> dict[str, Any]:
        return {
            "ifindex": self.ifindex,
            "ifname": self.ifname,
            "direction": self.direction,
            "mode": self.mode.value,
            "link_pin": self.link_pin,
            "role": self.role,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Hook:
        return cls(
            ifindex=doc["ifindex"],
            ifname=doc["ifname"],
            direction=doc["direction"],
            mode=Mode(doc["mode"]),
            link_pin=doc.get("link_pin"),
            role=doc.get("role", POD),
        )


@dataclass(frozen=True)
class HookRuntime:
    """What runs on a hook through netcc's link or filter now: the program's id (None:
    nothing does, as with no pin, a defunct link or no filter) and the tcx link's id."""

    prog_id: int | None
    link_id: int | None = None
