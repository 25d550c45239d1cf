"""One node's datapath in the kernel: the object loaded, its maps filled from `OUT`.

Reads only the artifact directory (never the spec): `bpf/datapath.o`, `bpf/layout.json` and
the node's map data: the shared `maps/*.json` with the node's overlays `nodes/NODE/maps/*.json`
laid on them (`netcc.contract.mapfile.node_view`).
"""

from __future__ import annotations

from pathlib import Path

from netcc.contract.layoutfile import LAYOUT_PATH
from netcc.contract.mapfile import load_node_maps, out_node_names
from netcc.contract.programs import OBJECT_PATH
from netcc.loader.libbpf import BpfObject, prog_info
from netcc.loader.mapdata import Layout, fill_map, verdict_counters


class NodeDatapath:
    """The compiled programs with one node's maps, loaded (not attached)."""

    def __init__(self, out: Path, node: str, pin_root: str | None = None):
        self.out = Path(out)
        self.node = node
        self.layout = Layout.from_file(self.out / LAYOUT_PATH)
        self.obj = BpfObject.open(self.out / OBJECT_PATH, pin_root=pin_root)
        try:
            self.obj.load()
            self.entries = load_node_maps(self.out, node)  # map -> the node's entries
            for name, entries in self.entries.items():  # all packed before any is written
                self.layout.pack_entries(name, entries)
            fds = {name: self.obj.map_fd(name) for name in self.entries}
            for name, entries in self.entries.items():
                fill_map(fds[name], self.layout, name, entries)
        except BaseException:
            self.obj.close()
            raise

    def prog_fd(self, name: str) -> int:
        return self.obj.prog_fd(name)

    def programs(self) -> dict[str, dict]:
        """Every program of the object (pods' and uplink's), in the object's order, with
        its kernel info (verifier figures included)."""
        return {name: prog_info(self.obj.prog_fd(name)) for name in self.obj.program_names()}

    def stats(self) -> dict[int, tuple[int, int]]:
        """verdict number -> (packets, bytes), summed over CPUs; only non-zero counters."""
        counters = verdict_counters(self.obj.map_fd("netcc_stats"), self.layout, "netcc_stats")
        return {n: c for n, c in counters.items() if c[0]}

    def close(self) -> None:
        self.obj.close()

    def __enter__(self) -> NodeDatapath:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def node_names(out: Path) -> list[str]:
    """The nodes of OUT (those with a `nodes/NODE/node.json`)."""
    return out_node_names(out)


def pod_nodes(out: Path) -> dict[str, str]:
    """Pod address -> node, from every node's endpoint map."""
    found = {}
    for node in node_names(out):
        for e in load_node_maps(out, node, ["netcc_endpoints"]).get("netcc_endpoints", []):
            found[e["key"]["ip"]] = node
    return found
