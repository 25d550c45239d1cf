"""sessionAffinity: ClientIP across updates (BPF_PROG_TEST_RUN): a client stays on its
backend while that backend serves the port, whatever else the update moves, and is
re-balanced only when its own backend goes away, as with kube-proxy."""

import re
from pathlib import Path

from kernelenv import compile_to
from svcpackets import NodeMaps, fields, run
from svcspecs import SPEC

from netcc.contract.mapfile import load_node_maps
from netcc.loader.kernel_cluster import KernelCluster
from netcc.loader.libbpf import map_delete, map_keys, map_update
from netcc.loader.testrun import TC_ACT_OK, ipv4_packet

CLIENT = "10.244.1.10"
STICKY = "10.96.0.11"


def _without(spec: str, pod_ip: str) -> str:
    """The spec with the pod at `pod_ip` relabelled out of every web service."""
    text, n = re.subn(
        r"labels: \{app: web\}, ips: \[" + re.escape(pod_ip) + r"\]",
        f"labels: {{app: retired}}, ips: [{pod_ip}]",
        spec,
    )
    assert n == 1, pod_ip
    return text


def _sync(k: KernelCluster, node: str, out: Path) -> None:
    """Put another OUT's data maps onto the loaded node in place, as `netcc load apply` does
    when the layout is unchanged: upsert everything, then delete what is gone."""
    dp = k.nodes[node]
    for name, entries in load_node_maps(out, node).items():
        want = dict(dp.layout.pack_entries(name, entries))
        fd = dp.obj.map_fd(name)
        for key, value in want.items():
            map_update(fd, key, value)
        for key in map_keys(fd, dp.layout.size(dp.layout.maps[name].key)):
            if key not in want:
                map_delete(fd, key)


def _sticky_backend(k: KernelCluster, sport: int) -> tuple[str, int]:
    pkt = ipv4_packet(CLIENT, STICKY, "tcp", sport, 80, "S")
    r = run(k, "node-1", "netcc_from_container", pkt)
    assert r.retval == TC_ACT_OK
    f = fields(r.data_out)
    return f["dst"], f["dport"]


def test_kernel_affinity_is_kept_while_its_backend_stays(tmp_path):
    outs = {"all": compile_to(SPEC, tmp_path / "all")}
    first = NodeMaps(outs["all"], "node-1").expected(STICKY, 80, 6, 0, CLIENT, 0)
    outs["no-first"] = compile_to(_without(SPEC, first[0]), tmp_path / "no-first")
    moved = NodeMaps(outs["no-first"], "node-1").expected(STICKY, 80, 6, 0, CLIENT, 0)
    assert moved != first
    backends = {(b["ip"], b["port"]) for b in NodeMaps(outs["all"], "node-1").backends.values()}
    other = sorted(b for b in backends if b[1] == 8080 and b not in (first, moved))[0]
    outs["no-other"] = compile_to(_without(SPEC, other[0]), tmp_path / "no-other")
    # Maglev alone would send the client back to `first` after these updates
    assert NodeMaps(outs["no-other"], "node-1").expected(STICKY, 80, 6, 0, CLIENT, 0) == first

    with KernelCluster(outs["all"]) as k:
        assert _sticky_backend(k, 50000) == first
        # the remembered backend goes away: the client is re-balanced, and sticks there
        _sync(k, "node-1", outs["no-first"])
        assert _sticky_backend(k, 50001) == moved
        assert _sticky_backend(k, 50002) == moved
        # `first` comes back (backend numbers shift): the client stays where it is
        _sync(k, "node-1", outs["all"])
        assert _sticky_backend(k, 50003) == moved
        # another backend goes away: the client still stays
        _sync(k, "node-1", outs["no-other"])
        assert {_sticky_backend(k, s) for s in range(50004, 50010)} == {moved}
