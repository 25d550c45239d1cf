"""The node's pod addresses, allocated from class blocks and kept on the host's disk.

Layout: one directory per block, one file per allocated address, holding its owner as JSON:

    ROOT/10.244.1.16_28/.lock         flock'd by every operation on the block
    ROOT/10.244.1.16_28/.next         where the next search starts (a hint, round robin)
    ROOT/10.244.1.16_28/10.244.1.17   {"class": ..., "containerID": ..., "ifname": ..., ...}

ROOT is e.g. `/var/lib/netcc/NODE/ipam`. How the promises hold:

- **Never twice.** An address file is created only by link(2) of a finished temporary file
  to the address's name, which fails when the name exists, whoever (thread or process) made
  it. The block's flock serializes allocations, so a retried ADD finds its own address first
  and gets it again (`allocate` is idempotent per owner key, containerID + ifname).
- **Crash at any point.** The owner is written to `.tmp-*` (O_CREAT|O_EXCL|O_NOFOLLOW) and
  fsync'd before the link, and the directory is fsync'd before `allocate` returns: an address
  file is complete or absent, never torn, and an address is on disk before anyone uses it. A
  leftover `.tmp-*` (a crash before or after the link) is removed by the next operation on
  the block, under its lock, when no writer can be active.
- **Damage from outside** (a record that does not parse) counts as in use by an unknown
  owner: never handed out, listed by `allocations()` with owner None, not collected by `gc`
  (nobody can say whose it is); an operator removes it.

Blocks are CIDRs inside the node's podCIDR and every address of a block is a pod's /32,
so the block's first and last addresses are allocated too, unless passed as `reserved`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import stat
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import NamedTuple, Protocol

from netcc.loader.cni import names

MAX_RECORD_BYTES = 4096
_LOCK = ".lock"
_HINT = ".next"
_TMP = ".tmp-"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class IpamError(Exception):
    """The address store cannot do what was asked."""


class BlockFull(IpamError):
    """Every address of the block is taken."""

    def __init__(self, block: IPv4Network, in_use: int, capacity: int) -> None:
        super().__init__(f"address block {block} is full: {in_use} of {capacity} addresses in use")
        self.block = block
        self.in_use = in_use
        self.capacity = capacity


class DamagedRecord(IpamError):
    """An address file that does not hold a readable owner."""


class AttachmentKey(Protocol):
    """Anything naming an attachment: an Owner, a protocol.Attachment."""

    @property
    def container_id(self) -> str: ...

    @property
    def ifname(self) -> str: ...


@dataclass(frozen=True)
class Owner:
    """Who holds an address: the attachment (the key) and, for people, the pod and class."""

    container_id: str
    ifname: str
    namespace: str = ""
    name: str = ""
    klass: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.container_id, self.ifname)

    def to_bytes(self) -> bytes:
        doc = {
            "class": self.klass,
            "containerID": self.container_id,
            "ifname": self.ifname,
            "name": self.name,
            "namespace": self.namespace,
        }
        return json.dumps(doc, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes) -> Owner:
        """The owner in a record; DamagedRecord if it is not a complete, valid one."""
        try:
            doc = json.loads(data)
            owner = cls(
                container_id=doc["containerID"],
                ifname=doc["ifname"],
                namespace=doc.get("namespace", ""),
                name=doc.get("name", ""),
                klass=doc.get("class", ""),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise DamagedRecord(f"unreadable owner record ({e})") from None
        if not all(isinstance(v, str) for v in vars(owner).values()) or _owner_problem(owner):
            raise DamagedRecord("owner record with invalid fields")
        return owner


class Allocation(NamedTuple):
    ip: IPv4Address
    owner: Owner


def _owner_problem(owner: Owner) -> str | None:
    cid = names.container_id_problem(owner.container_id)
    if cid:
        return f"containerID {owner.container_id!r} {cid}"
    ifname = names.ifname_problem(owner.ifname)
    return f"ifname {owner.ifname!r} {ifname}" if ifname else None


def _key(x: AttachmentKey) -> tuple[str, str]:
    return (x.container_id, x.ifname)


def block_dirname(block: IPv4Network) -> str:
    """`10.244.1.16_28` for 10.244.1.16/28."""
    return f"{block.network_address}_{block.prefixlen}"


def _parse_dirname(name: str) -> IPv4Network | None:
    addr, sep, plen = name.partition("_")
    if not sep or not plen.isdigit():
        return None
    try:
        net = IPv4Network(f"{addr}/{plen}")
    except ValueError:
        return None
    return net if block_dirname(net) == name else None


class _Block:
    """A block's directory, open and locked (see AddressStore._locked)."""

    def __init__(self, net: IPv4Network, fd: int) -> None:
        self.net = net
        self.fd = fd

    def names(self) -> set[str]:
        """The names of the address files (each an address of the block: whole, damaged)."""
        return {n for n in os.listdir(self.fd) if n[:1].isdigit() and self._address(n) is not None}

    def _address(self, name: str) -> IPv4Address | None:
        try:
            ip = IPv4Address(name)
        except ValueError:
            return None
        return ip if ip in self.net and str(ip) == name else None

    def records(self) -> dict[IPv4Address, Owner | None]:
        """Every address file of the block: its owner, or None when damaged."""
        out: dict[IPv4Address, Owner | None] = {}
        for name in sorted(self.names()):
            try:
                out[IPv4Address(name)] = Owner.from_bytes(self.raw(name))
            except DamagedRecord:
                out[IPv4Address(name)] = None
        return out

    def held_by(self, key: tuple[str, str]) -> list[IPv4Address]:
        """The addresses whose owner has `key`. Reads each record's bytes and parses only
        those that mention the key (records are written by Owner.to_bytes)."""
        cid, ifname = (json.dumps(v).encode() for v in key)
        out = []
        for name in self.names():
            try:
                data = self.raw(name)
                if cid in data and ifname in data and Owner.from_bytes(data).key == key:
                    out.append(IPv4Address(name))
            except DamagedRecord:
                continue
        return sorted(out)

    def raw(self, name: str) -> bytes:
        """A record's bytes; DamagedRecord when it is not a small regular file."""
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, dir_fd=self.fd)
        except OSError as e:
            raise DamagedRecord(f"{name}: {e.strerror}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise DamagedRecord(f"{name}: not a regular file")
            data = os.read(fd, MAX_RECORD_BYTES + 1)
        finally:
            os.close(fd)
        if len(data) > MAX_RECORD_BYTES:
            raise DamagedRecord(f"{name}: larger than {MAX_RECORD_BYTES} bytes")
        return data

    def claim(self, ip: IPv4Address, owner: Owner) -> bool:
        """Create `ip`'s record for `owner`, durably; False if the address is taken."""
        tmp = f"{_TMP}{os.getpid()}-{secrets.token_hex(4)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o600, dir_fd=self.fd)
        try:
            try:
                data = owner.to_bytes()
                while data:
                    data = data[os.write(fd, data) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, str(ip), src_dir_fd=self.fd, dst_dir_fd=self.fd)
            except FileExistsError:
                return False
        finally:
            os.unlink(tmp, dir_fd=self.fd)
        os.fsync(self.fd)
        return True

    def unlink(self, ip: IPv4Address) -> None:
        os.unlink(str(ip), dir_fd=self.fd)

    def remove_leftovers(self) -> None:
        """Temporary files of writers that died (none is active: we hold the lock)."""
        for name in os.listdir(self.fd):
            if name.startswith(_TMP):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=self.fd)

    def hint(self) -> int:
        try:
            fd = os.open(_HINT, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)
            with os.fdopen(fd, "rb") as f:
                return int(f.read(32))
        except (OSError, ValueError):
            return 0

    def set_hint(self, offset: int) -> None:
        """Not synced: a lost or torn hint only moves where the next search starts."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        with contextlib.suppress(OSError):
            fd = os.open(_HINT, flags, 0o600, dir_fd=self.fd)
            with os.fdopen(fd, "wb") as f:
                f.write(b"%d\n" % offset)


class AddressStore:
    """The allocations under `root` (created 0700 when missing). Safe to use from many
    threads and processes at once."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- the API the daemon calls ------------------------------------------------------------

    def allocate(
        self, block: IPv4Network, owner: Owner, reserved: Collection[int] = ()
    ) -> IPv4Address:
        """An address of `block` for `owner`, on disk before it is returned. The same owner
        key gets the address it already holds in the block. `reserved` are offsets inside
        the block never handed out. BlockFull when none is free."""
        if not isinstance(block, IPv4Network):
            raise TypeError(f"block must be an IPv4Network, not {block!r}")
        problem = _owner_problem(owner)
        if problem:
            raise ValueError(f"owner: {problem}")
        skip = set(reserved)
        if any(not 0 <= off < block.num_addresses for off in skip):
            raise ValueError(f"reserved offsets {sorted(skip)} outside {block}")
        offsets = [off for off in range(block.num_addresses) if off not in skip]
        with self._locked(block, create=True) as b:
            mine = b.held_by(owner.key)
            if mine:
                return mine[0]
            taken = b.names()
            start = b.hint() % block.num_addresses
            for off in sorted(offsets, key=lambda o: (o < start, o)):  # from the hint, wrapping
                ip = block.network_address + off
                if str(ip) not in taken and b.claim(ip, owner):
                    b.set_hint(off + 1)
                    return ip
            taken = b.names()
            in_use = sum(1 for off in offsets if str(block.network_address + off) in taken)
            raise BlockFull(block, in_use, len(offsets))

    def release(self, owner: AttachmentKey) -> list[IPv4Address]:
        """Free every address held by the owner's key (containerID, ifname); returns them."""
        key = _key(owner)
        freed = []
        for block in self.blocks():
            with self._locked(block) as b:
                mine = b.held_by(key)
                for ip in mine:
                    b.unlink(ip)
                if mine:
                    os.fsync(b.fd)
                freed += mine
        return sorted(freed)

    def owner_of(self, ip: IPv4Address) -> Owner | None:
        """Who holds `ip`, or None when it is free; DamagedRecord when nobody can tell."""
        for block in self.blocks():
            if ip not in block:
                continue
            with self._locked(block) as b:
                try:
                    os.stat(str(ip), dir_fd=b.fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                return Owner.from_bytes(b.raw(str(ip)))
        return None

    def allocations(self) -> dict[IPv4Address, Owner | None]:
        """Every allocated address with its owner (None: a damaged record, still in use)."""
        out: dict[IPv4Address, Owner | None] = {}
        for block in self.blocks():
            with self._locked(block) as b:
                out.update(b.records())
        return dict(sorted(out.items()))

    def gc(self, valid_owners: Iterable[AttachmentKey]) -> list[Allocation]:
        """Free every address whose owner key is not among `valid_owners` (CNI GC's
        valid attachments); returns what was freed. Damaged records are kept."""
        valid = {_key(o) for o in valid_owners}
        freed = []
        for block in self.blocks():
            with self._locked(block) as b:
                stale = [
                    Allocation(ip, held)
                    for ip, held in b.records().items()
                    if held is not None and held.key not in valid
                ]
                for a in stale:
                    b.unlink(a.ip)
                if stale:
                    os.fsync(b.fd)
                freed += stale
        return sorted(freed)

    def in_use(self, block: IPv4Network) -> int:
        """How many addresses of `block` are allocated (damaged records included)."""
        if block not in self.blocks():
            return 0
        with self._locked(block) as b:
            return len(b.records())

    def blocks(self) -> list[IPv4Network]:
        """The blocks that have a directory."""
        try:
            entries = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(net for name in entries if (net := _parse_dirname(name)) is not None)

    # -- the directory -----------------------------------------------------------------------

    def _root_fd(self, create: bool) -> int:
        try:
            return os.open(self.root, _DIR_FLAGS)
        except FileNotFoundError:
            if not create:
                raise
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        parent = os.open(self.root.parent, _DIR_FLAGS)
        try:
            os.fsync(parent)
        finally:
            os.close(parent)
        return os.open(self.root, _DIR_FLAGS)

    @contextlib.contextmanager
    def _locked(self, block: IPv4Network, create: bool = False) -> Iterator[_Block]:
        """The block's directory, flock'd, with leftovers of dead writers removed."""
        if not isinstance(block, IPv4Network):
            raise TypeError(f"block must be an IPv4Network, not {block!r}")
        name = block_dirname(block)
        root = self._root_fd(create)
        try:
            if create:
                try:
                    os.mkdir(name, 0o700, dir_fd=root)
                    os.fsync(root)
                except FileExistsError:
                    pass
            fd = os.open(name, _DIR_FLAGS, dir_fd=root)
        finally:
            os.close(root)
        try:
            lock = os.open(
                _LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=fd
            )
            try:
                fcntl.flock(lock, fcntl.LOCK_EX)
                b = _Block(block, fd)
                b.remove_leftovers()
                yield b
            finally:
                os.close(lock)  # releases the flock
        finally:
            os.close(fd)
