"""`netcc why` and the review's connectivity agree with the compiled programs in the kernel.

Generated specs are compiled (`compile_spec` + `write_tree`) and every node's programs run
with BPF_PROG_TEST_RUN (`KernelCluster`). For every probe, between pods, nodes and addresses in
every ipBlock region, the verdict of `netcc why` must be the kernel's, and so must the exact
port sets the review, `diff` and `lint` are computed from.
"""

import random
from ipaddress import IPv4Address

import pytest
import yaml
from kernelenv import compile_to
from review_support import run, sample_flows, spec_of
from specgen import random_flows, random_spec

from netcc.loader.kernel_cluster import KernelCluster
from netcc.review.connectivity import Connectivity
from netcc.review.why import question, to_json, why

PROTOCOL = {6: "TCP", 17: "UDP", 132: "SCTP", 1: "ICMP"}


def name_of(cluster, ip: str) -> str:
    """Pods by `namespace/workload`, as a reviewer would ask; other addresses as they are."""
    w = cluster.workload_by_ip(IPv4Address(ip))
    return w.key if w is not None and w.ips[0] == IPv4Address(ip) else ip


@pytest.mark.parametrize("seed", range(10))
def test_why_and_connectivity_agree_with_the_kernel(seed, tmp_path):
    rng = random.Random(1000 + seed)
    doc = random_spec(rng, pods=rng.randint(3, 10), policies=rng.randint(1, 8))
    text = yaml.safe_dump(doc, sort_keys=False)
    spec = spec_of(text, "random.yaml")
    cluster = spec.cluster
    conn = Connectivity(cluster)
    flows = [(s, d, proto, port) for s, d, proto, port in random_flows(rng, doc, 150)]
    flows += [
        (str(s), str(d), proto, port)
        for s, d, proto, port in sample_flows(conn, rng, 150)
        if proto in PROTOCOL
    ]
    out = compile_to(text, tmp_path / "out")
    (tmp_path / "random.yaml").write_text(text)
    wrong = []
    with KernelCluster(out) as k:
        for i, (src, dst, proto, port) in enumerate(flows):
            kernel = k.allows(src, dst, proto, 20000 + i, port)
            q = question(
                cluster, name_of(cluster, src), name_of(cluster, dst), port or None, PROTOCOL[proto]
            )
            answer = to_json(cluster, why(cluster, q), spec.sources)["verdict"]
            symbolic = conn.allows(IPv4Address(src), IPv4Address(dst), proto, port)
            if (answer == "allow") != kernel or symbolic != kernel:
                wrong.append(
                    f"{src} -> {dst} {port}/{proto}: kernel {kernel}, why {answer}, "
                    f"connectivity {symbolic}"
                )
            if i < 15:  # and through the command line, as a user asks
                args = [
                    "why",
                    tmp_path / "random.yaml",
                    "--from",
                    name_of(cluster, src),
                    "--to",
                    name_of(cluster, dst),
                    "--protocol",
                    PROTOCOL[proto],
                    "--json",
                ]
                r = run(*args, *(["--port", port] if port else []))
                assert r.code == 0, r.stderr
                assert f'"verdict": "{"allow" if kernel else "deny"}"' in r.stdout
    assert not wrong, "\n".join(wrong[:20])
