"""Flow events: what the datapath reports about new-flow verdicts, and how it is budgeted.

The datapath writes one `flow_event` record (its layout is `netcc.contract.maps.FLOW_EVENT`,
also in `bpf/layout.json`) into the BPF ring buffer `netcc_events` for:

- `EVENT_NEW`: the first packet of a connection, allowed (the verdict is the rule, or the
  reserved allow, that let it through). A packet a pod sends to a service carries the service
  address and port it was sent to (`svc_addr`, `svc_port`); the addresses are the backend's.
- `EVENT_DROP`: a dropped packet, with the deny verdict or the drop reason.
- `EVENT_NODEPORT`: a NodePort flow translated at the node's uplink (client to backend, with
  the node's address and nodePort in `svc_addr`, `svc_port`).

A packet of a tracked connection (the established path) writes nothing.

Events are budgeted per CPU so that a flood never costs enforcement: a CPU may write
`EVENT_BURST` events at once and `EVENT_RATE` per second after that (a GCRA on a per-CPU
array, `netcc_event_budget`, no atomics). An event over budget, or one the ring buffer has no
room for, is not written and counted (`lost_budget`, `lost_ring`) on that CPU; `sent` counts
those written. The node daemon reads the records and the counters (`netcc observe` reports
the losses as hubble does: `EVENTS LOST`).
"""

from __future__ import annotations

from netcc.contract.constants import Constant

EVENTS_MAP = "netcc_events"
BUDGET_MAP = "netcc_event_budget"

EVENT_NEW = 1
EVENT_DROP = 2
EVENT_NODEPORT = 3
EVENT_KINDS = {EVENT_NEW: "new", EVENT_DROP: "drop", EVENT_NODEPORT: "nodeport"}

# The direction field: DIR_INGRESS / DIR_EGRESS (constants) at a pod's veth, or the uplink.
DIR_UPLINK = 3

EVENT_RATE = 1000  # events per second per CPU, after the burst
EVENT_BURST = 1000  # events a CPU may write at once
NS_PER_SEC = 1_000_000_000

# maps.h: the values of the record's fields.
EVENT_FIELD_VALUES: tuple[Constant, ...] = (
    Constant("EVENT_NEW", EVENT_NEW, "a new connection, allowed"),
    Constant("EVENT_DROP", EVENT_DROP, "a dropped packet"),
    Constant("EVENT_NODEPORT", EVENT_NODEPORT, "a NodePort flow translated"),
    Constant("EVENT_DIR_UPLINK", DIR_UPLINK, "the node's uplink"),
)
# config.h: whether events are written, and the budget (the defaults; the spec may set them).
EVENT_BUDGET_CONSTANTS: tuple[Constant, ...] = (
    Constant("NETCC_FLOW_EVENTS", 1, "1: flow events on (spec.observability.flowEvents)"),
    Constant(
        "NETCC_EVENT_INTERVAL_NS",
        NS_PER_SEC // EVENT_RATE,
        "ns between flow events of a CPU, past its burst",
    ),
    Constant("NETCC_EVENT_BURST", EVENT_BURST, "flow events a CPU may write at once"),
)
