"""The capacity registry: every size constant of the datapath, in one table.

Each entry is a `#define` of the generated `bpf/config.h` (with its doc line there) and the
`max_entries` of the maps whose `MapDef.capacity` names it (`layout.json` carries the value to
the loader). Its `kind` says who decides the value:
- `sized`: the planner sizes it to the entries of the maps naming it (the most any node holds,
  a quarter more for room to grow, a power of two of at least `SIZED_FLOOR`) and refuses a
  spec that needs more than `limit`, beyond which maps would not load or would eat the node;
- `fixed`: the same for every cluster, `limit` itself: the LRU tables that hold runtime state
  and the flow cache;
- `chosen`: the plan picks it by its own rule, at most `limit`: the verdict numbers (the
  counter array has exactly one slot per verdict) and the Maglev table size M (a prime:
  `netcc.plan.maglev`).
A capacity with a `feature` exists only in a datapath that has it (`classes`: a spec with
workload classes), so a spec without the feature gets the config.h and maps it had before.
This table is the only list: the planner (`netcc.plan.sizing`) sizes every capacity from it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Capacity:
    name: str  # the C constant, NETCC_MAX_* or NETCC_*
    doc: str  # its comment in config.h
    limit: int  # the most the datapath takes; the value itself when fixed
    kind: str = "sized"  # sized | fixed | chosen
    feature: str = ""  # "" (every datapath) or the feature the capacity belongs to


# In config.h's order.
CAPACITIES: tuple[Capacity, ...] = (
    Capacity("NETCC_MAX_ENDPOINTS", "pods on one node", 1 << 16),
    Capacity("NETCC_MAX_IPCACHE", "pod and node addresses in the cluster", 1 << 20),
    Capacity("NETCC_MAX_CIDRS", "address regions cut by ipBlocks", 1 << 16),
    Capacity("NETCC_MAX_POLICY_EXACT", "single-port policy entries on one node", 1 << 21),
    Capacity("NETCC_MAX_POLICY", "port-range and wildcard policy entries on one node", 1 << 20),
    Capacity("NETCC_MAX_VERDICTS", "verdict numbers", 1 << 20, kind="chosen"),
    Capacity("NETCC_MAX_CT", "tracked connections on one node (LRU)", 1 << 18, kind="fixed"),
    Capacity(
        "NETCC_MAX_FRAGS",
        "fragmented datagrams in flight on one node (LRU)",
        1 << 13,
        kind="fixed",
    ),
    Capacity(
        "NETCC_FLOW_CACHE_SLOTS",
        "per-CPU established-flow cache slots (power of two)",
        1 << 12,  # a power of two: the slot is a masked hash
        kind="fixed",
    ),
    Capacity(
        "NETCC_MAX_LB_SERVICES", "service ports on one node (cluster IPs and NodePorts)", 1 << 20
    ),
    Capacity("NETCC_MAX_LB_BACKENDS", "service backends in the cluster", 1 << 20),
    Capacity("NETCC_MAX_LB_ROWS", "Maglev rows on one node", 1 << 18),
    Capacity("NETCC_MAX_LB_MEMBERS", "backends of the Maglev rows on one node", 1 << 21),
    Capacity("NETCC_LB_MAGLEV_SIZE", "Maglev table size M (prime)", 65521, kind="chosen"),
    Capacity(
        "NETCC_MAX_LB_AFFINITY", "sessionAffinity clients on one node (LRU)", 1 << 16, kind="fixed"
    ),
    Capacity("NETCC_MAX_LB_NAT", "NodePort translations on one node (LRU)", 1 << 16, kind="fixed"),
    Capacity(
        "NETCC_EVENTS_RING_BYTES",
        "flow event ring buffer (bytes, a power of two)",
        1 << 20,  # 1 MiB: about 18,000 events of 56 bytes with their headers
        kind="fixed",
    ),
    Capacity("NETCC_EVENT_BUDGETS", "flow event budget slots (one, per CPU)", 1, kind="fixed"),
    Capacity("NETCC_MAX_CLASS_BLOCKS", "workload classes' blocks", 1 << 16, feature="classes"),
)
BY_NAME = {c.name: c for c in CAPACITIES}
KINDS = ("sized", "fixed", "chosen")
FEATURES = ("classes",)


def capacities_for(features: frozenset[str] | set[str]) -> tuple[Capacity, ...]:
    """The capacities of a datapath with `features`, in config.h's order."""
    return tuple(c for c in CAPACITIES if not c.feature or c.feature in features)


SIZED_FLOOR = 64  # the smallest size of a sized map
