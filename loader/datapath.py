"""One node's datapath in the kernel: the object loaded, its maps filled from `OUT`.

Reads only the artifact directory (never the spec): `bpf/datapath.o`, `bpf/layout.json` and
`nodes/NODE/maps/*.json`.
"""

from __future__ import annotations

from pathlib import Path

from netcc.contract.layoutfile import LAYOUT_PATH
from netcc.contract.mapfile import MAP_PATH, MAPS_DIR, load_map_file
from netcc.contract.programs import OBJECT_PATH
from netcc.loader.libbpf import BpfObject, prog_info
from netcc.loader.mapdata import Layout, fill_maps, verdict_counters


class NodeDatapath:
    """The compiled programs with one node's maps, loaded (not attached)."""

    def __init__(self, out: Path, node: str, pin_root: str | None = None):
        self.out = Path(out)
        self.node = node
        self.layout = Layout.from_file(self.out / LAYOUT_PATH)
        self.obj = BpfObject.open(self.out / OBJECT_PATH, pin_root=pin_root)
        try:
            self.obj.load()
            fill_maps(self.obj, self.layout, self.out / MAPS_DIR.format(node=node))
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
    return sorted(p.name for p in (Path(out) / "nodes").iterdir() if p.is_dir())


def pod_nodes(out: Path) -> dict[str, str]:
    """Pod address -> node, from every node's endpoint map."""
    found = {}
    for node in node_names(out):
        _, entries = load_map_file(Path(out) / MAP_PATH.format(node=node, map="netcc_endpoints"))
        for e in entries:
            found[e["key"]["ip"]] = node
    return found
