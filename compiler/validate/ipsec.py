"""IPsec encryption: one of WireGuard and IPsec, the key directory, the keys and their states."""

from __future__ import annotations

import re
from ipaddress import IPv4Network
from typing import Any

from netcc.contract.ipsec import SPI_SLOT_BITS, spi_slot
from netcc.diagnostics import join_key
from netcc.validate.access import entries, integer, items, mapping, quote, text
from netcc.validate.context import Context
from netcc.validate.wireguard import key_file_problems

IPSEC_PATH = "spec.encryption.ipsec"
BOTH = (
    "spec.encryption.ipsec and spec.encryption.wireguard are both enabled; node-to-node "
    "encryption is one or the other: set enabled: false on one of them, or remove it"
)
NO_SENDER = (
    "no key is in state send, so nodes send pod traffic in clear, and acceptPlaintext is false, "
    "so nodes drop it: every pod connection between nodes would fail; set one key's state to "
    "send, or acceptPlaintext: true while the nodes learn the key"
)
FINGERPRINT = re.compile(r"[0-9a-f]{32}")


def check_ipsec(ctx: Context, spec: dict[str, Any]) -> None:
    encryption = mapping(spec.get("encryption"))
    if "ipsec" not in encryption:
        return
    ipsec = mapping(encryption.get("ipsec"))
    wireguard = mapping(encryption.get("wireguard"))
    if ipsec.get("enabled") is True and wireguard.get("enabled") is True:
        ctx.error(IPSEC_PATH, BOTH, at_key=True)
    directory = text(ipsec.get("keyDirectory"))
    if directory is not None and (problems := key_file_problems(directory)):
        message = problems[0].replace("privateKeyFile", "keyDirectory")
        ctx.error(join_key(IPSEC_PATH, "keyDirectory"), message)
    _check_keys(ctx, ipsec)
    if ipsec.get("enabled") is True:
        _check_slots(ctx, spec)


def _check_keys(ctx: Context, ipsec: dict[str, Any]) -> None:
    keys_path = join_key(IPSEC_PATH, "keys")
    ids: dict[int, str] = {}
    sender: str | None = None
    for path, key in entries(ipsec.get("keys"), keys_path):
        key_id = integer(key.get("id"))
        if key_id is not None and key_id in ids:
            ctx.error(join_key(path, "id"), f"key id {key_id} is already used by {ids[key_id]}")
        if key_id is not None:
            ids.setdefault(key_id, path)
        if key.get("state") == "send":
            if sender is not None:
                message = f"at most one key may be in state send ({sender} is)"
                ctx.error(join_key(path, "state"), message)
            sender = sender or path
        fingerprint = key.get("fingerprint")
        if isinstance(fingerprint, str) and not FINGERPRINT.fullmatch(fingerprint):
            ctx.error(
                join_key(path, "fingerprint"),
                "fingerprint must be 32 lowercase hex digits, as `netcc ipsec fingerprint FILE` "
                "prints them (never the key itself)",
            )
    listed = items(ipsec.get("keys"))
    readable = bool(listed) and all(isinstance(k, dict) for k in listed)
    plaintext = ipsec.get("acceptPlaintext", False)
    if readable and sender is None and plaintext is False:
        ctx.error(keys_path, NO_SENDER)


def _check_slots(ctx: Context, spec: dict[str, Any]) -> None:
    """Every node's SPIs are its own (`netcc.contract.ipsec`: SPI = key id << 24 | slot, the
    slot from the node's podCIDR): only a clusterPodCIDR shorter than /8 can make two meet."""
    cluster = ctx.pod_cidr
    if cluster is None or cluster.prefixlen >= 32 - SPI_SLOT_BITS:
        return
    seen: dict[int, str] = {}
    for path, node in entries(spec.get("nodes"), "spec.nodes"):
        try:
            cidr = IPv4Network(node.get("podCIDR"), strict=True)
            slot = spi_slot(cluster, cidr)
        except (TypeError, ValueError):
            continue  # reported by the network checks
        name = text(node.get("name")) or path
        if slot in seen:
            ctx.error(
                join_key(path, "podCIDR"),
                f"IPsec numbers SPIs by where a node's podCIDR starts inside podCIDR {cluster}, "
                f"in steps of {1 << (32 - cluster.prefixlen - SPI_SLOT_BITS)} addresses, and "
                f"{cidr} falls in the same step as node {quote(seen[slot])}'s; give the nodes "
                "larger podCIDRs or a podCIDR of /8 or longer",
            )
        seen.setdefault(slot, name)
