"""Every flag and constant that C and Python share: one table, rendered into the C headers.

The datapath gets these as `#define`s that `netcc.emit.bpf` renders from the values below, so
no hand-written header repeats one (a test looks for copies):

- `bpf/maps.h`: the values of map fields (`FIELD_VALUES`): directions, `PEER_ANY`, the policy
  key's full prefix length, and the flag bits and scopes of the map values;
- `bpf/config.h`: the conntrack lifetimes (`CT_LIFETIMES`), beside the capacities;
- `bpf/services.h`: the nodePort range and the source ports of masqueraded NodePort flows
  (`SERVICE_PORTS`), beside the cluster's Maglev rows.

Python reads them here: the planner fills map fields with them, the loader reads conntrack
entries with them (`netcc.loader.migrate`), `netcc.semantics.lb` models the NodePort source
port choice with them. Reserved identities are Python's alone (the datapath sees identities
only as numbers in the maps) and are rendered nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from netcc.contract.maps import POLICY_KEY


@dataclass(frozen=True)
class Constant:
    """A constant as C gets it: `#define NAME VALUE /* doc */`."""

    name: str
    value: int
    doc: str


# --- values of map fields (bpf/maps.h) -------------------------------------------------------

DIR_INGRESS = 1
DIR_EGRESS = 2
PEER_ANY = 0
ENDPOINT_FLAGS = {
    "ENDPOINT_F_INGRESS_ISOLATED": 1,
    "ENDPOINT_F_EGRESS_ISOLATED": 2,
    "ENDPOINT_F_INGRESS_ANY": 4,  # the profile has entries for PEER_ANY on ingress
    "ENDPOINT_F_EGRESS_ANY": 8,
    "ENDPOINT_F_INGRESS_RANGES": 16,  # the profile has netcc_policy (LPM) entries on ingress
    "ENDPOINT_F_EGRESS_RANGES": 32,
}
IPCACHE_FLAGS = {
    "IPCACHE_F_HOST": 1,  # this node (its address or its router address)
    "IPCACHE_F_POD": 2,
}
CT_FLAGS = {
    "CT_F_FIN_LOCAL": 1,
    "CT_F_FIN_REMOTE": 2,
    "CT_F_RST": 4,
    "CT_F_REPLY_SEEN": 8,  # a packet came the other way: TCP ages as established
    "CT_F_SERVICE": 16,  # the original tuple of a pod's service flow; the backend in nat_*
    "CT_F_HAIRPIN": 32,  # the pod reached itself through a service, seen from the router address
}
CT_F_SERVICE = CT_FLAGS["CT_F_SERVICE"]
CT_F_HAIRPIN = CT_FLAGS["CT_F_HAIRPIN"]
LB_FLAGS = {
    "LB_F_AFFINITY": 1,  # sessionAffinity ClientIP
    "LB_F_NODEPORT": 2,  # a NodePort entry (at the uplink)
    "LB_F_LOCAL": 4,  # externalTrafficPolicy Local: the row holds this node's backends only
    "LB_BACKEND_F_LOCAL": 1,  # the backend runs on this node
    "LB_NAT_F_REDIRECT": 1,  # rewritten to leave the way it came: FIB lookup and redirect
}
LB_SCOPE_CLUSTER_IP = 0
LB_SCOPE_NODEPORT = 1
LB_SCOPE_NODEPORT_POD = 2  # a nodePort as pods reach it, through any node's address (vip 0)
LB_SCOPES = {
    "LB_SCOPE_CLUSTER_IP": LB_SCOPE_CLUSTER_IP,
    "LB_SCOPE_NODEPORT": LB_SCOPE_NODEPORT,
    "LB_SCOPE_NODEPORT_POD": LB_SCOPE_NODEPORT_POD,
}
POLICY_PREFIX_FULL = 8 * (POLICY_KEY.size - 4)  # all of profile, peer, dir, proto, port
POLICY_PREFIX_ALL_PROTOCOLS = POLICY_PREFIX_FULL - 24  # stops before proto: every protocol
POLICY_PREFIX_ALL_PORTS = POLICY_PREFIX_FULL - 16  # stops before port: every port of proto

# maps.h: the single values first, then the flags and scopes grouped by prefix, by value.
FIELD_VALUES: tuple[tuple[str, int], ...] = (
    ("DIR_INGRESS", DIR_INGRESS),
    ("DIR_EGRESS", DIR_EGRESS),
    ("PEER_ANY", PEER_ANY),
    ("POLICY_PREFIX_FULL", POLICY_PREFIX_FULL),
    *sorted(
        {**ENDPOINT_FLAGS, **IPCACHE_FLAGS, **CT_FLAGS, **LB_FLAGS, **LB_SCOPES}.items(),
        key=lambda kv: (kv[0].split("_F_")[0], kv[1]),
    ),
)

# Only a datapath with workload classes has these (`bpf/maps.h` of a spec without classes is
# as before them): a node's podCIDR in `netcc_ipcache_cidr`, whose class blocks
# `netcc_class_blocks` holds by offset; the podCIDR's prefix length sits in the entry's flags
# from bit IPCACHE_PODCIDR_SHIFT on (the offset is the address's bits past it).
IPCACHE_F_CLASS_BLOCKS = 4
IPCACHE_PODCIDR_SHIFT = 8
CLASS_FIELD_VALUES: tuple[tuple[str, int], ...] = (
    ("IPCACHE_F_CLASS_BLOCKS", IPCACHE_F_CLASS_BLOCKS),
    ("IPCACHE_PODCIDR_SHIFT", IPCACHE_PODCIDR_SHIFT),
)


def field_values(classes: bool) -> tuple[tuple[str, int], ...]:
    """The values of map fields `bpf/maps.h` defines: with `classes`, those of classes too."""
    return FIELD_VALUES + CLASS_FIELD_VALUES if classes else FIELD_VALUES


# --- conntrack lifetimes (bpf/config.h) ------------------------------------------------------

CT_LIFETIMES = {  # seconds, Cilium's defaults
    "NETCC_CT_SYN_LIFETIME": (60, "TCP connection not yet answered"),
    "NETCC_CT_TCP_LIFETIME": (21600, "established TCP connection, idle"),
    "NETCC_CT_CLOSE_LIFETIME": (10, "TCP connection after RST or FIN both ways"),
    "NETCC_CT_ANY_LIFETIME": (60, "UDP, SCTP, ICMP and other flows, idle"),
}

# --- service ports (bpf/services.h) ----------------------------------------------------------

# The nodePort range, as Kubernetes' default (the spec's schema holds the same bounds).
LB_NODE_PORT_MIN = 30000
LB_NODE_PORT_MAX = 32767
# Source ports of NodePort flows masqueraded to the node's address: above Linux's default
# ephemeral range (ip_local_port_range 32768-60999, the node's own connections) and the
# nodePort range, so no socket of the node and no NodePort uses them.
NAT_PORT_MIN = 61000
NAT_PORT_MAX = 65535
NAT_PORT_PROBES = 8  # a port chosen by hash, then its successors while a live flow holds one

SERVICE_PORTS: tuple[Constant, ...] = (
    Constant("LB_NODE_PORT_MIN", LB_NODE_PORT_MIN, "lowest nodePort"),
    Constant("LB_NODE_PORT_MAX", LB_NODE_PORT_MAX, "highest nodePort"),
    Constant("NAT_PORT_MIN", NAT_PORT_MIN, "lowest source port of a masqueraded NodePort flow"),
    Constant("NAT_PORT_MAX", NAT_PORT_MAX, "highest such source port"),
    Constant("NAT_PORT_PROBES", NAT_PORT_PROBES, "source ports tried for a new NodePort flow"),
)

# --- reserved identities (Python only) -------------------------------------------------------

# Cilium's numbers; identities from labels start at IDENTITY_MIN_LABELS.
IDENTITY_HOST = 1
IDENTITY_WORLD = 2
IDENTITY_REMOTE_NODE = 6
IDENTITY_MIN_LABELS = 256


def c_names() -> dict[str, int]:
    """Every constant C gets from this module, by name (for checks: no copy by hand)."""
    out = dict(FIELD_VALUES) | dict(CLASS_FIELD_VALUES)
    out |= {name: secs for name, (secs, _) in CT_LIFETIMES.items()}
    out |= {c.name: c.value for c in SERVICE_PORTS}
    from netcc.contract import events  # events builds on this module's Constant

    out |= {c.name: c.value for c in (*events.EVENT_FIELD_VALUES, *events.EVENT_BUDGET_CONSTANTS)}
    return out
