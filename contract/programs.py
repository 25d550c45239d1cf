"""The programs of `bpf/datapath.o`: their names, and the hook each one runs on.

Two programs sit on each pod's host-side interface and two on the node's uplink (the
interface holding its address, on nodes with NodePort services). A tc hook is named from the
interface's point of view: `ingress` sees what arrives at the interface (from a pod's veth:
what the pod sends), `egress` what leaves it (to the pod). `bpf/datapath.c` defines the
programs under these names (rendered from this table), and the loader attaches them by it.
"""

from __future__ import annotations

from dataclasses import dataclass

OBJECT_PATH = "bpf/datapath.o"  # in OUT: the object holding the programs
INGRESS, EGRESS = "ingress", "egress"  # tc hooks
HOOKS = (INGRESS, EGRESS)
POD, UPLINK = "pod", "uplink"  # interfaces


@dataclass(frozen=True)
class Program:
    name: str  # the ELF section's function, the pinned program's file name
    interface: str  # POD | UPLINK
    hook: str  # INGRESS | EGRESS
    doc: str


FROM_CONTAINER = Program(
    "netcc_from_container", POD, INGRESS, "packets sent by a pod: the pod's egress policy"
)
TO_CONTAINER = Program(
    "netcc_to_container", POD, EGRESS, "packets delivered to a pod: the pod's ingress policy"
)
FROM_UPLINK = Program(
    "netcc_from_uplink", UPLINK, INGRESS, "packets arriving at the node's uplink: NodePort"
)
TO_UPLINK = Program(
    "netcc_to_uplink", UPLINK, EGRESS, "packets leaving through the node's uplink: NodePort replies"
)
ALL: tuple[Program, ...] = (FROM_CONTAINER, TO_CONTAINER, FROM_UPLINK, TO_UPLINK)

PROGRAMS = tuple(p.name for p in ALL)  # every program of the object, by name
POD_PROGRAMS = tuple(p.name for p in ALL if p.interface == POD)  # on every node
UPLINK_PROGRAMS = tuple(p.name for p in ALL if p.interface == UPLINK)  # with NodePort services
# The program each hook runs: tc ingress of a pod's veth sees what the pod sends.
PROGRAM_FOR = {p.hook: p.name for p in ALL if p.interface == POD}
UPLINK_PROGRAM_FOR = {p.hook: p.name for p in ALL if p.interface == UPLINK}


def policy_direction(program: str) -> str:
    """Whose policy a pod program enforces: `egress` (the sender's) or `ingress`."""
    return "egress" if program == FROM_CONTAINER.name else "ingress"
