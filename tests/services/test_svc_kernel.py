"""Services in the kernel (BPF_PROG_TEST_RUN): translation, checksums, reverse translation,
affinity, NodePort, drops, policy after translation, and the reference's backend choice."""

import random

import pytest
from kernelenv import compile_to
from svcpackets import NodeMaps, checksums_ok, fields, run, verdict_count
from svcspecs import SPEC

from netcc.loader.kernel_cluster import KernelCluster
from netcc.loader.libbpf import map_update
from netcc.loader.testrun import TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT, ipv4_packet
from netcc.semantics.lb import nat_ports

CLIENT, DENIED, STRANGER = "10.244.1.10", "10.244.1.11", "10.244.1.12"
EXTERNAL = "198.51.100.7"
NODE1 = "192.168.50.11"


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return compile_to(SPEC, tmp_path_factory.mktemp("svc") / "out")


def test_kernel_dnat_rewrites_with_right_checksums(k, out):
    maps = NodeMaps(out, "node-1")
    seen = set()
    for sport in range(40000, 40040):
        pkt = ipv4_packet(CLIENT, "10.96.0.10", "tcp", sport, 80, "S", payload=b"hello")
        r = run(k, "node-1", "netcc_from_container", pkt)
        assert r.retval == TC_ACT_OK
        f = fields(r.data_out)
        assert (f["dst"], f["dport"]) == maps.expected("10.96.0.10", 80, 6, 0, CLIENT, sport)
        assert (f["src"], f["sport"]) == (CLIENT, sport)
        assert checksums_ok(r.data_out)
        seen.add((f["dst"], f["dport"]))
    # every backend is reached, each on its own named port
    assert seen == {("10.244.1.20", 8080), ("10.244.2.20", 8080), ("10.244.2.21", 9090)}
    udp = ipv4_packet(CLIENT, "10.96.0.10", "udp", 5000, 53, payload=b"query")
    r = run(k, "node-1", "netcc_from_container", udp)
    f = fields(r.data_out)
    assert r.retval == TC_ACT_OK and f["dport"] == 5353 and checksums_ok(r.data_out)


def test_kernel_replies_are_translated_back(k, out):
    pkt = ipv4_packet(CLIENT, "10.96.0.10", "tcp", 41000, 80, "S")
    fwd = fields(run(k, "node-1", "netcc_from_container", pkt).data_out)
    reply = ipv4_packet(fwd["dst"], CLIENT, "tcp", fwd["dport"], 41000, "SA", payload=b"x" * 9)
    r = run(k, "node-1", "netcc_to_container", reply)
    assert r.retval == TC_ACT_OK
    back = fields(r.data_out)
    assert (back["src"], back["sport"], back["dst"], back["dport"]) == (
        "10.96.0.10",
        80,
        CLIENT,
        41000,
    )
    assert checksums_ok(r.data_out)
    udp = ipv4_packet(CLIENT, "10.96.0.10", "udp", 5001, 53)
    fwd = fields(run(k, "node-1", "netcc_from_container", udp).data_out)
    reply = ipv4_packet(fwd["dst"], CLIENT, "udp", fwd["dport"], 5001, payload=b"answer")
    r = run(k, "node-1", "netcc_to_container", reply)
    assert fields(r.data_out)["src"] == "10.96.0.10" and fields(r.data_out)["sport"] == 53
    assert checksums_ok(r.data_out)


def test_kernel_flow_stays_on_its_backend_when_slots_move(k, out):
    dp = k.nodes["node-1"]
    maps = NodeMaps(out, "node-1")
    pkt = ipv4_packet(CLIENT, "10.96.0.10", "tcp", 42000, 80, "S")
    first = fields(run(k, "node-1", "netcc_from_container", pkt).data_out)["dst"]
    # every slot of the row now points at another backend
    svc = maps.services[("10.96.0.10", 80, 6, 0)]
    other = next(i for i, b in maps.backends.items() if b["ip"] != first and b["port"] == 8080)
    size = len(maps.rows[svc["row"]])
    key = dp.layout.pack("lb_row_key", {"id": svc["row"]})
    map_update(
        dp.obj.map_fd("netcc_lb_maglev"),
        key,
        dp.layout.pack("lb_row", {"backends": [other] * size}),
    )
    ack = ipv4_packet(CLIENT, "10.96.0.10", "tcp", 42000, 80, "A", payload=b"data")
    assert fields(run(k, "node-1", "netcc_from_container", ack).data_out)["dst"] == first
    new = ipv4_packet(CLIENT, "10.96.0.10", "tcp", 42001, 80, "S")
    assert (
        fields(run(k, "node-1", "netcc_from_container", new).data_out)["dst"]
        == maps.backends[other]["ip"]
    )


