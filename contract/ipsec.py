"""`OUT/nodes/NODE/ipsec.json`: one node's IPsec plan (kernel XFRM), its values checked, both ways.

The compiler plans every node's security associations (`netcc.emit.ipsec`) and writes them with
`to_doc`, after `check_plan`; the node daemon reads them back with `from_doc`, which checks them
again. The document names the files the cluster keys are read from and their fingerprints,
never a key: the key of each SA is derived on the node (`netcc.contract.ipseckey`). Example
(node-1 of two nodes, key 1 in use; abridged to one peer):

    {"version": 1, "node": "node-1", "address": "192.168.77.11", "podCIDR": "10.244.1.0/24",
     "clusterPodCIDR": "10.244.0.0/16",
     "proto": "esp", "mode": "tunnel", "reqid": 28259, "priority": 28259,
     "aead": {"name": "rfc4106(gcm(aes))", "keyBits": 128, "saltBits": 32, "icvBits": 128},
     "esn": true, "replayWindow": 1024, "underlayMTU": 1500, "mtu": 1446,
     "acceptPlaintext": false, "removedKeyGraceSeconds": 300, "sendKey": 1,
     "keys": [{"id": 1, "state": "send", "file": "/etc/netcc/ipsec/key-1",
               "fingerprint": "5d0c...32 hex digits"}],
     "peers": [{"node": "node-2", "address": "192.168.77.12", "podCIDR": "10.244.2.0/24",
                "covers": [{"class": "shop/web", "cidr": "10.244.2.64/29"}],
                "states": [{"dir": "out", "key": 1, "spi": "0x01000100",
                            "src": "192.168.77.11", "dst": "192.168.77.12",
                            "selector": {"src": "10.244.1.0/24", "dst": "10.244.2.0/24"}},
                           {"dir": "in", "key": 1, "spi": "0x01000200",
                            "src": "192.168.77.12", "dst": "192.168.77.11",
                            "selector": {"src": "10.244.2.0/24", "dst": "10.244.1.0/24"}}],
                "policies": [{"dir": "out", "src": "10.244.1.0/24", "dst": "10.244.2.0/24",
                              "tmpl": {"src": "192.168.77.11", "dst": "192.168.77.12",
                                       "spi": "0x01000100", "level": "required"}},
                             {"dir": "in", "src": "10.244.2.0/24", "dst": "10.244.1.0/24",
                              "tmpl": {"src": "192.168.77.12", "dst": "192.168.77.11",
                                       "spi": "0x00000000", "level": "required"}},
                             {"dir": "fwd", ...the same as "in"...}]}]}

What an XFRM installer makes of it, with nothing else to know (field -> netlink):

- every **state** (XFRM_MSG_NEWSA, `struct xfrm_usersa_info`): `id.daddr` = `dst`,
  `saddr` = `src`, `id.proto` = IPPROTO_ESP (50), `id.spi` = `spi` (network order),
  `mode` = XFRM_MODE_TUNNEL, `reqid` = the document's `reqid`, `family` = AF_INET,
  `sel` = `selector` (src/dst prefixes, any protocol and port), `flags` = XFRM_STATE_ESN;
  XFRMA_ALG_AEAD with `alg_name` = `aead.name`, `alg_icv_len` = `aead.icvBits` and the key of
  `(aead.keyBits + aead.saltBits) / 8` bytes derived for this state
  (`netcc.contract.ipseckey.sa_key`: key id `key`, `src`, `dst`, `spi`, the aead); and
  XFRMA_REPLAY_ESN_VAL with `replay_window` = `replayWindow`, `bmp_len` = replayWindow / 32
  rounded up. `dir` says which side this node is: `out` states encrypt what this node sends
  (XFRMA_SA_DIR out where the kernel has it), `in` states decrypt what the peer sends.
  No mark, no if_id, no encapsulation (plain ESP, IP protocol 50).
- every **policy** (XFRM_MSG_NEWPOLICY / UPDPOLICY, `struct xfrm_userpolicy_info`): `dir`
  (XFRM_POLICY_OUT / IN / FWD), `sel` = `src`/`dst` prefixes (any protocol and port),
  `priority` = the document's `priority`, action allow; one XFRMA_TMPL: `id.daddr` = tmpl
  `dst`, `saddr` = tmpl `src`, `id.proto` ESP, `id.spi` = tmpl `spi` (0: any), `mode` tunnel,
  `reqid` = `reqid`, `optional` = 1 for `level` "use" (0 for "required"), all algorithms
  allowed (`aalgos`, `ealgos`, `calgos` all ones). No mark.

How states are chosen, and why no packet mark is needed: an `out` policy's template names the
SPI of the state of the sending key (the kernel's output lookup takes the template's SPI when
it is not 0), so the states of every listed key can exist at once and switching keys is one
policy update per peer. `in`/`fwd` templates leave the SPI open (0): a packet decrypted by a
state of any listed key passes. Inbound lookup is by (destination, SPI, ESP), so SPIs must be
unique per receiving node and key; they are:

    SPI = key id << 24 | slot(sending node)

where `slot` is the offset of the sender's podCIDR inside `clusterPodCIDR`, shifted right by
max(0, 8 - prefix length of clusterPodCIDR) bits so that it fits 24 bits (`spi_slot`). Pod
CIDRs do not overlap, so slots differ (the compiler refuses a spec where two would meet, which
takes a clusterPodCIDR shorter than /8); SPIs are never below 0x01000000 (so never 0 nor in
the reserved 1-255); a node's SPIs do not change when other nodes come or go; a new key id
gives new SPIs. An SPI reads as (key id, sending node): `0x01000100` is key 1 from the node
whose podCIDR starts 0.0.1.0 into the cluster's. Each SA is (src, dst, SPI), and appears twice
in OUT, as the `out` state of its sender and the `in` state of its receiver, with the same
values (the tests check it).

The objects netcc owns are known by `reqid` (0x6e63, "nc"): a reconciler removes states and
policies with it that the plan no longer lists, and touches nothing else.

Keys (`keys`, sorted by id): every listed key has an `in` and an `out` state per peer. At most
one is `send` (`sendKey`; the `out` policies use its states); the others are `accept` (their
states exist, nothing sends with them). No key in state `send`: nothing is encrypted, and the
node installs no `out` policy (a rollout turning IPsec on or off, see `acceptPlaintext`). Each
key is read from its `file` on the node (`netcc.contract.ipseckey`: one key and its id per
file); `fingerprint` (null when the spec gives none) lets the node refuse a different key
under the same id. A key the plan no longer lists keeps its `in` states for
`removedKeyGraceSeconds` after the node applied that plan, then goes.

`acceptPlaintext`: the `in`/`fwd` templates are optional (`level` "use"), so pod traffic from
other nodes' pods arriving in clear still passes; false (`level` "required"): it is refused
(XfrmInTmplMismatch). `netcc.contract.ipsecrollout` says which changes of these between two
plans are safe to roll out node by node.

MTU (`mtu`, for pods' interfaces and routes to other nodes' pod CIDRs), for ESP in tunnel mode
over IPv4 with AES-GCM as `esp4` computes it (`esp_mtu`):

    mtu = ((underlayMTU - 20 - 8 - 8 - ICV bytes) rounded down to a multiple of 4) - 2

(outer IPv4 header 20, ESP header 8, the explicit IV 8, the ICV; the ESP trailer's pad length
and next header bytes, 2, with the padding that aligns payload and trailer to 4 bytes): 1446 on
a 1500 underlay with a 16-byte ICV.
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

PLAN_PATH = "nodes/{node}/ipsec.json"  # in OUT, one per node when IPsec is enabled
VERSION = 1
AEAD = "rfc4106(gcm(aes))"  # AES-GCM for ESP (RFC 4106): the key is followed by a 4-byte salt
AEADS = (AEAD,)
KEY_BITS = (128, 256)
ICV_BITS = (64, 96, 128)
SALT_BITS = 32
REQID = 0x6E63  # "nc": every state and template netcc installs, and only those
PRIORITY = 0x6E63  # of netcc's policies (lower wins; theirs never overlap one another)
KEY_ID_MIN, KEY_ID_MAX = 1, 255  # the SPI's top byte
SPI_KEY_SHIFT = 24
SPI_SLOT_BITS = 24
REPLAY_MIN, REPLAY_MAX = 32, 4096  # packets; ESN needs a window, XFRM bounds its bitmap
GRACE_MAX = 86400  # seconds a removed key may stay accepted
MIN_MTU, MAX_MTU = 576, 65535
STATES = ("send", "accept")
LEVELS = ("required", "use")
DIRECTIONS = ("out", "in", "fwd")
KEY_FILE_PREFIX = "key-"  # a key's file in the key directory: key-ID
OUTER_IPV4, ESP_HEADER, GCM_IV, ESP_TRAILER, ESP_ALIGN = 20, 8, 8, 2, 4
_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
_FINGERPRINT = re.compile(r"[0-9a-f]{32}")
_SPI = re.compile(r"0x[0-9a-f]{8}")


class IPsecFormatError(ValueError):
    """An IPsec plan, or a value in it, that is not what the contract allows."""


# --- numbers everyone computes the same way --------------------------------------------------


def esp_mtu(underlay_mtu: int, icv_bits: int = 128) -> int:
    """The largest inner packet that fits `underlay_mtu` in ESP tunnel mode over IPv4 with
    AES-GCM (see the module's text): 1446 for 1500 and a 16-byte ICV."""
    room = underlay_mtu - OUTER_IPV4 - ESP_HEADER - GCM_IV - icv_bits // 8
    return room // ESP_ALIGN * ESP_ALIGN - ESP_TRAILER


def spi_slot(cluster_pod_cidr: IPv4Network, node_pod_cidr: IPv4Network) -> int:
    """A node's 24-bit slot: its podCIDR's offset in the cluster's, scaled to fit 24 bits."""
    offset = int(node_pod_cidr.network_address) - int(cluster_pod_cidr.network_address)
    if not 0 <= offset < cluster_pod_cidr.num_addresses:
        raise IPsecFormatError(f"podCIDR {node_pod_cidr} is outside {cluster_pod_cidr}")
    return offset >> max(0, 32 - cluster_pod_cidr.prefixlen - SPI_SLOT_BITS)


def spi_for(key_id: int, slot: int) -> int:
    """The SPI of the SAs a node of `slot` sends with key `key_id`."""
    if not KEY_ID_MIN <= key_id <= KEY_ID_MAX or not 0 <= slot < 1 << SPI_SLOT_BITS:
        raise IPsecFormatError(f"no SPI for key {key_id!r} and slot {slot!r}")
    return key_id << SPI_KEY_SHIFT | slot


def spi_text(spi: int) -> str:
    return f"0x{spi:08x}"


def key_file(directory: str, key_id: int) -> str:
    """Where a node reads key `key_id`: `DIRECTORY/key-ID` (one item of the mounted Secret)."""
    return posixpath.join(directory, f"{KEY_FILE_PREFIX}{key_id}")


# --- the plan --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Aead:
    name: str = AEAD
    key_bits: int = 128
    icv_bits: int = 128

    @property
    def key_bytes(self) -> int:
        """Bytes of XFRM key material: the AES key and the 4-byte salt (RFC 4106)."""
        return (self.key_bits + SALT_BITS) // 8


@dataclass(frozen=True)
class KeyRef:
    """A cluster key as the plan names it: never the key, only where it is and its fingerprint."""

    id: int
    state: str  # "send" | "accept"
    file: str
    fingerprint: str | None = None


@dataclass(frozen=True)
class Selector:
    src: str  # CIDR
    dst: str  # CIDR


@dataclass(frozen=True)
class SAState:
    """One XFRM state: `out` encrypts what this node sends to the peer, `in` decrypts the peer's."""

    dir: str  # "out" | "in"
    key: int
    spi: int
    src: str  # outer (node) addresses
    dst: str
    selector: Selector  # inner (pod CIDR) addresses


@dataclass(frozen=True)
class Template:
    src: str
    dst: str
    spi: int  # 0: any state of the reqid between src and dst
    level: str  # "required" | "use"


@dataclass(frozen=True)
class SAPolicy:
    dir: str  # "out" | "in" | "fwd"
    src: str  # CIDR
    dst: str  # CIDR
    tmpl: Template


@dataclass(frozen=True)
class Cover:
    """A workload class's block inside a peer's podCIDR (what a policy of that peer covers)."""

    cls: str
    cidr: str


@dataclass(frozen=True)
class PeerSAs:
    node: str
    address: str
    pod_cidr: str
    states: tuple[SAState, ...]
    policies: tuple[SAPolicy, ...]
    covers: tuple[Cover, ...] = ()


@dataclass(frozen=True)
class IPsecPlan:
    """One node's IPsec, as `OUT/nodes/NODE/ipsec.json` describes it."""

    node: str
    address: str
    pod_cidr: str
    cluster_pod_cidr: str
    aead: Aead
    replay_window: int
    underlay_mtu: int
    mtu: int
    accept_plaintext: bool
    removed_key_grace: int
    keys: tuple[KeyRef, ...]
    peers: tuple[PeerSAs, ...]

    @property
    def send_key(self) -> int | None:
        return next((k.id for k in self.keys if k.state == "send"), None)


# --- the document ----------------------------------------------------------------------------


def _selector(s: Selector) -> dict[str, str]:
    return {"src": s.src, "dst": s.dst}


def _state_doc(s: SAState) -> dict[str, Any]:
    return {
        "dir": s.dir,
        "key": s.key,
        "spi": spi_text(s.spi),
        "src": s.src,
        "dst": s.dst,
        "selector": _selector(s.selector),
    }


def _policy_doc(p: SAPolicy) -> dict[str, Any]:
    t = p.tmpl
    tmpl = {"src": t.src, "dst": t.dst, "spi": spi_text(t.spi), "level": t.level}
    return {"dir": p.dir, "src": p.src, "dst": p.dst, "tmpl": tmpl}


def to_doc(plan: IPsecPlan) -> dict[str, Any]:
    """The JSON document of a plan."""
    return {
        "version": VERSION,
        "node": plan.node,
        "address": plan.address,
        "podCIDR": plan.pod_cidr,
        "clusterPodCIDR": plan.cluster_pod_cidr,
        "proto": "esp",
        "mode": "tunnel",
        "reqid": REQID,
        "priority": PRIORITY,
        "aead": {
            "name": plan.aead.name,
            "keyBits": plan.aead.key_bits,
            "saltBits": SALT_BITS,
            "icvBits": plan.aead.icv_bits,
        },
        "esn": True,
        "replayWindow": plan.replay_window,
        "underlayMTU": plan.underlay_mtu,
        "mtu": plan.mtu,
        "acceptPlaintext": plan.accept_plaintext,
        "removedKeyGraceSeconds": plan.removed_key_grace,
        "sendKey": plan.send_key,
        "keys": [
            {"id": k.id, "state": k.state, "file": k.file, "fingerprint": k.fingerprint}
            for k in plan.keys
        ],
        "peers": [
            {
                "node": p.node,
                "address": p.address,
                "podCIDR": p.pod_cidr,
                "covers": [{"class": c.cls, "cidr": c.cidr} for c in p.covers],
                "states": [_state_doc(s) for s in p.states],
                "policies": [_policy_doc(x) for x in p.policies],
            }
            for p in plan.peers
        ],
    }


def dumps(doc: dict[str, Any]) -> bytes:
    """The document as text: sorted keys, indented, one peer per line (a node's file grows
    with the cluster, about 1 KB per peer; a change of one peer is one line of a diff)."""
    text = json.dumps({**doc, "peers": []}, indent=2, sort_keys=True)
    peers = ",\n".join("    " + json.dumps(p, sort_keys=True) for p in doc["peers"])
    if peers:  # json.dumps escapes quotes inside strings: only the key itself matches
        text = text.replace('"peers": []', f'"peers": [\n{peers}\n  ]', 1)
    return (text + "\n").encode()


def _spi(text: Any) -> int:
    if not isinstance(text, str) or not _SPI.fullmatch(text):
        raise IPsecFormatError(f"spi {text!r}: expected 0x and 8 lowercase hex digits")
    return int(text, 16)


def from_doc(doc: Any) -> IPsecPlan:
    """The plan of a document, checked (`check_plan`); IPsecFormatError when it is malformed
    or a value is bad."""
    try:
        if doc.get("version") != VERSION:
            raise IPsecFormatError(f"ipsec.json version {doc.get('version')!r}, expected {VERSION}")
        fixed = {"proto": "esp", "mode": "tunnel", "reqid": REQID, "priority": PRIORITY}
        for field, value in fixed.items():
            if doc.get(field) != value:
                raise IPsecFormatError(f"{field} {doc.get(field)!r}, expected {value!r}")
        if doc.get("esn") is not True or doc["aead"].get("saltBits") != SALT_BITS:
            raise IPsecFormatError(f"esn must be true and aead.saltBits {SALT_BITS}")
        aead = doc["aead"]
        plan = IPsecPlan(
            node=doc["node"],
            address=doc["address"],
            pod_cidr=doc["podCIDR"],
            cluster_pod_cidr=doc["clusterPodCIDR"],
            aead=Aead(aead["name"], aead["keyBits"], aead["icvBits"]),
            replay_window=doc["replayWindow"],
            underlay_mtu=doc["underlayMTU"],
            mtu=doc["mtu"],
            accept_plaintext=doc["acceptPlaintext"],
            removed_key_grace=doc["removedKeyGraceSeconds"],
            keys=tuple(
                KeyRef(k["id"], k["state"], k["file"], k["fingerprint"]) for k in doc["keys"]
            ),
            peers=tuple(
                PeerSAs(
                    node=p["node"],
                    address=p["address"],
                    pod_cidr=p["podCIDR"],
                    covers=tuple(Cover(c["class"], c["cidr"]) for c in p["covers"]),
                    states=tuple(
                        SAState(
                            s["dir"],
                            s["key"],
                            _spi(s["spi"]),
                            s["src"],
                            s["dst"],
                            Selector(s["selector"]["src"], s["selector"]["dst"]),
                        )
                        for s in p["states"]
                    ),
                    policies=tuple(
                        SAPolicy(
                            x["dir"],
                            x["src"],
                            x["dst"],
                            Template(
                                x["tmpl"]["src"],
                                x["tmpl"]["dst"],
                                _spi(x["tmpl"]["spi"]),
                                x["tmpl"]["level"],
                            ),
                        )
                        for x in p["policies"]
                    ),
                )
                for p in doc["peers"]
            ),
        )
        if doc.get("sendKey") != plan.send_key:
            raise IPsecFormatError(f"sendKey {doc.get('sendKey')!r} is not the key in state send")
    except (AttributeError, KeyError, TypeError) as e:
        raise IPsecFormatError(f"ipsec.json: malformed ({type(e).__name__}: {e})") from None
    check_plan(plan)
    return plan


# --- its values ------------------------------------------------------------------------------


def _integer(value: Any, low: int, high: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise IPsecFormatError(f"{what} {value!r}: expected {low}-{high}")
    return value


def _address(value: Any, what: str) -> IPv4Address:
    try:
        return IPv4Address(value)
    except ValueError:
        raise IPsecFormatError(f"{what} {value!r}: not an IPv4 address") from None


def _cidr(value: Any, what: str) -> IPv4Network:
    try:
        return IPv4Network(value, strict=True)
    except (TypeError, ValueError):
        raise IPsecFormatError(f"{what} {value!r}: not an IPv4 CIDR (host bits zero)") from None


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or len(value) > 253 or not _NAME.fullmatch(value):
        raise IPsecFormatError(f"{what} {value!r}: not a node name")
    return value


def check_key_ref(key: KeyRef) -> None:
    _integer(key.id, KEY_ID_MIN, KEY_ID_MAX, "key id")
    if key.state not in STATES:
        raise IPsecFormatError(f"key {key.id}: state {key.state!r}, expected send or accept")
    f = key.file
    if not isinstance(f, str) or not f.startswith("/") or posixpath.normpath(f) != f:
        raise IPsecFormatError(f"key {key.id}: file {f!r} is not a normalized absolute path")
    if not f.isprintable() or len(f) > 1024:
        raise IPsecFormatError(f"key {key.id}: file path not printable or too long")
    if key.fingerprint is not None and (
        not isinstance(key.fingerprint, str) or not _FINGERPRINT.fullmatch(key.fingerprint)
    ):
        raise IPsecFormatError(f"key {key.id}: fingerprint is not 32 lowercase hex digits")


def _check_keys(plan: IPsecPlan) -> None:
    if not isinstance(plan.accept_plaintext, bool):
        raise IPsecFormatError("acceptPlaintext: expected true or false")
    ids = [k.id for k in plan.keys]
    for key in plan.keys:
        check_key_ref(key)
    if not ids or ids != sorted(set(ids)):
        raise IPsecFormatError("keys: at least one, each id once, sorted by id")
    if sum(1 for k in plan.keys if k.state == "send") > 1:
        raise IPsecFormatError("keys: more than one key in state send")
    if plan.send_key is None and not plan.accept_plaintext:
        raise IPsecFormatError(
            "no key in state send and acceptPlaintext false: all pod traffic between nodes "
            "would be dropped"
        )


def _check_peer(plan: IPsecPlan, peer: PeerSAs, cluster: IPv4Network) -> None:
    """A peer's states and policies are exactly what the module's text says they are."""
    me, my_cidr = str(_address(plan.address, "address")), _cidr(plan.pod_cidr, "podCIDR")
    _name(peer.node, "peer")
    them = str(_address(peer.address, f"peer {peer.node} address"))
    their_cidr = _cidr(peer.pod_cidr, f"peer {peer.node} podCIDR")
    if them == me or peer.node == plan.node or their_cidr.overlaps(my_cidr):
        raise IPsecFormatError(f"peer {peer.node}: its address or podCIDR is this node's")
    for c in peer.covers:
        if not _cidr(c.cidr, "covered block").subnet_of(their_cidr):
            raise IPsecFormatError(f"peer {peer.node}: block {c.cidr} is outside its podCIDR")
    mine, theirs = spi_slot(cluster, my_cidr), spi_slot(cluster, their_cidr)
    want_states = []
    for key in plan.keys:
        out_sel = Selector(str(my_cidr), str(their_cidr))
        in_sel = Selector(str(their_cidr), str(my_cidr))
        want_states.append(SAState("out", key.id, spi_for(key.id, mine), me, them, out_sel))
        want_states.append(SAState("in", key.id, spi_for(key.id, theirs), them, me, in_sel))
    if tuple(peer.states) != tuple(want_states):
        raise IPsecFormatError(
            f"peer {peer.node}: states are not one out and one in per key, with the SPIs and "
            "selectors of its podCIDR"
        )
    level = "use" if plan.accept_plaintext else "required"
    want_policies = []
    if plan.send_key is not None:
        tmpl = Template(me, them, spi_for(plan.send_key, mine), "required")
        want_policies.append(SAPolicy("out", str(my_cidr), str(their_cidr), tmpl))
    for direction in ("in", "fwd"):
        tmpl = Template(them, me, 0, level)
        want_policies.append(SAPolicy(direction, str(their_cidr), str(my_cidr), tmpl))
    if tuple(peer.policies) != tuple(want_policies):
        raise IPsecFormatError(
            f"peer {peer.node}: policies are not the out policy of the send key and the in and "
            "fwd policies of its podCIDR"
        )


def check_plan(plan: IPsecPlan) -> None:
    """An IPsec plan as read from OUT (or about to be written), before anything is done with
    it: every value in range, every state and policy the one its peer's addresses, the keys
    and the SPI rule give (so nothing else can be installed from it)."""
    _name(plan.node, "node")
    cluster = _cidr(plan.cluster_pod_cidr, "clusterPodCIDR")
    if not _cidr(plan.pod_cidr, "podCIDR").subnet_of(cluster):
        raise IPsecFormatError(f"podCIDR {plan.pod_cidr} is outside {plan.cluster_pod_cidr}")
    a = plan.aead
    if a.name not in AEADS or a.key_bits not in KEY_BITS or a.icv_bits not in ICV_BITS:
        raise IPsecFormatError(
            f"aead {a.name!r} with {a.key_bits!r}-bit keys and {a.icv_bits!r}-bit ICV: "
            f"expected {AEAD}, keyBits {KEY_BITS}, icvBits {ICV_BITS}"
        )
    _integer(plan.replay_window, REPLAY_MIN, REPLAY_MAX, "replayWindow")
    _integer(plan.underlay_mtu, 1280, MAX_MTU, "underlayMTU")
    if plan.mtu != esp_mtu(plan.underlay_mtu, a.icv_bits):
        raise IPsecFormatError(
            f"mtu {plan.mtu!r} is not {esp_mtu(plan.underlay_mtu, a.icv_bits)}, what ESP "
            f"leaves of underlayMTU {plan.underlay_mtu}"
        )
    _integer(plan.removed_key_grace, 0, GRACE_MAX, "removedKeyGraceSeconds")
    _check_keys(plan)
    names = [p.node for p in plan.peers]
    if names != sorted(set(names)):
        raise IPsecFormatError("peers: each node once, sorted by name")
    slots = {spi_slot(cluster, _cidr(plan.pod_cidr, "podCIDR"))}
    for peer in plan.peers:
        _check_peer(plan, peer, cluster)
        slot = spi_slot(cluster, _cidr(peer.pod_cidr, "podCIDR"))
        if slot in slots:
            raise IPsecFormatError(f"peer {peer.node}: its SPIs would be another node's")
        slots.add(slot)
