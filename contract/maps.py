"""Map layouts: the byte layout of every datapath map's key and value, and the maps themselves.

One source for C and Python: the structs and map definitions of the generated `bpf/maps.h` and
the `bpf/layout.json` the loader packs entries with (`netcc.contract.layoutfile`) are both
rendered from the definitions below. Nothing else spells out a field offset, so the compiler,
the loader and the kernel cannot disagree. Each map's `capacity` names its entry in the
capacity registry (`netcc.contract.capacity`).
"""

from __future__ import annotations

from dataclasses import dataclass

# Field encodings: host-order integers, network-order integers, IPv4 addresses, padding.
ENCODINGS = {
    "u8": ("__u8", 1),
    "u16": ("__u16", 2),
    "u32": ("__u32", 4),
    "u64": ("__u64", 8),
    "be16": ("__be16", 2),
    "be32": ("__be32", 4),
    "ipv4": ("__be32", 4),
    "pad8": ("__u8", 1),
}


@dataclass(frozen=True)
class Field:
    name: str
    encoding: str
    doc: str = ""
    count: int = 1  # arrays: padding, and the Maglev row's backend slots

    @property
    def ctype(self) -> str:
        return ENCODINGS[self.encoding][0]

    @property
    def size(self) -> int:
        return ENCODINGS[self.encoding][1] * self.count


@dataclass(frozen=True)
class Struct:
    name: str
    doc: str
    fields: tuple[Field, ...]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.fields)

    def offsets(self) -> list[tuple[Field, int]]:
        """Fields with their offsets; layouts are declared without implicit padding."""
        out, off = [], 0
        for f in self.fields:
            align = ENCODINGS[f.encoding][1]
            if off % align:
                raise ValueError(f"{self.name}.{f.name} is misaligned")
            out.append((f, off))
            off += f.size
        if off % max(ENCODINGS[f.encoding][1] for f in self.fields):
            raise ValueError(f"{self.name} needs tail padding")
        return out


@dataclass(frozen=True)
class MapDef:
    name: str
    kind: str  # hash | lru_hash | lpm_trie | array | percpu_array | ringbuf
    key: Struct | None  # None: __u32 index (arrays); a ring buffer has none
    value: Struct  # a ring buffer's: the record it carries (the kernel map has no value size)
    capacity: str  # its entry in netcc.contract.capacity (a constant of config.h)
    doc: str
    # A key field whose entries map files may group: one line for the entries that differ
    # only in it (same other fields, value and note), `"each": {FIELD: [...]}` (mapfile).
    each: str | None = None

    @property
    def bpf_type(self) -> str:
        return "BPF_MAP_TYPE_" + self.kind.upper()


