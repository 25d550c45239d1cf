"""Put a change of the live service backends (`lbservices.Change`) on the applied datapath.

The entries go into the maps the applied version pinned, packed with its layout, under the
node's state lock (the full apply's), in an order that never lets a packet find a number
without its backend: backends and members first, then the rows and the services' counts,
then what is gone (members, then backends). A row is one map value: the kernel copies it
whole under the bucket lock, so a lookup sees the old row or the new one.

Flows keep their backend (the conntrack entry holds it): a TCP connection to a backend that
stopped being ready keeps it, as with kube-proxy. UDP flows to a backend that is gone are
deleted from `netcc_ct` and `netcc_lb_nat`, as kube-proxy clears their conntrack entries, so
their next packet picks a live backend.
"""

from __future__ import annotations

from collections.abc import Iterable

from netcc.contract.layoutfile import Layout
from netcc.contract.services import DynamicPort
from netcc.loader import state
from netcc.loader.daemon.fastpath import FastPath, NotApplied
from netcc.loader.daemon.lbservices import (
    BACKENDS_MAP,
    LB_MAPS,
    MEMBERS_MAP,
    ROWS_MAP,
    SERVICES_MAP,
    Change,
)
from netcc.loader.maps import BpfMap
from netcc.loader.migrate import ct_flow

UDP = 17
PUT_ORDER = (BACKENDS_MAP, MEMBERS_MAP, ROWS_MAP, SERVICES_MAP)
DELETE_ORDER = (SERVICES_MAP, ROWS_MAP, MEMBERS_MAP, BACKENDS_MAP)


class LbWriter:
    """Writes LB changes on one node's applied datapath (`paths`)."""

    def __init__(self, paths: state.Paths, fast: FastPath | None = None) -> None:
        self.paths = paths
        self.fast = fast or FastPath(paths)

    def write(self, digest: str, change: Change, node_address: str | None = None) -> int:
        """Apply `change` on version `digest`; the UDP flow entries flushed. NotApplied when
        that version is not the one applied (the next full apply puts the entries)."""
        with state.locked(self.paths):
            _, layout = self.fast.applied(digest)
            maps = {}
            try:
                for name in LB_MAPS:
                    try:
                        maps[name] = BpfMap.pinned(self.paths.maps / name, layout)
                    except OSError as e:
                        raise NotApplied(f"{self.paths.maps / name}: {e}") from None
                for name in PUT_ORDER:
                    entries = [e for (m, _), e in change.puts.items() if m == name]
                    for key, value in layout.pack_entries(name, entries):
                        maps[name].put(key, value)
                for name in DELETE_ORDER:
                    entries = [
                        {"key": _key_fields(name, k)} for (m, k) in change.deletes if m == name
                    ]
                    for k in entries:
                        maps[name].delete(maps[name].pack_key(k["key"]))
                return self._flush(change, node_address, layout)
            finally:
                for m in maps.values():
                    m.close()

    def _flush(self, change: Change, node_address: str | None, layout: Layout) -> int:
        udp = [(p, gone) for p, gone in change.removed if p.protocol == "UDP"]
        if not udp:
            return 0
        flushed = 0
        with BpfMap.pinned(self.paths.maps / "netcc_ct", layout) as ct:
            for raw_key, raw in list(ct.entries()):
                key, val = ct.unpack_key(raw_key), ct.unpack_value(raw)
                if key["proto"] != UDP:
                    continue
                flow = ct_flow(key, val)
                if flow is not None and _hit(udp, *flow):
                    flushed += ct.delete(raw_key)
        nat_path = self.paths.maps / "netcc_lb_nat"
        if node_address and nat_path.exists():
            with BpfMap.pinned(nat_path, layout) as nat:
                for raw_key, raw in list(nat.entries()):
                    key, val = nat.unpack_key(raw_key), nat.unpack_value(raw)
                    if key["proto"] != UDP:
                        continue
                    for port, gone in udp:
                        if port.node_port is None:
                            continue
                        to_node = (key["remote"], key["rport"]) == (node_address, port.node_port)
                        backend = (val["daddr"], val["dport"])
                        reverse = (val["saddr"], val["sport"]) == (node_address, port.node_port)
                        if (to_node and backend in gone) or (
                            reverse and (key["local"], key["lport"]) in gone
                        ):
                            flushed += nat.delete(raw_key)
                            break
        return flushed


def _hit(
    ports: Iterable[tuple[DynamicPort, set[tuple[str, int]]]],
    service: tuple[str, int, int],
    backend: tuple[str, int],
) -> bool:
    """Whether a conntrack flow to `service` went to a backend one of `ports` lost."""
    vip, number, _ = service
    for port, gone in ports:
        if backend not in gone:
            continue
        if (vip, number) == (str(port.cluster_ip), port.port):
            return True
        if port.node_port is not None and number == port.node_port:
            return True
    return False


def _key_fields(name: str, key: tuple) -> dict:
    """A map key's fields from the reconciler's tuple form."""
    if name in (BACKENDS_MAP, ROWS_MAP):
        return {"id": key[0]}
    if name == MEMBERS_MAP:
        return {"row": key[0], "ip": key[1], "port": key[2]}
    vip, port, proto, scope = key
    return {"vip": vip, "port": port, "proto": proto, "scope": scope}
