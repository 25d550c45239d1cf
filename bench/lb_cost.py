"""Per-packet cost of the service path against the plain policy path, with BPF_PROG_TEST_RUN.

One spec (a client pod, a `web` service with three backends on two nodes, a NodePort), node-1's
programs loaded with its maps. Every figure is the median of 5 kernel-measured means over
--flows/5 runs of one packet each (repeat=1: the service path rewrites the packet in place, so
a repeated run would measure its own output; one-run figures include the test-run overhead,
the same in both columns):
- new flow: TCP SYNs with distinct source ports, one run each (repeat=1), mean over --flows;
  plain = client -> backend pod directly, service = client -> cluster IP (Maglev choice, DNAT,
  two conntrack entries);
- established: one connection's ACK; plain hits the per-CPU flow cache,
  service takes the service lookup, the original-tuple conntrack entry, the translated-tuple
  conntrack entry and the rewrite (translated flows bypass the flow cache);
- reply: the backend's ACK into the client pod (plain: flow cache; service: conntrack and the
  reverse rewrite);
- NodePort established: an external client's ACK at the uplink (netcc_lb_nat lookup + DNAT).
Run as root: `python3 bench/lb_cost.py [--flows N]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import header, pin_cpu, table

from netcc.loader.kernel_cluster import KernelCluster
from netcc.loader.libbpf import prog_test_run
from netcc.loader.testrun import ipv4_packet
from netcc.pipeline import compile_spec
from netcc.write.tree import write_tree

SPEC = """
apiVersion: netcc.io/v1alpha1
kind: ClusterNetwork
metadata: {name: lbbench}
spec:
  podCIDR: 10.244.0.0/16
  serviceCIDR: 10.96.0.0/16
  nodes:
    - {name: node-1, address: 192.168.50.11, podCIDR: 10.244.1.0/24}
    - {name: node-2, address: 192.168.50.12, podCIDR: 10.244.2.0/24}
  namespaces: [{name: app}]
  workloads:
    - {name: client, namespace: app, node: node-1, labels: {role: client}, ips: [10.244.1.10]}
    - {name: web-1, namespace: app, node: node-1, labels: {app: web}, ips: [10.244.1.20],
       ports: [{name: http, port: 8080}]}
    - {name: web-2, namespace: app, node: node-2, labels: {app: web}, ips: [10.244.2.20],
       ports: [{name: http, port: 8080}]}
    - {name: web-3, namespace: app, node: node-2, labels: {app: web}, ips: [10.244.2.21],
       ports: [{name: http, port: 8080}]}
  services:
    - {name: web, namespace: app, type: NodePort, clusterIP: 10.96.0.10, selector: {app: web},
       externalTrafficPolicy: Local,
       ports: [{name: http, port: 80, targetPort: http, nodePort: 30080}]}
  policies:
    - apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: client-out, namespace: app}
      spec:
        podSelector: {matchLabels: {role: client}}
        egress: [{to: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 8080}]}]
"""
CLIENT, VIP, BACKEND = "10.244.1.10", "10.96.0.10", "10.244.1.20"


def _median_of(fn, n: int = 5) -> float:
    return statistics.median(fn() for _ in range(n))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flows", type=int, default=2000)
    args = ap.parse_args()
    cpu = pin_cpu()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        write_tree(compile_spec(SPEC.encode(), "lbbench.yaml"), out)
        with KernelCluster(out) as k:
            egress = k.nodes["node-1"].prog_fd("netcc_from_container")
            ingress = k.nodes["node-1"].prog_fd("netcc_to_container")
            uplink = k.nodes["node-1"].prog_fd("netcc_from_uplink")
            port = iter(range(1024, 65536))

            def new_flows(dst: str, dport: int) -> float:
                runs = [
                    prog_test_run(egress, ipv4_packet(CLIENT, dst, "tcp", next(port), dport, "S"))
                    for _ in range(args.flows // 5)
                ]
                return statistics.mean(r.duration_ns for r in runs)

            def established(fd: int, pkt: bytes, setup: tuple[int, bytes]) -> float:
                # repeat=1 per run: a repeated run would see the packet it rewrote itself
                prog_test_run(*setup)
                runs = [prog_test_run(fd, pkt).duration_ns for _ in range(args.flows // 5)]
                return statistics.mean(runs)

            def svc_backend(sport: int) -> str:
                syn = ipv4_packet(CLIENT, VIP, "tcp", sport, 80, "S")
                r = prog_test_run(egress, syn)
                return ".".join(str(b) for b in r.data_out[30:34])

            rows = []
            plain_new = _median_of(lambda: new_flows(BACKEND, 8080))
            svc_new = _median_of(lambda: new_flows(VIP, 80))
            rows.append(["new flow (SYN, pod egress)", f"{plain_new:.0f}", f"{svc_new:.0f}"])
            p_syn = ipv4_packet(CLIENT, BACKEND, "tcp", 50000, 8080, "S")
            p_ack = ipv4_packet(CLIENT, BACKEND, "tcp", 50000, 8080, "A", payload=b"x" * 64)
            s_syn = ipv4_packet(CLIENT, VIP, "tcp", 50001, 80, "S")
            s_ack = ipv4_packet(CLIENT, VIP, "tcp", 50001, 80, "A", payload=b"x" * 64)
            plain_est = _median_of(lambda: established(egress, p_ack, (egress, p_syn)))
            svc_est = _median_of(lambda: established(egress, s_ack, (egress, s_syn)))
            rows.append(["established (ACK, pod egress)", f"{plain_est:.0f}", f"{svc_est:.0f}"])
            chosen = svc_backend(50001)
            p_rep = ipv4_packet(BACKEND, CLIENT, "tcp", 8080, 50000, "A", payload=b"y" * 64)
            s_rep = ipv4_packet(chosen, CLIENT, "tcp", 8080, 50001, "A", payload=b"y" * 64)
            plain_rep = _median_of(lambda: established(ingress, p_rep, (ingress, p_rep)))
            svc_rep = _median_of(lambda: established(ingress, s_rep, (ingress, s_rep)))
            rows.append(["reply (ACK, pod ingress)", f"{plain_rep:.0f}", f"{svc_rep:.0f}"])
            np_syn = ipv4_packet("198.51.100.7", "192.168.50.11", "tcp", 7000, 30080, "S")
            np_ack = ipv4_packet("198.51.100.7", "192.168.50.11", "tcp", 7000, 30080, "A")
            other = ipv4_packet("198.51.100.7", "192.168.50.11", "tcp", 7000, 22, "A")
            np_est = _median_of(lambda: established(uplink, np_ack, (uplink, np_syn)))
            np_other = _median_of(lambda: established(uplink, other, (uplink, other)))
            rows.append(["NodePort established (uplink ingress)", "-", f"{np_est:.0f}"])
            rows.append(["other packet at the uplink (passes)", "-", f"{np_other:.0f}"])
    header(f"Service path cost (ns per packet, BPF_PROG_TEST_RUN, CPU {cpu})")
    print(table(["packet", "plain policy path", "service path"], rows))


if __name__ == "__main__":
    main()
