"""Flow events in the kernel: what the datapath writes into `netcc_events`, and what it does not.

Every new connection the policy allows and every dropped packet writes one record naming its
verdict; a packet of a tracked connection writes none; a flood is cut by the per-CPU budget,
which counts what it cuts and never changes a verdict. Differential: for random specs and
flows, every event's verdict is the one the Python model gives for that side of the flow.
"""

import json
import random
import time
from ipaddress import IPv4Address
from pathlib import Path

import pytest
import yaml
from kernelenv import compile_to
from specgen import random_flows, random_spec

from netcc.contract.events import (
    BUDGET_MAP,
    EVENT_BURST,
    EVENT_DROP,
    EVENT_NEW,
    EVENT_NODEPORT,
    EVENT_RATE,
    EVENTS_MAP,
)
from netcc.frontend import parse_spec
from netcc.loader.kernel_cluster import KernelCluster, ct_verdict
from netcc.loader.libbpf import RingBuffer
from netcc.loader.mapdata import event_counters
from netcc.loader.maps import BpfMap
from netcc.semantics.policy import evaluate

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shop.yaml"
FRONTEND, CART, CACHE = "10.244.1.10", "10.244.2.10", "10.244.2.11"
DIR = {"ingress": 1, "egress": 2}


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return compile_to(EXAMPLE.read_bytes(), tmp_path_factory.mktemp("shop") / "out")


@pytest.fixture
def k(out):
    with KernelCluster(out) as cluster:
        yield cluster


def drain(k: KernelCluster, node: str) -> list[dict]:
    """Every event the node's datapath wrote since the last drain, decoded."""
    dp = k.nodes[node]
    got: list[bytes] = []
    with RingBuffer(dp.obj.map_fd(EVENTS_MAP), got.append) as ring:
        ring.consume()
    return [dp.layout.unpack("flow_event", raw) for raw in got]


def budget(k: KernelCluster, node: str) -> dict[str, int]:
    """The node's event counters, summed over CPUs."""
    dp = k.nodes[node]
    return event_counters(BpfMap.borrow(dp.obj.map_fd(BUDGET_MAP), BUDGET_MAP, dp.layout))


def verdicts(out: Path) -> dict[int, dict]:
    return {v["number"]: v for v in json.loads((out / "verdicts.json").read_text())["verdicts"]}


def test_new_connection_writes_one_event_per_side_and_established_none(k, out):
    assert k.allows(FRONTEND, CART, 6, 41000, 7000)
    (egress,) = drain(k, "node-1")
    (ingress,) = drain(k, "node-2")
    for e, direction in ((egress, "egress"), (ingress, "ingress")):
        assert e["kind"] == EVENT_NEW and e["dir"] == DIR[direction]
        assert (e["saddr"], e["daddr"], e["sport"], e["dport"], e["proto"]) == (
            FRONTEND,
            CART,
            41000,
            7000,
            6,
        )
        assert e["svc_addr"] == "0.0.0.0" and e["tcp_flags"] & 0x02 and e["len"] > 0
    local = {"egress": (FRONTEND, CART, 41000, 7000), "ingress": (CART, FRONTEND, 7000, 41000)}
    for e, direction, node in ((egress, "egress", "node-1"), (ingress, "ingress", "node-2")):
        assert e["verdict"] == ct_verdict(k, node, *local[direction], 6)
        v = verdicts(out)[e["verdict"]]
        assert v["action"] == "allow" and v["direction"] == direction
    # the rest of the connection is the established path: no event at all, either way
    for i in range(50):
        assert k.allows(FRONTEND, CART, 6, 41000, 7000, tcp_flags="A", payload=b"x" * i)
        assert k.allows(CART, FRONTEND, 6, 7000, 41000, tcp_flags="A")
    assert drain(k, "node-1") == [] and drain(k, "node-2") == []


def test_dropped_packets_write_the_deny(k, out):
    for _ in range(3):  # a SYN and its retransmissions: each dropped packet is an event
        assert not k.allows(FRONTEND, CACHE, 6, 41001, 6379)
    events = drain(k, "node-1")
    assert len(events) == 3
    for e in events:
        assert e["kind"] == EVENT_DROP and e["dir"] == DIR["egress"]
        assert (e["saddr"], e["daddr"], e["dport"]) == (FRONTEND, CACHE, 6379)
        v = verdicts(out)[e["verdict"]]
        assert v["action"] == "drop" and v["pod"] == "shop/frontend"
        assert v["direction"] == "egress"
    assert drain(k, "node-2") == []  # never reached the cache's node
    assert budget(k, "node-1")["sent"] == 3


def test_reserved_drops_write_their_reason(k, out):
    names = {v["name"]: n for n, v in verdicts(out).items()}
    assert not k.run(
        "node-1", "netcc_from_container", k.packet("10.244.1.99", CART, 6, 1, 7000)
    )  # no such pod on node-1: spoofed
    (e,) = drain(k, "node-1")
    assert e["verdict"] == names["DROP_SPOOFED"] and e["kind"] == EVENT_DROP


