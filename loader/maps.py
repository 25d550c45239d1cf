"""A kernel map as one object: its file descriptor, its layout, and the one way to read it.

`BpfMap` owns its fd (closed by `close()` or the `with` block) unless it borrows one that a
`BpfObject` owns (`BpfMap.borrow`). Its layout (`netcc.contract.layoutfile.Layout`) gives the
key and value sizes and packs and unpacks entries. Every reader of a map's contents goes
through `entries()` (apply, migrate, status, the tests), so keys are walked one way: the whole
key list first (`bpf_map_get_next_key`), then one lookup per key, skipping keys deleted
meanwhile; deleting while iterating is therefore safe.

Writes go through `netcc.loader.libbpf` at call time, so a test can observe or refuse them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from netcc.contract.layoutfile import Layout, MapLayout
from netcc.loader import libbpf
from netcc.loader.libbpf import BPF_ANY

# A per-CPU map's value: one value per possible CPU.
PerCpu = list[bytes]


class BpfMap:
    """One kernel map: `fd`, `name`, `layout`. Per-CPU maps read and write one value per
    possible CPU (`entries()` then yields a list of values for each key)."""

    def __init__(self, fd: int, name: str, layout: Layout, *, owned: bool = True) -> None:
        self.fd = fd
        self.name = name
        self.layout = layout
        self._owned = owned
        self._closed = False

    @classmethod
    def pinned(cls, path: str | Path, layout: Layout, name: str | None = None) -> BpfMap:
        """The map pinned at `path` (named after the pin unless `name` is given)."""
        return cls(libbpf.obj_get(path), name or Path(path).name, layout)

    @classmethod
    def borrow(cls, fd: int, name: str, layout: Layout) -> BpfMap:
        """A view of a map whose fd someone else owns (a loaded `BpfObject`)."""
        return cls(fd, name, layout, owned=False)

    # -- what it is --

    @property
    def spec(self) -> MapLayout:
        return self.layout.map_layout(self.name)

    @property
    def key_size(self) -> int:
        return self.layout.size(self.spec.key)

    @property
    def value_size(self) -> int:
        return self.layout.size(self.spec.value)

    @property
    def percpu(self) -> bool:
        return self.spec.percpu

    def info(self) -> dict[str, Any]:
        """The kernel's view: name, type, id, key_size, value_size, max_entries, flags."""
        return libbpf.map_info(self.fd)

    def sizes_match(self, info: dict[str, Any] | None = None) -> bool:
        """Whether the kernel map's key and value sizes are the layout's (its entries can
        be read with it)."""
        info = info or self.info()
        return (info["key_size"], info["value_size"]) == (self.key_size, self.value_size)

    # -- reading --

    def keys(self) -> list[bytes]:
        """Every key, in the kernel's iteration order."""
        return libbpf.map_keys(self.fd, self.key_size)

    def entries(self) -> Iterator[tuple[bytes, Any]]:
        """(key, value) of every entry, raw bytes; a per-CPU map's value is a `PerCpu`
        list. Keys deleted while this runs are skipped."""
        percpu, size = self.percpu, self.value_size
        for key in self.keys():
            if percpu:
                values = libbpf.map_lookup_percpu(self.fd, key, size)
                if values:
                    yield key, values
            else:
                value = libbpf.map_lookup(self.fd, key, size)
                if value is not None:
                    yield key, value

    def contents(self) -> dict[bytes, bytes]:
        """{key: value} of a map that is not per-CPU."""
        return dict(self.entries())

    def decoded(self) -> list[dict[str, Any]]:
        """Every entry as {"key", "value"} by field name (per-CPU: a list of values)."""
        m = self.spec
        out = []
        for key, value in self.entries():
            if self.percpu:
                shown: Any = [self.layout.unpack(m.value, v) for v in value]
            else:
                shown = self.layout.unpack(m.value, value)
            out.append({"key": self.layout.unpack(m.key, key), "value": shown})
        return out

    def get(self, key: bytes) -> bytes | None:
        """The value under `key`, or None."""
        return libbpf.map_lookup(self.fd, key, self.value_size)

    def get_percpu(self, key: bytes) -> PerCpu:
        """Every CPU's value under `key` (empty if absent)."""
        return libbpf.map_lookup_percpu(self.fd, key, self.value_size)

    # -- writing --

    def put(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
        libbpf.map_update(self.fd, key, value, flags)

    def put_percpu(self, key: bytes, values: PerCpu, flags: int = BPF_ANY) -> None:
        libbpf.map_update_percpu(self.fd, key, values, flags)

    def delete(self, key: bytes) -> bool:
        """Delete `key`; False if it was absent."""
        return libbpf.map_delete(self.fd, key)

    def pin(self, path: str | Path) -> None:
        libbpf.obj_pin(self.fd, path)

    # -- packing by field name --

    def pack_key(self, fields: Any) -> bytes:
        return self.layout.pack(self.spec.key, fields)

    def unpack_key(self, raw: bytes) -> Any:
        return self.layout.unpack(self.spec.key, raw)

    def unpack_value(self, raw: bytes) -> Any:
        return self.layout.unpack(self.spec.value, raw)

    # -- lifetime --

    def close(self) -> None:
        """Close the fd if this object owns it. Idempotent."""
        if self._owned and not self._closed:
            self._closed = True
            os.close(self.fd)

    def __enter__(self) -> BpfMap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"BpfMap({self.name!r}, fd={self.fd}{'' if self._owned else ', borrowed'})"
