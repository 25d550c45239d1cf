"""The compiled programs, run in the kernel, give Kubernetes' verdict for every probe.

Each scenario is compiled, loaded per node with that node's maps, and every probe is sent along
its real path (sender's egress program, then receiver's ingress program). Allowed connections
must also carry replies (stateful); denied ones must leave no state behind.
"""

import pytest
from kernelenv import compile_to
from scenarios import address, load, scenario_names, scenario_spec

from netcc.loader.kernel_cluster import KernelCluster
from netcc.semantics.policy import evaluate


@pytest.mark.parametrize("name", scenario_names())
def test_kernel_agrees_with_kubernetes(name, tmp_path):
    cluster, probes = load(name)
    out = compile_to(scenario_spec(name), tmp_path / "out")
    wrong = []
    with KernelCluster(out) as k:
        for i, p in enumerate(probes):
            src, dst = str(address(cluster, p.src)), str(address(cluster, p.dst))
            sport = 40000 + i
            allowed = k.allows(src, dst, p.proto, sport, p.port)
            model = evaluate(
                cluster, address(cluster, p.src), address(cluster, p.dst), p.proto, p.port
            ).allowed
            if allowed != p.allowed or model != p.allowed:
                wrong.append(f"{p}: kernel {allowed}, model {model}, kubernetes {p.allowed}")
                continue
            if allowed and src != dst:
                # The reply travels back along the reverse path and must pass.
                if p.proto == 1:  # echo reply: same identifier
                    reply = k.allows(dst, src, 1, sport, 0, icmp_type=0)
                else:
                    reply = k.allows(dst, src, p.proto, p.port, sport, tcp_flags="SA")
                if not reply:
                    wrong.append(f"{p}: reply dropped")
    assert not wrong, "\n".join(wrong)