ENDPOINT_KEY = Struct("endpoint_key", "A local pod address.", (Field("ip", "ipv4"),))
ENDPOINT_INFO = Struct(
    "endpoint_info",
    "A pod on this node: who it is and how its traffic is judged.",
    (
        Field("workload", "u32", "cluster-wide workload number, for the self check"),
        Field("profile", "u32", "policy profile: pods judged by the same policy entries"),
        Field("identity", "u32", "security identity of the pod's labels"),
        Field("ifindex", "u32", "host-side veth, 0 until the loader binds it"),
        Field("flags", "u32", "ENDPOINT_F_* bits"),
        Field("ingress_deny", "u32", "verdict counted when ingress is denied"),
        Field("egress_deny", "u32", "verdict counted when egress is denied"),
        Field("router", "ipv4", "the pod's gateway (its node's router address): hairpin source"),
    ),
)
IPCACHE_KEY = Struct("ipcache_key", "An exact address (pods, nodes).", (Field("ip", "ipv4"),))
IPCACHE_LPM_KEY = Struct(
    "ipcache_lpm_key",
    "A CIDR region of the address space outside the pods.",
    (Field("prefixlen", "u32"), Field("ip", "ipv4")),
)
IPCACHE_ENTRY = Struct(
    "ipcache_entry",
    "What the datapath knows about a remote address.",
    (
        Field("identity", "u32", "security identity (reserved or from labels)"),
        Field("peer", "u32", "peer class the policy map is keyed on"),
        Field("workload", "u32", "workload number for pods, 0 otherwise"),
        Field("flags", "u32", "IPCACHE_F_* bits"),
    ),
)
CLASS_BLOCK_KEY = Struct(
    "class_block_key",
    "LPM key: an offset inside a node's podCIDR (the address minus the podCIDR's network "
    "address); a class's block is a prefix of it.",
    (Field("prefixlen", "u32"), Field("offset", "be32", "offset, network order")),
)
POLICY_KEY = Struct(
    "policy_key",
    "LPM key for port ranges and all-port/all-protocol allows; the port is a prefix.",
    (
        Field("prefixlen", "u32"),
        Field("profile", "u32"),
        Field("peer", "u32", "peer class, or PEER_ANY"),
        Field("dir", "u8", "DIR_INGRESS or DIR_EGRESS"),
        Field("proto", "u8", "IP protocol; the entry covers all protocols at prefix 72"),
        Field("port", "be16", "destination port, network order"),
    ),
)
POLICY_EXACT_KEY = Struct(
    "policy_exact_key",
    "Hash key for single-port allows, the common case: one lookup, flat in the table's size.",
    (
        Field("profile", "u32"),
        Field("peer", "u32", "peer class, or PEER_ANY"),
        Field("dir", "u8", "DIR_INGRESS or DIR_EGRESS"),
        Field("proto", "u8"),
        Field("port", "be16", "destination port, network order"),
    ),
)
POLICY_ENTRY = Struct(
    "policy_entry",
    "An allow, and the rule behind it.",
    (Field("verdict", "u32", "verdict number: policy and rule (see verdicts.h)"),),
)
CT_KEY = Struct(
    "ct_key",
    "A connection as seen from a local pod: the same key in both directions.",
    (
        Field("local", "ipv4"),
        Field("remote", "ipv4"),
        Field("lport", "be16"),
        Field("rport", "be16"),
        Field("proto", "u8"),
        Field("pad", "pad8", count=3),
    ),
)
CT_ENTRY = Struct(
    "ct_entry",
    "State of an allowed connection.",
    (
        Field("expires", "u64", "coarse monotonic ns after which the entry is dead"),
        Field("verdict", "u32", "the verdict that allowed the first packet"),
        Field("origin", "u8", "DIR_EGRESS: the pod opened it; DIR_INGRESS: a peer did"),
        Field("flags", "u8", "CT_F_* bits (FIN/RST seen)"),
        Field("pad", "pad8", count=2),
        Field(
            "nat_addr",
            "ipv4",
            "service flow: replies come from this VIP (CT_F_SERVICE: the backend)",
        ),
        Field("nat_port", "be16", "and this port"),
        Field("pad2", "pad8", count=2),
    ),
)
FRAG_KEY = Struct(
    "frag_key",
    "One fragmented IPv4 datagram: addresses, IP identification, protocol.",
    (
        Field("saddr", "ipv4"),
        Field("daddr", "ipv4"),
        Field("id", "be16"),
        Field("proto", "u8"),
        Field("pad", "pad8"),
    ),
)
FRAG_PORTS = Struct(
    "frag_ports",
    "The ports the first fragment carried, for the fragments that follow it.",
    (Field("sport", "be16"), Field("dport", "be16")),
)
FLOW_CACHE_ENTRY = Struct(
    "flow_cache_entry",
    "A per-CPU shortcut to a live conntrack entry, re-validated against it every second.",
    (
        Field("local", "ipv4"),
        Field("remote", "ipv4"),
        Field("lport", "be16"),
        Field("rport", "be16"),
        Field("proto", "u8"),
        Field("dir", "u8", "direction this shortcut is for: replies take the slow path once"),
        Field("gen", "u16", "the slot's generation in netcc_flow_cache_gen when made"),
        Field("ifindex", "u32", "the pod's veth when the entry was made (0: unbound)"),
        Field("verdict", "u32", "the connection's verdict, for the counters"),
        Field("refresh_at", "u64", "jiffies after which conntrack is asked again"),
    ),
)
LB_SERVICE_KEY = Struct(
    "lb_service_key",
    "A service address: a cluster IP and port (scope 0), a node address and nodePort (1), or a "
    "nodePort on any node's address, for pods (2, vip 0).",
    (
        Field("vip", "ipv4"),
        Field("port", "be16"),
        Field("proto", "u8"),
        Field("scope", "u8", "LB_SCOPE_CLUSTER_IP, LB_SCOPE_NODEPORT (uplink) or _POD (vip 0)"),
    ),
)
LB_SERVICE = Struct(
    "lb_service",
    "One service port: its Maglev row and how flows choose a backend.",
    (
        Field("row", "u32", "Maglev row (see services.h)"),
        Field("count", "u32", "backends; 0: packets drop (DROP_NO_BACKEND)"),
        Field("flags", "u32", "LB_F_* bits"),
        Field("timeout", "u32", "sessionAffinity ClientIP timeout, seconds"),
    ),
)
LB_BACKEND_KEY = Struct("lb_backend_key", "A backend number.", (Field("id", "u32"),))
LB_BACKEND = Struct(
    "lb_backend",
    "A backend: pod address and target port.",
    (
        Field("ip", "ipv4"),
        Field("port", "be16"),
        Field("flags", "u8", "LB_BACKEND_F_LOCAL: on this node"),
        Field("pad", "pad8"),
    ),
)
LB_ROW_KEY = Struct("lb_row_key", "A Maglev row number.", (Field("id", "u32"),))
DEFAULT_MAGLEV_SIZE = 251


