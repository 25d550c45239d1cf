"""Binary layout of every datapath map, and the table of verdicts: one source for C and Python.

The C structs in the generated `maps.h` and `verdicts.h`, and the `layout.json` the loader
uses to pack map entries, are all rendered from the definitions below. Nothing else spells out a
field offset, so the compiler, the loader and the kernel can never disagree.
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
    kind: str  # hash | lru_hash | lpm_trie | array | percpu_array
    key: Struct | None  # None: __u32 index (arrays)
    value: Struct
    capacity: str  # name of the capacity constant in config.h
    doc: str

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
        Field("pad", "u16"),
        Field(
            "nat_addr",
            "ipv4",
            "service flow: replies come from this VIP (CT_F_SERVICE: the backend)",
        ),
        Field("nat_port", "be16", "and this port"),
        Field("pad2", "u16"),
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
        Field("pad", "u16"),
    ),
)
LB_MEMBER_KEY = Struct(
    "lb_member_key",
    "A backend (address and target port) of a Maglev row.",
    (Field("row", "u32"), Field("ip", "ipv4"), Field("port", "be16"), Field("pad", "u16")),
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
        "netcc_policy_exact",
        "hash",
        POLICY_EXACT_KEY,
        POLICY_ENTRY,
        "NETCC_MAX_POLICY_EXACT",
        "Allowed (profile, peer, direction, protocol, port) tuples: single ports.",
    ),
    MapDef(
        "netcc_policy",
        "lpm_trie",
        POLICY_KEY,
        POLICY_ENTRY,
        "NETCC_MAX_POLICY",
        "Allowed (profile, peer, direction, protocol, port range) tuples: ranges and wildcards.",
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
        "netcc_stats",
        "percpu_array",
        None,
        VERDICT_STATS,
        "NETCC_MAX_VERDICTS",
        "Per-verdict packet and byte counters, indexed by verdict number.",
    ),
)

# Constants shared by C and Python.
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
    "CT_F_SERVICE": 16,
    "CT_F_HAIRPIN": 32,  # the pod reached itself through a service, seen from the router address
}
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
POLICY_PREFIX_FULL = 8 * (POLICY_KEY.size - 4)  # all of profile, peer, dir, proto, port
POLICY_PREFIX_ALL_PROTOCOLS = POLICY_PREFIX_FULL - 24  # stops before proto: every protocol
POLICY_PREFIX_ALL_PORTS = POLICY_PREFIX_FULL - 16  # stops before port: every port of proto

# Reserved identities (Cilium's numbers); identities from labels start at IDENTITY_MIN_LABELS.
IDENTITY_HOST = 1
IDENTITY_WORLD = 2
IDENTITY_REMOTE_NODE = 6
IDENTITY_MIN_LABELS = 256


@dataclass(frozen=True)
class Verdict:
    number: int
    name: str
    action: str  # allow | drop
    doc: str


# Verdicts that no rule decides. Rule verdicts are numbered from FIRST_RULE_VERDICT.
RESERVED_VERDICTS: tuple[Verdict, ...] = (
    Verdict(1, "ALLOW_UNISOLATED_INGRESS", "allow", "no policy selects the pod for ingress"),
    Verdict(2, "ALLOW_UNISOLATED_EGRESS", "allow", "no policy selects the pod for egress"),
    Verdict(3, "ALLOW_FROM_HOST", "allow", "traffic from the pod's own node is always allowed"),
    Verdict(4, "ALLOW_SELF", "allow", "a pod can always reach itself"),
    Verdict(5, "ALLOW_RELATED", "allow", "ICMP error about a tracked, allowed connection"),
    Verdict(6, "ALLOW_NON_IP", "allow", "not IP (ARP and other link traffic)"),
    Verdict(7, "ALLOW_NODEPORT", "allow", "NodePort flow translated at the node's uplink"),
    Verdict(16, "DROP_MALFORMED", "drop", "truncated or malformed IPv4 or L4 header"),
    Verdict(17, "DROP_SPOOFED", "drop", "source address is not the sending pod's"),
    Verdict(18, "DROP_UNKNOWN_ENDPOINT", "drop", "address is not a pod of this node"),
    Verdict(
        19, "DROP_FRAGMENT", "drop", "fragment whose first fragment was not seen; ports unknown"
    ),
    Verdict(20, "DROP_IPV6", "drop", "IPv6 other than neighbour discovery (IPv4-only cluster)"),
    Verdict(21, "DROP_NO_BACKEND", "drop", "service port without a backend (kube-proxy: REJECT)"),
    Verdict(22, "DROP_SERVICE_HAIRPIN", "drop", "hairpin without a router address to masquerade"),
    Verdict(23, "DROP_NODEPORT_NO_PORT", "drop", "NodePort: every probed source port is in use"),
)
FIRST_RULE_VERDICT = 32


def maps_for(maglev_size: int) -> tuple[MapDef, ...]:
    """MAPS with the Maglev row sized for a table of `maglev_size` slots."""
    row = lb_row(maglev_size)
    return tuple(
        MapDef(m.name, m.kind, m.key, row, m.capacity, m.doc) if m.value.name == "lb_row" else m
        for m in MAPS
    )


def layout_document(capacities: dict[str, int]) -> dict:
    """The `layout.json` document: structs with offsets, and maps with their sizes."""
    structs = {}
    all_maps = maps_for(capacities.get("NETCC_LB_MAGLEV_SIZE", DEFAULT_MAGLEV_SIZE))
    for m in all_maps:
        for s in (m.key, m.value):
            if s is not None:
                structs[s.name] = {
                    "size": s.size,
                    "fields": [
                        {"name": f.name, "offset": off, "size": f.size, "encoding": f.encoding}
                        | ({"count": f.count} if f.count > 1 and f.encoding != "pad8" else {})
                        for f, off in s.offsets()
                    ],
                }
    maps = {
        m.name: {
            "type": m.kind,
            "key": m.key.name if m.key else "u32",
            "value": m.value.name,
            "max_entries": capacities[m.capacity],
        }
        for m in all_maps
    }
    return {"structs": dict(sorted(structs.items())), "maps": maps}
