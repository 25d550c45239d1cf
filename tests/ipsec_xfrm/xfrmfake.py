"""A kernel SAD and SPD in memory, behind the interface of `netcc.loader.ipsec.xfrm.XfrmSocket`,
for the reconciler's tests; and the specs and keys they use.

Every state and policy goes through the real packing and parsing (`state_message` then
`parse_state`, as a dump would return it), and the kernel's rules that matter to a reconciler
are kept: a state is named by (destination, SPI, proto, mark), NEWSA of a taken one is EEXIST,
a policy is named by (direction, selector, mark, type), NEWPOLICY of a taken one is EEXIST and
UPDPOLICY replaces it keeping nothing of the old one but the place, deleting what is not there
is ESRCH. `calls` records every request, in order.
"""

from __future__ import annotations

import errno
from pathlib import Path

from netcc.contract.ipseckey import ClusterKey, fingerprint, key_text
from netcc.emit.ipsec import plan_ipsec
from netcc.frontend import parse_spec
from netcc.loader.ipsec import xfrm as x

ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "examples" / "shop.yaml"


def key(key_id: int) -> ClusterKey:
    return ClusterKey(key_id, bytes([key_id * 17 % 256]) * 32)


def write_keys(directory: Path, *ids: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i in ids:
        path = directory / f"key-{i}"
        path.write_text(key_text(key(i)))
        path.chmod(0o600)


def keys_block(directory: Path, keys: list[tuple[int, str]], grace: int = 60, **extra) -> str:
    entries = ", ".join(
        f"{{id: {i}, state: {s}, fingerprint: {fingerprint(key(i))}}}" for i, s in keys
    )
    lines = [
        "enabled: true",
        f"keyDirectory: {directory}",
        f"removedKeyGraceSeconds: {grace}",
        f"keys: [{entries}]",
    ]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    return "\n".join(lines)


def shop_plans(block: str, nodes: int = 3) -> dict:
    """The IPsec plans of examples/shop.yaml with `spec.encryption.ipsec` = `block` (lines)."""
    text = SHOP.read_text()
    body = "\n" + "".join(f"      {line}\n" for line in block.strip().splitlines())
    text = text.replace(
        "  namespaces:\n", "  encryption:\n    ipsec:" + body + "  namespaces:\n", 1
    )
    if nodes == 2:
        text = text.replace(
            "    - {name: node-3, address: 192.168.77.13, podCIDR: 10.244.3.0/24}\n", ""
        )
    cluster = parse_spec(text, "spec.yaml")[0]
    assert cluster is not None
    return plan_ipsec(cluster)


class FakeXfrm:
    def __init__(self) -> None:
        self.sad: dict[tuple, bytes] = {}
        self.spd: dict[tuple, tuple[int, bytes]] = {}
        self.next_index = {0: 8, 1: 1, 2: 2}  # the kernel's index: dir in the low 3 bits
        self.calls: list[tuple[str, str]] = []

    # what XfrmSocket offers

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def close(self) -> None:
        pass

    def states(self) -> list[x.XfrmState]:
        return [x.parse_state(raw) for raw in self.sad.values()]

    def policies(self) -> list[x.XfrmPolicy]:
        out = []
        for index, raw in self.spd.values():
            data = bytearray(raw)
            data[156:160] = index.to_bytes(4, "little")
            out.append(x.parse_policy(bytes(data)))
        return out

    @staticmethod
    def _skey(s: x.XfrmState) -> tuple:
        return (s.dst, s.spi, s.proto, s.mark)

    @staticmethod
    def _pkey(p: x.XfrmPolicy) -> tuple:
        return (p.dir, p.selector, p.mark, p.ptype, p.if_id)

    def add_state(self, s: x.XfrmState, update: bool = False) -> None:
        raw = x.state_message(s)
        self.calls.append(("updsa" if update else "newsa", s.name()))
        k = self._skey(s)
        if update != (k in self.sad):
            raise x.XfrmError(errno.ESRCH if update else errno.EEXIST, f"state {s.name()}")
        self.sad[k] = raw

    def delete_state(self, s: x.XfrmState) -> None:
        self.calls.append(("delsa", s.name()))
        if self.sad.pop(self._skey(s), None) is None:
            raise x.XfrmError(errno.ESRCH, f"deleting {s.name()}: No such process")

    def add_policy(self, p: x.XfrmPolicy, update: bool = False) -> None:
        raw = x.policy_message(p)
        self.calls.append(("updpolicy" if update else "newpolicy", p.name()))
        k = self._pkey(p)
        if k in self.spd and not update:
            raise x.XfrmError(errno.EEXIST, f"adding {p.name()}: File exists")
        if k in self.spd:
            index = self.spd[k][0]
        else:
            index = self.next_index[p.dir]
            self.next_index[p.dir] += 8
        self.spd[k] = (index, raw)

    def delete_policy(self, p: x.XfrmPolicy) -> None:
        self.calls.append(("delpolicy", p.name()))
        for k, (index, _raw) in list(self.spd.items()):
            if index == p.index:
                del self.spd[k]
                return
        raise x.XfrmError(errno.ENOENT, f"deleting {p.name()}: No such file or directory")

    # for the tests

    def kinds(self) -> list[str]:
        return [c[0] for c in self.calls]

    def spis(self) -> set[int]:
        return {s.spi for s in self.states()}