def lb_row(size: int) -> Struct:
    """The Maglev row value: one backend number per slot (`size` is the table size M)."""
    return Struct(
        "lb_row",
        "A service port's Maglev table: the backend number in each of its slots.",
        (Field("backends", "u32", "backend number per slot", count=size),),
    )


LB_AFFINITY_KEY = Struct(
    "lb_affinity_key",
    "sessionAffinity ClientIP: a service row and a client.",
    (Field("row", "u32"), Field("client", "ipv4")),
)
LB_AFFINITY = Struct(
    "lb_affinity",
    "The backend a client was last sent to, until `expires` (while it is a member of the row).",
    (
        Field("expires", "u64", "coarse monotonic ns"),
        Field("ip", "ipv4"),
        Field("port", "be16"),
        Field("pad", "pad8", count=2),
    ),
)
LB_MEMBER_KEY = Struct(
    "lb_member_key",
    "A backend (address and target port) of a Maglev row.",
    (
        Field("row", "u32"),
        Field("ip", "ipv4"),
        Field("port", "be16"),
        Field("pad", "pad8", count=2),
    ),
)
LB_MEMBER = Struct(
    "lb_member",
    "Present while the backend serves the row's service port.",
    (Field("flags", "u32", "the backend's LB_BACKEND_F_* bits on this node"),),
)
LB_NAT = Struct(
    "lb_nat",
    "NodePort at the uplink: the addresses and ports a packet of this tuple is rewritten to.",
    (
        Field("expires", "u64", "coarse monotonic ns"),
        Field("saddr", "ipv4"),
        Field("daddr", "ipv4"),
        Field("sport", "be16"),
        Field("dport", "be16"),
        Field("flags", "u32", "LB_NAT_F_* bits"),
    ),
)
FLOW_CACHE_GEN = Struct(
    "flow_cache_gen",
    "A flow cache slot's generation, shared by every CPU.",
    (Field("gen", "u32", "bumped when a translated connection takes over the slot's tuples"),),
)
FLOW_EVENT = Struct(
    "flow_event",
    "One flow event in netcc_events (netcc.contract.events): a new-flow verdict, a drop, a "
    "NodePort translation.",
    (
        Field("time_ns", "u64", "CLOCK_MONOTONIC, coarse"),
        Field("verdict", "u32", "the verdict number (verdicts.h)"),
        Field("ifindex", "u32", "the interface the packet was judged on"),
        Field("saddr", "ipv4", "source, as judged (after a service translation)"),
        Field("daddr", "ipv4", "destination, as judged (the backend of a service flow)"),
        Field("sport", "be16"),
        Field("dport", "be16", "destination port (ICMP: 0)"),
        Field("svc_addr", "ipv4", "the service address the packet was sent to (0: none)"),
        Field("svc_port", "be16", "and its port"),
        Field("proto", "u8"),
        Field("dir", "u8", "DIR_INGRESS, DIR_EGRESS, or EVENT_DIR_UPLINK"),
        Field("kind", "u8", "EVENT_NEW, EVENT_DROP or EVENT_NODEPORT"),
        Field("tcp_flags", "u8"),
        Field("pad", "pad8", count=2),
        Field("len", "u32", "the packet's length"),
        Field("pad2", "pad8", count=4),
    ),
)
EVENT_BUDGET = Struct(
    "event_budget",
    "A CPU's flow event budget (a GCRA) and its counters.",
    (
        Field("tat", "u64", "theoretical arrival time of the next event (ns)"),
        Field("sent", "u64", "events written"),
        Field("lost_budget", "u64", "events not written: over the CPU's budget"),
        Field("lost_ring", "u64", "events not written: the ring buffer was full"),
    ),
)
VERDICT_STATS = Struct(
    "verdict_stats",
    "Packets and bytes counted under one verdict.",
    (Field("packets", "u64"), Field("bytes", "u64")),
)