def test_kernel_session_affinity_keeps_a_client_on_one_backend(k, out):
    maps = NodeMaps(out, "node-1")
    want = maps.expected("10.96.0.11", 80, 6, 0, CLIENT, 0)
    got = set()
    for sport in range(43000, 43020):
        pkt = ipv4_packet(CLIENT, "10.96.0.11", "tcp", sport, 80, "S")
        f = fields(run(k, "node-1", "netcc_from_container", pkt).data_out)
        got.add((f["dst"], f["dport"]))
    assert got == {want}
    # the affinity entry wins over Maglev: point it elsewhere, new flows follow it
    dp = k.nodes["node-1"]
    fd = dp.obj.map_fd("netcc_lb_affinity")
    svc = maps.services[("10.96.0.11", 80, 6, 0)]
    key = dp.layout.pack("lb_affinity_key", {"row": svc["row"], "client": CLIENT})
    members = [maps.backends[i] for i in sorted(set(maps.rows[svc["row"]]))]
    other = next(b for b in members if (b["ip"], b["port"]) != want)
    value = {"expires": 2**63, "ip": other["ip"], "port": other["port"]}
    map_update(fd, key, dp.layout.pack("lb_affinity", value))
    pkt = ipv4_packet(CLIENT, "10.96.0.11", "tcp", 43100, 80, "S")
    assert fields(run(k, "node-1", "netcc_from_container", pkt).data_out)["dst"] == other["ip"]
    # naming an address that is no backend of the port (netcc_lb_members): ignored
    map_update(fd, key, dp.layout.pack("lb_affinity", value | {"ip": "10.244.2.30"}))
    pkt = ipv4_packet(CLIENT, "10.96.0.11", "tcp", 43101, 80, "S")
    assert fields(run(k, "node-1", "netcc_from_container", pkt).data_out)["dst"] == want[0]


def test_kernel_service_without_backend_drops_with_named_verdict(k, out):
    before = verdict_count(k, "node-1", "DROP_NO_BACKEND", out)
    pkt = ipv4_packet(CLIENT, "10.96.0.12", "tcp", 44000, 80, "S")
    assert run(k, "node-1", "netcc_from_container", pkt).retval == TC_ACT_SHOT
    assert verdict_count(k, "node-1", "DROP_NO_BACKEND", out) == before + 1


def test_kernel_policy_applies_after_translation(k, out):
    # denied egress: the pod's default deny drops the translated packet
    pkt = ipv4_packet(DENIED, "10.96.0.10", "tcp", 45000, 80, "S")
    assert run(k, "node-1", "netcc_from_container", pkt).retval == TC_ACT_SHOT
    # a pod the backends' ingress does not allow: passes its own egress, the backend drops it
    for sport in range(45100, 45110):
        pkt = ipv4_packet(STRANGER, "10.96.0.10", "tcp", sport, 80, "S")
        r = run(k, "node-1", "netcc_from_container", pkt)
        assert r.retval == TC_ACT_OK
        f = fields(r.data_out)
        node = "node-1" if f["dst"].startswith("10.244.1.") else "node-2"
        assert run(k, node, "netcc_to_container", r.data_out).retval == TC_ACT_SHOT
        # the allowed client passes both
        ok = ipv4_packet(CLIENT, "10.96.0.10", "tcp", sport, 80, "S")
        r = run(k, "node-1", "netcc_from_container", ok)
        assert r.retval == TC_ACT_OK
        node = "node-1" if fields(r.data_out)["dst"].startswith("10.244.1.") else "node-2"
        assert run(k, node, "netcc_to_container", r.data_out).retval == TC_ACT_OK


def test_kernel_nodeport_local_keeps_the_client_address(k, out):
    pkt = ipv4_packet(EXTERNAL, NODE1, "tcp", 5000, 30080, "S", payload=b"GET")
    r = run(k, "node-1", "netcc_from_uplink", pkt)
    assert r.retval == TC_ACT_OK
    f = fields(r.data_out)
    assert (f["src"], f["dst"], f["dport"]) == (EXTERNAL, "10.244.1.20", 8080)
    assert checksums_ok(r.data_out)
    assert run(k, "node-1", "netcc_to_container", r.data_out).retval == TC_ACT_OK  # ipBlock allows
    reply = ipv4_packet("10.244.1.20", EXTERNAL, "tcp", 8080, 5000, "SA")
    r = run(k, "node-1", "netcc_to_uplink", reply)
    f = fields(r.data_out)
    assert (f["src"], f["sport"], f["dst"], f["dport"]) == (NODE1, 30080, EXTERNAL, 5000)
    assert checksums_ok(r.data_out)
    # not a NodePort: untouched
    other = ipv4_packet(EXTERNAL, NODE1, "tcp", 5000, 22, "S")
    r = run(k, "node-1", "netcc_from_uplink", other)
    assert r.retval == TC_ACT_OK and r.data_out == other


