"""The contract between the compiler and the loader: what OUT holds and how to read it.

The compiler (`netcc`) and the loader (`netcc.loader`) both depend on this package and never on
each other's internals; it depends on neither. One module per concern:

- `maps`: the byte layout of every map key and value, and the map definitions;
- `constants`: every flag and constant C and Python share (directions, flag bits, scopes,
  conntrack lifetimes, the nodePort range, NodePort source ports, reserved identities);
- `capacity`: the capacity registry, every size constant with its doc line and hard limit;
- `verdicts`: reserved verdicts, rule numbering and `verdicts.json`;
- `programs`: the programs of `bpf/datapath.o` and the hook each one runs on;
- `layoutfile`: `bpf/layout.json`, written from `maps` and packing entries for the loader
  (every field given: a missing one is refused, never packed as zero);
- `entries`: typed map entries, a record per struct of `maps`, every value checked against its
  encoding (the compiler's plan is made of them);
- `mapfile`: the map files: `maps/MAP.json` (the entries most nodes hold, shared) and
  `nodes/NODE/maps/MAP.json` (a node's overlay), and `node_view`, a node's entries of a map;
- `tunnel`: `nodes/NODE/wireguard.json`, a node's WireGuard tunnel plan, and its value checks;
- `wgkey`: WireGuard keys: their text format and public keys (the `cryptography` package);
- `ipsec`: `nodes/NODE/ipsec.json`, a node's IPsec (XFRM) plan, its value checks, SPIs and MTU;
- `ipseckey`: IPsec cluster keys: their file, fingerprint, and each SA's key (HKDF);
- `ipsecrollout`: whether a change of IPsec keys is safe to roll out, and the next step;
- `lock`: `netcc.lock.json`: made, parsed, and a directory verified against it;
- `files`: reading inside OUT safely (no symlink followed, no FIFO opened, bounded);
- `text`: one-line text for messages.

The C side is rendered from these modules (`netcc.emit.bpf`: `maps.h`, `config.h`,
`verdicts.h`, `services.h`, `datapath.c`), so no hand-written header copies a value.
The shared values (maps, constants, capacities, verdicts, programs, the layout document) are
also importable from the package itself, as `from netcc import contract; contract.DIR_INGRESS`.
"""

from netcc.contract.capacity import CAPACITIES, Capacity
from netcc.contract.constants import (
    CT_F_HAIRPIN,
    CT_F_SERVICE,
    CT_FLAGS,
    CT_LIFETIMES,
    DIR_EGRESS,
    DIR_INGRESS,
    ENDPOINT_FLAGS,
    IDENTITY_HOST,
    IDENTITY_MIN_LABELS,
    IDENTITY_REMOTE_NODE,
    IDENTITY_WORLD,
    IPCACHE_FLAGS,
    LB_FLAGS,
    LB_NODE_PORT_MAX,
    LB_NODE_PORT_MIN,
    LB_SCOPE_CLUSTER_IP,
    LB_SCOPE_NODEPORT,
    LB_SCOPE_NODEPORT_POD,
    NAT_PORT_MAX,
    NAT_PORT_MIN,
    NAT_PORT_PROBES,
    PEER_ANY,
    POLICY_PREFIX_ALL_PORTS,
    POLICY_PREFIX_ALL_PROTOCOLS,
    POLICY_PREFIX_FULL,
)
from netcc.contract.layoutfile import Layout, LayoutError, layout_document
from netcc.contract.maps import MAPS, Field, MapDef, Struct, maps_for
from netcc.contract.programs import PROGRAMS, Program
from netcc.contract.verdicts import FIRST_RULE_VERDICT, RESERVED_VERDICTS, Verdict, VerdictEntry

__all__ = [
    "CAPACITIES",
    "CT_FLAGS",
    "CT_F_HAIRPIN",
    "CT_F_SERVICE",
    "CT_LIFETIMES",
    "DIR_EGRESS",
    "DIR_INGRESS",
    "ENDPOINT_FLAGS",
    "FIRST_RULE_VERDICT",
    "IDENTITY_HOST",
    "IDENTITY_MIN_LABELS",
    "IDENTITY_REMOTE_NODE",
    "IDENTITY_WORLD",
    "IPCACHE_FLAGS",
    "LB_FLAGS",
    "LB_NODE_PORT_MAX",
    "LB_NODE_PORT_MIN",
    "LB_SCOPE_CLUSTER_IP",
    "LB_SCOPE_NODEPORT",
    "LB_SCOPE_NODEPORT_POD",
    "MAPS",
    "NAT_PORT_MAX",
    "NAT_PORT_MIN",
    "NAT_PORT_PROBES",
    "PEER_ANY",
    "POLICY_PREFIX_ALL_PORTS",
    "POLICY_PREFIX_ALL_PROTOCOLS",
    "POLICY_PREFIX_FULL",
    "PROGRAMS",
    "RESERVED_VERDICTS",
    "Capacity",
    "Field",
    "Layout",
    "LayoutError",
    "MapDef",
    "Program",
    "Struct",
    "Verdict",
    "VerdictEntry",
    "layout_document",
    "maps_for",
]