MAPS: tuple[MapDef, ...] = (
    MapDef(
        "netcc_endpoints",
        "hash",
        ENDPOINT_KEY,
        ENDPOINT_INFO,
        "NETCC_MAX_ENDPOINTS",
        "Pods on this node, by address.",
    ),
    MapDef(
        "netcc_ipcache",
        "hash",
        IPCACHE_KEY,
        IPCACHE_ENTRY,
        "NETCC_MAX_IPCACHE",
        "Exact addresses: every pod in the cluster, every node.",
    ),
    MapDef(
        "netcc_ipcache_cidr",
        "lpm_trie",
        IPCACHE_LPM_KEY,
        IPCACHE_ENTRY,
        "NETCC_MAX_CIDRS",
        "Everything else, split into regions by the policies' ipBlocks; 0.0.0.0/0 is world.",
    ),
    MapDef(
        "netcc_class_blocks",
        "lpm_trie",
        CLASS_BLOCK_KEY,
        IPCACHE_ENTRY,
        "NETCC_MAX_CLASS_BLOCKS",
        "Workload classes' blocks by offset in a podCIDR (IPCACHE_F_CLASS_BLOCKS); workload 0.",
    ),
    MapDef(
        "netcc_policy_exact",
        "hash",
        POLICY_EXACT_KEY,
        POLICY_ENTRY,
        "NETCC_MAX_POLICY_EXACT",
        "Allowed (profile, peer, direction, protocol, port) tuples: single ports.",
        each="peer",
    ),
    MapDef(
        "netcc_policy",
        "lpm_trie",
        POLICY_KEY,
        POLICY_ENTRY,
        "NETCC_MAX_POLICY",
        "Allowed (profile, peer, direction, protocol, port range) tuples: ranges and wildcards.",
        each="peer",
    ),
    MapDef(
        "netcc_ct",
        "lru_hash",
        CT_KEY,
        CT_ENTRY,
        "NETCC_MAX_CT",
        "Connection tracking: replies and established packets of allowed connections.",
    ),
    MapDef(
        "netcc_frags",
        "lru_hash",
        FRAG_KEY,
        FRAG_PORTS,
        "NETCC_MAX_FRAGS",
        "Ports of fragmented datagrams, so later fragments are judged like the first.",
    ),
    MapDef(
        "netcc_flow_cache",
        "percpu_array",
        None,
        FLOW_CACHE_ENTRY,
        "NETCC_FLOW_CACHE_SLOTS",
        "Per-CPU direct-mapped cache of established connections in front of netcc_ct.",
    ),
    MapDef(
        "netcc_flow_cache_gen",
        "array",
        None,
        FLOW_CACHE_GEN,
        "NETCC_FLOW_CACHE_SLOTS",
        "Generation of each flow cache slot: a shortcut of another generation is stale.",
    ),
    MapDef(
        "netcc_lb_services",
        "hash",
        LB_SERVICE_KEY,
        LB_SERVICE,
        "NETCC_MAX_LB_SERVICES",
        "Service ports: cluster IPs for pods, this node's NodePorts for the uplink.",
    ),
    MapDef(
        "netcc_lb_backends",
        "hash",
        LB_BACKEND_KEY,
        LB_BACKEND,
        "NETCC_MAX_LB_BACKENDS",
        "Service backends by number.",
    ),
    MapDef(
        "netcc_lb_maglev",
        "hash",
        LB_ROW_KEY,
        lb_row(DEFAULT_MAGLEV_SIZE),
        "NETCC_MAX_LB_ROWS",
        "Maglev tables, one row per service port (and per node for externalTrafficPolicy Local).",
    ),
    MapDef(
        "netcc_lb_members",
        "hash",
        LB_MEMBER_KEY,
        LB_MEMBER,
        "NETCC_MAX_LB_MEMBERS",
        "Each row's backends: an affinity entry counts only while its backend is one of them.",
    ),
    MapDef(
        "netcc_lb_affinity",
        "lru_hash",
        LB_AFFINITY_KEY,
        LB_AFFINITY,
        "NETCC_MAX_LB_AFFINITY",
        "sessionAffinity ClientIP: each client's backend per service port.",
    ),
    MapDef(
        "netcc_lb_nat",
        "lru_hash",
        CT_KEY,
        LB_NAT,
        "NETCC_MAX_LB_NAT",
        "NodePort translations at the uplink, both directions of each flow.",
    ),
    MapDef(
        "netcc_events",
        "ringbuf",
        None,
        FLOW_EVENT,
        "NETCC_EVENTS_RING_BYTES",
        "Flow events for the node daemon (netcc.contract.events).",
    ),
    MapDef(
        "netcc_event_budget",
        "percpu_array",
        None,
        EVENT_BUDGET,
        "NETCC_EVENT_BUDGETS",
        "Each CPU's flow event budget and its sent and lost counters (one slot).",
    ),
    MapDef(
        "netcc_stats",
        "percpu_array",
        None,
        VERDICT_STATS,
        "NETCC_MAX_VERDICTS",
        "Per-verdict packet and byte counters, indexed by verdict number.",
    ),
)


CLASS_MAPS = ("netcc_class_blocks",)  # only in a datapath with workload classes


def maps_for(maglev_size: int, classes: bool = False) -> tuple[MapDef, ...]:
    """MAPS with the Maglev row sized for a table of `maglev_size` slots; the maps of workload
    classes only with `classes`."""
    row = lb_row(maglev_size)
    return tuple(
        MapDef(m.name, m.kind, m.key, row, m.capacity, m.doc) if m.value.name == "lb_row" else m
        for m in MAPS
        if classes or m.name not in CLASS_MAPS
    )


def structs_of(maps: tuple[MapDef, ...]) -> list[Struct]:
    """Every key and value struct of `maps`, once each, in the order the maps use them."""
    out: list[Struct] = []
    for m in maps:
        for s in (m.key, m.value):
            if s is not None and s not in out:
                out.append(s)
    return out