def test_kernel_nodeport_cluster_to_a_remote_backend_uses_the_node_address(k, out):
    maps = NodeMaps(out, "node-1")
    sport = next(
        s
        for s in range(6000, 6100)
        if maps.expected(NODE1, 30081, 6, 1, EXTERNAL, s)[0].startswith("10.244.2.")
    )
    backend = maps.expected(NODE1, 30081, 6, 1, EXTERNAL, sport)
    pkt = ipv4_packet(EXTERNAL, NODE1, "tcp", sport, 30081, "S")
    r = run(k, "node-1", "netcc_from_uplink", pkt)
    assert r.retval in (TC_ACT_OK, TC_ACT_REDIRECT)  # redirect when the FIB knows the way
    f = fields(r.data_out)
    port = nat_ports(EXTERNAL, sport, 30081, backend[0])[0]  # the node's source port
    assert (f["src"], f["sport"], f["dst"], f["dport"]) == (NODE1, port, *backend)
    assert checksums_ok(r.data_out)
    reply = ipv4_packet(backend[0], NODE1, "tcp", backend[1], port, "SA")
    r = run(k, "node-1", "netcc_from_uplink", reply)
    f = fields(r.data_out)
    assert (f["src"], f["sport"], f["dst"], f["dport"]) == (NODE1, 30081, EXTERNAL, sport)
    assert checksums_ok(r.data_out)


def _random_spec(rng: random.Random) -> str:
    nodes = rng.randint(1, 3)
    lines = [
        "apiVersion: netcc.io/v1alpha1",
        "kind: ClusterNetwork",
        "metadata: {name: rnd}",
        "spec:",
        "  podCIDR: 10.244.0.0/16",
        "  serviceCIDR: 10.96.0.0/16",
        "  nodes:",
    ]
    lines += [
        f"    - {{name: n{i}, address: 192.168.60.{i + 1}, podCIDR: 10.244.{i}.0/24}}"
        for i in range(nodes)
    ]
    lines += ["  namespaces: [{name: a}]", "  workloads:"]
    for i in range(rng.randint(2, 24)):
        app = rng.choice("xyz")
        lines.append(
            f"    - {{name: w{i}, namespace: a, node: n{i % nodes}, labels: {{app: {app}}}, "
            f"ips: [10.244.{i % nodes}.{10 + i}], "
            f"ports: [{{name: p, port: {rng.randint(1, 9000)}}}]}}"
        )
    lines.append("  services:")
    for j, app in enumerate("xyz"):
        affinity = "sessionAffinity: ClientIP, " if rng.random() < 0.3 else ""
        lines.append(
            f"    - {{name: s{j}, namespace: a, type: ClusterIP, clusterIP: 10.96.0.{j + 1}, "
            f"{affinity}selector: {{app: {app}}}, ports: [{{name: h, port: 80, targetPort: p}}]}}"
        )
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kernel_backend_choice_equals_reference(seed, tmp_path):
    rng = random.Random(seed)
    out = compile_to(_random_spec(rng), tmp_path / "out")
    wrong = []
    with KernelCluster(out) as k:
        node = sorted(k.nodes)[0]
        maps = NodeMaps(out, node)
        clients = [ip for ip, n in k.pods.items() if n == node]
        for _ in range(300):
            vip = f"10.96.0.{rng.randint(1, 3)}"
            client, sport = rng.choice(clients), rng.randint(1024, 65535)
            svc = maps.services[(vip, 80, 6, 0)]
            pkt = ipv4_packet(client, vip, "tcp", sport, 80, "S")
            r = run(k, node, "netcc_from_container", pkt)
            if not svc["count"]:
                assert r.retval == TC_ACT_SHOT
                continue
            want = maps.expected(vip, 80, 6, 0, client, sport)
            # hairpin: masqueraded and sent back into the pod (test_svc_hairpin)
            assert r.retval == (TC_ACT_REDIRECT if want[0] == client else TC_ACT_OK)
            f = fields(r.data_out)
            if (f["dst"], f["dport"]) != want:
                wrong.append(f"{client}:{sport} -> {vip}: kernel {f['dst']}, reference {want}")
    assert not wrong, wrong[:5]