def test_a_flood_is_cut_by_the_budget_and_loses_no_verdict(k, out):
    """One CPU judging far more dropped packets than its burst in one test run: every packet
    is still dropped and counted under its deny, only the events beyond the budget are cut,
    and every cut one is counted."""
    dp = k.nodes["node-1"]
    runs = EVENT_BURST * 3
    pkt = k.packet(FRONTEND, CACHE, 6, 41002, 6379)
    before = dict(dp.stats())
    start = time.monotonic_ns()
    from netcc.loader.libbpf import prog_test_run

    res = prog_test_run(dp.prog_fd("netcc_from_container"), pkt, repeat=runs)
    elapsed = time.monotonic_ns() - start
    assert res.retval == 2  # TC_ACT_SHOT
    deny = next(
        n
        for n, v in verdicts(out).items()
        if v.get("pod") == "shop/frontend" and v["direction"] == "egress" and v["action"] == "drop"
    )
    assert dp.stats()[deny][0] - before.get(deny, (0, 0))[0] == runs  # no verdict lost
    counters = budget(k, "node-1")
    events = drain(k, "node-1")
    assert counters["sent"] == len(events)
    assert counters["sent"] + counters["lost_budget"] + counters["lost_ring"] == runs
    # at most the burst plus what the budget refilled while the runs lasted
    # The datapath's clock is the coarse one (a jiffy, at most 10 ms at HZ=100, behind): it
    # may have moved on by one tick more than `elapsed` shows.
    refilled = (elapsed + 2 * 10_000_000) * EVENT_RATE // 1_000_000_000 + 1
    assert counters["sent"] <= EVENT_BURST + refilled
    assert counters["lost_budget"] >= runs - EVENT_BURST - refilled
    assert all(e["verdict"] == deny for e in events)


@pytest.mark.parametrize("seed", range(4))
def test_events_agree_with_the_model(seed, tmp_path):
    """Random specs and flows: each side's event names the verdict the model gives it (a rule
    that allows that side, the reserved allow, or the pod's default deny)."""
    rng = random.Random(7000 + seed)
    spec = random_spec(rng)
    flows = random_flows(rng, spec, 120)
    text = yaml.safe_dump(spec, sort_keys=False)
    cluster, _ = parse_spec(text, "random.yaml")
    out = compile_to(text, tmp_path / "out")
    table = verdicts(out)
    rules = {
        (v["policy"], v["direction"], v["index"]): n for n, v in table.items() if "policy" in v
    }
    reserved = {"self": {4}, "host": {3}, "unisolated": {1, 2}}
    wrong = []
    with KernelCluster(out) as k:
        for i, (src, dst, proto, port) in enumerate(flows):
            model = evaluate(cluster, IPv4Address(src), IPv4Address(dst), proto, port)
            for node in k.nodes:
                drain(k, node)
            hops = k.send(src, dst, proto, 30000 + i, port)
            written = {node: drain(k, node) for node in {h.node for h in hops}}
            for hop in hops:
                direction = "egress" if hop.program == "netcc_from_container" else "ingress"
                side = model.egress if direction == "egress" else model.ingress
                events = [e for e in written[hop.node] if e["dir"] == DIR[direction]]
                if side is None:
                    continue
                if len(events) != 1:
                    wrong.append(f"{src}->{dst}:{port}/{proto} {direction}: {len(events)} events")
                    continue
                e = events[0]
                if side.allowed:
                    want = (
                        reserved[side.reason]
                        if side.reason in reserved
                        else {rules[(r.policy, r.direction, r.index)] for r in side.rules}
                    )
                    ok = e["kind"] == EVENT_NEW and e["verdict"] in want
                else:
                    v = table[e["verdict"]]
                    ok = (
                        e["kind"] == EVENT_DROP
                        and v.get("pod") == side.pod
                        and v.get("direction") == direction
                    )
                if not ok:
                    wrong.append(f"{src}->{dst}:{port}/{proto} {direction}: {e}, model {side}")
    assert not wrong, "\n".join(wrong[:20])


def test_events_off_write_nothing_and_enforce_the_same(tmp_path):
    spec = yaml.safe_load(EXAMPLE.read_text())
    spec["spec"]["observability"] = {"flowEvents": {"enabled": False}}
    out = compile_to(yaml.safe_dump(spec, sort_keys=False), tmp_path / "out")
    with KernelCluster(out) as k:
        assert k.allows(FRONTEND, CART, 6, 41000, 7000)
        assert not k.allows(FRONTEND, CACHE, 6, 41001, 6379)
        for node in k.nodes:
            assert drain(k, node) == []
            assert budget(k, node) == {"sent": 0, "lost_budget": 0, "lost_ring": 0}


def test_service_translations_name_the_service(k, out):
    """A pod's connection to a cluster IP: the event has the backend as destination and the
    service address it was sent to; a NodePort flow at the uplink: a translation event."""
    assert k.run("node-1", "netcc_from_container", k.packet(FRONTEND, "10.96.0.20", 6, 41005, 7000))
    (e,) = drain(k, "node-1")
    assert e["kind"] == EVENT_NEW and (e["daddr"], e["dport"]) == (CART, 7000)
    assert (e["svc_addr"], e["svc_port"]) == ("10.96.0.20", 7000)
    node1 = yaml.safe_load(EXAMPLE.read_text())["spec"]["nodes"][0]["address"]
    assert k.run("node-1", "netcc_from_uplink", k.packet("192.0.2.7", node1, 6, 41006, 30080))
    (e,) = drain(k, "node-1")
    assert e["kind"] == EVENT_NODEPORT and e["dir"] == 3
    assert (e["saddr"], e["daddr"], e["dport"]) == ("192.0.2.7", FRONTEND, 8080)
    assert (e["svc_addr"], e["svc_port"]) == (node1, 30080)
    assert verdicts(out)[e["verdict"]]["name"] == "ALLOW_NODEPORT"
