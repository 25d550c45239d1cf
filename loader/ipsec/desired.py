"""What a node's IPsec plan asks of the kernel: its XFRM states and policies, as values.

Pure: a checked plan (`netcc.contract.ipsec.IPsecPlan`) and its cluster keys in, `XfrmState`
and `XfrmPolicy` values out, exactly as `netcc.contract.ipsec` maps every field (ESP in tunnel
mode, the plan's reqid, AES-GCM with the key `netcc.contract.ipseckey.sa_key` derives for the
state, extended sequence numbers with the replay window, no mark). Nothing here touches the
kernel or reads a file; `apply` compares these values with a dump and sends the difference.

Which objects are netcc's: states with the plan's reqid (`REQID`, ESP), and policies with a
template of that reqid (`is_ours`). Everything else in the namespace belongs to someone else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from netcc.contract.ipsec import PRIORITY, REQID, SPI_KEY_SHIFT, IPsecPlan, SAPolicy, SAState
from netcc.contract.ipseckey import ClusterKey, IPsecKeyError, sa_key
from netcc.loader.ipsec.xfrm import (
    DIRECTIONS,
    IPPROTO_ESP,
    XFRM_POLICY_TYPE_MAIN,
    XFRM_STATE_ESN,
    AeadAlgo,
    Selector,
    Template,
    XfrmPolicy,
    XfrmState,
)


def key_of_spi(spi: int) -> int:
    """The key id an SPI of netcc's names (its top byte)."""
    return spi >> SPI_KEY_SHIFT


def state_key(s: XfrmState) -> tuple[str, int]:
    """What names a state in the kernel (with ESP): its destination and SPI."""
    return s.dst, s.spi


def policy_key(p: XfrmPolicy) -> tuple[int, str, str]:
    """What names one of netcc's policies: direction and selector (mark none, type main)."""
    return p.dir, p.selector.src, p.selector.dst


def is_ours_state(s: XfrmState) -> bool:
    return s.reqid == REQID and s.proto == IPPROTO_ESP


def is_ours_policy(p: XfrmPolicy) -> bool:
    return any(t.reqid == REQID for t in p.templates)


@dataclass(frozen=True)
class Wanted:
    """The states and policies of a plan, each by the key that names it in the kernel; and
    which node each outer address is (for reports)."""

    states: dict[tuple[str, int], XfrmState]
    policies: dict[tuple[int, str, str], XfrmPolicy]
    peers: dict[str, str]  # node address -> node name


def xfrm_state(plan: IPsecPlan, s: SAState, key: bytes) -> XfrmState:
    return XfrmState(
        src=s.src,
        dst=s.dst,
        spi=s.spi,
        reqid=REQID,
        selector=Selector(s.selector.src, s.selector.dst),
        aead=AeadAlgo(plan.aead.name, plan.aead.icv_bits, key),
        replay_window=plan.replay_window,
        flags=XFRM_STATE_ESN,
    )


def xfrm_policy(p: SAPolicy) -> XfrmPolicy:
    t = p.tmpl
    return XfrmPolicy(
        dir=DIRECTIONS[p.dir],
        selector=Selector(p.src, p.dst),
        priority=PRIORITY,
        templates=(Template(t.src, t.dst, t.spi, REQID, optional=int(t.level == "use")),),
        ptype=XFRM_POLICY_TYPE_MAIN,
    )


def wanted(plan: IPsecPlan, keys: Mapping[int, ClusterKey]) -> Wanted:
    """Every state and policy of `plan`, the states' keys derived from `keys` (by id, each
    already checked against the plan: `apply.read_keys`)."""
    missing = sorted({k.id for k in plan.keys} - set(keys))
    if missing:
        raise IPsecKeyError(f"no cluster key for key id(s) {missing}")
    states: dict[tuple[str, int], XfrmState] = {}
    policies: dict[tuple[int, str, str], XfrmPolicy] = {}
    peers = {plan.address: plan.node}
    for peer in plan.peers:
        peers[peer.address] = peer.node
        for s in peer.states:
            src_node, dst_node = (
                (plan.node, peer.node) if s.dir == "out" else (peer.node, plan.node)
            )
            key = sa_key(keys[s.key], plan.aead, s, src_node, dst_node)
            x = xfrm_state(plan, s, key)
            states[state_key(x)] = x
        for p in peer.policies:
            x = xfrm_policy(p)
            policies[policy_key(x)] = x
    return Wanted(states, policies, peers)
