"""`netcc why` through a service agrees with the compiled programs in the kernel: for every pod
and service port, many connections are sent through the client's `netcc_from_container`
(translation and egress policy) and the chosen backend's `netcc_to_container` (ingress policy);
what the kernel lets through to each backend is what `why` says of that backend."""

import pytest
from kernelenv import compile_to
from svcpackets import fields, run
from svcspecs import SPEC, why

from netcc.frontend import parse_spec
from netcc.loader.testrun import TC_ACT_OK, TC_ACT_REDIRECT, ipv4_packet


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return compile_to(SPEC, tmp_path_factory.mktemp("why") / "out")


@pytest.fixture(scope="module")
def cluster():
    return parse_spec(SPEC.encode(), "spec.yaml")[0]


def test_kernel_why_through_cluster_ips_matches_the_datapath(k, out, cluster):
    pods = {w.key: w for w in cluster.workloads if w.ips}
    checked = 0
    for service in cluster.services:
        for sp in service.ports:
            if sp.protocol not in ("TCP", "UDP"):
                continue
            proto = sp.protocol.lower()
            for client in pods.values():
                ip = str(client.ips[0])
                answer = why(cluster, client.key, str(service.cluster_ip), sp.port, sp.protocol)
                expected = {b["address"]: b["verdict"] == "allow" for b in answer["backends"]}
                seen: dict[str, bool] = {}
                for sport in range(52000, 52040):
                    pkt = ipv4_packet(ip, str(service.cluster_ip), proto, sport, sp.port, "S")
                    r = run(k, client.node, "netcc_from_container", pkt)
                    if not expected:  # no backend: dropped, whatever the policy
                        assert r.retval != TC_ACT_OK
                        continue
                    if r.retval == TC_ACT_REDIRECT:  # hairpin: back into the client itself
                        seen[ip] = True
                        continue
                    f = fields(r.data_out)
                    backend = next(w for w in pods.values() if str(w.ips[0]) == f["dst"])
                    ok = r.retval == TC_ACT_OK
                    if ok:
                        r2 = run(k, backend.node, "netcc_to_container", r.data_out)
                        ok = r2.retval == TC_ACT_OK
                    assert seen.setdefault(f["dst"], ok) == ok, (client.key, service.key, f)
                for address, ok in seen.items():
                    assert ok == expected[address], (client.key, service.key, address, answer)
                    checked += 1
    assert checked >= 30
