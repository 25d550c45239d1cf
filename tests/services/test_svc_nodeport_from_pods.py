"""Services, hardened (BPF_PROG_TEST_RUN): `netcc verify` loads every program, sessionAffinity
survives updates that keep the client's backend, and pods reach NodePorts through node
addresses, as with kube-proxy."""

import re
from pathlib import Path

import pytest
from kernelenv import compile_to
from svcpackets import NodeMaps, checksums_ok, fields
from svcspecs import SPEC

from netcc.loader.kernel_cluster import KernelCluster
from netcc.loader.libbpf import map_delete, map_keys, map_update, prog_test_run
from netcc.loader.mapdata import load_map_file
from netcc.loader.testrun import TC_ACT_OK, TC_ACT_SHOT, ipv4_packet
from netcc.loader.verify import format_report, verify

CLIENT = "10.244.1.10"
NODE1, NODE2 = "192.168.50.11", "192.168.50.12"
STICKY = "10.96.0.11"
ALL_PROGRAMS = sorted(
    ["netcc_from_container", "netcc_to_container", "netcc_from_uplink", "netcc_to_uplink"]
)


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return compile_to(SPEC, tmp_path_factory.mktemp("hard") / "out")


def run(k, node, program, pkt):
    return prog_test_run(k.nodes[node].prog_fd(program), pkt)


def test_kernel_verify_reports_every_program(out):
    report = verify(out)
    for node, r in report["nodes"].items():
        assert sorted(r["programs"]) == ALL_PROGRAMS, node
        assert all(p["verified_insns"] > 0 for p in r["programs"].values())
        assert r["map_entries"]["netcc_lb_members"] > 0
    text = format_report(report)
    assert "netcc_from_uplink" in text and "netcc_to_uplink" in text


# --- sessionAffinity across updates --------------------------------------------------------


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
    for path in sorted((out / "nodes" / node / "maps").glob("*.json")):
        name, entries = load_map_file(path)
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


# --- pods to NodePorts through node addresses ----------------------------------------------


@pytest.fixture
def k(out):
    with KernelCluster(out) as cluster:
        yield cluster


@pytest.mark.parametrize("node_addr", [NODE1, NODE2])
def test_kernel_pod_reaches_a_nodeport_through_a_node_address(k, out, node_addr):
    maps = NodeMaps(out, "node-1")
    seen = set()
    for sport in range(51000, 51030):
        pkt = ipv4_packet(CLIENT, node_addr, "tcp", sport, 30081, "S", payload=b"hi")
        r = run(k, "node-1", "netcc_from_container", pkt)
        assert r.retval == TC_ACT_OK
        f = fields(r.data_out)
        want = maps.expected("0.0.0.0", 30081, 6, 2, CLIENT, sport)
        assert (f["src"], f["sport"], f["dst"], f["dport"]) == (CLIENT, sport, *want)
        assert checksums_ok(r.data_out)
        seen.add(want)
        node = "node-1" if want[0].startswith("10.244.1.") else "node-2"
        assert run(k, node, "netcc_to_container", r.data_out).retval == TC_ACT_OK
        # the reply comes back from the address and nodePort the pod connected to
        reply = ipv4_packet(want[0], CLIENT, "tcp", want[1], sport, "SA")
        back = run(k, "node-1", "netcc_to_container", reply)
        assert back.retval == TC_ACT_OK and checksums_ok(back.data_out)
        b = fields(back.data_out)
        assert (b["src"], b["sport"], b["dst"], b["dport"]) == (node_addr, 30081, CLIENT, sport)
    assert seen == {("10.244.1.20", 8080), ("10.244.2.20", 8080), ("10.244.2.21", 9090)}


def test_kernel_pod_to_a_local_policy_nodeport_uses_every_backend(k, out):
    """externalTrafficPolicy Local is for external clients: a pod reaching the NodePort
    through node-1's address is balanced over every backend (kube-proxy: pod traffic to
    external destinations is subject to neither traffic policy), node-2's included."""
    reached = set()
    for sport in range(52000, 52040):
        pkt = ipv4_packet(CLIENT, NODE1, "tcp", sport, 30080, "S")
        r = run(k, "node-1", "netcc_from_container", pkt)
        assert r.retval == TC_ACT_OK
        reached.add(fields(r.data_out)["dst"])
    assert reached == {"10.244.1.20", "10.244.2.20", "10.244.2.21"}


@pytest.mark.parametrize(
    ("dst", "dport"),
    [
        (NODE1, 30099),  # in the range, but no service's nodePort
        (NODE1, 8080),  # a node address, outside the range
        ("198.51.100.7", 30081),  # a nodePort, but not on a node's address
        ("10.244.2.20", 30081),  # nor on a pod's
    ],
)
def test_kernel_other_destinations_are_not_translated(k, dst, dport):
    pkt = ipv4_packet(CLIENT, dst, "tcp", 53000, dport, "S")
    r = run(k, "node-1", "netcc_from_container", pkt)
    assert r.retval in (TC_ACT_OK, TC_ACT_SHOT)  # policy decides; the packet is untouched
    assert (fields(r.data_out)["dst"], fields(r.data_out)["dport"]) == (dst, dport)
