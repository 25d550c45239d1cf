"""The symbolic connectivity agrees with the reference model point by point.

`netcc.review.connectivity` computes, for every source and destination, the exact set of allowed
(protocol, port); `netcc.semantics.policy.evaluate` judges one connection. On generated specs, for
flows sampled from every kind of party (pods, nodes, addresses in each ipBlock region) and at every
port a rule or a container names (and its neighbours), both must agree, and so must the rules each
side cites. Also on the Kubernetes conformance scenarios."""

import ipaddress
import random

import pytest
import yaml
from review_support import sample_flows, spec_of
from scenarios import address, load, scenario_names
from specgen import random_flows, random_spec

from netcc.review.connectivity import Connectivity, split_regions
from netcc.semantics.policy import evaluate


def _check(cluster, flows) -> list[str]:
    c = Connectivity(cluster)
    wrong = []
    for src, dst, proto, port in flows:
        model = evaluate(cluster, src, dst, proto, port)
        if model.egress is None and model.ingress is None:
            continue  # no pod on the path: nothing of the cluster's decides
        flow = c.flow(c.party_of(src), c.party_of(dst))
        got = flow.allowed.contains(proto, port)
        if got != model.allowed:
            wrong.append(f"{src} -> {dst} {port}/{proto}: symbolic {got}, model {model.allowed}")
            continue
        for side, mine in ((model.egress, flow.egress), (model.ingress, flow.ingress)):
            if side is None:
                assert mine is None
                continue
            if side.reason in ("rule", "default-deny"):
                cited = {g.rule for g in mine.grants if g.ports.contains(proto, port)}
                if cited != set(side.rules):
                    wrong.append(f"{src} -> {dst} {port}/{proto}: rules {cited} != {side.rules}")
            elif mine.reason != side.reason:
                wrong.append(f"{src} -> {dst}: reason {mine.reason} != {side.reason}")
    return wrong


@pytest.mark.parametrize("seed", range(40))
def test_symbolic_connectivity_matches_model(seed):
    rng = random.Random(seed)
    doc = random_spec(rng, pods=rng.randint(2, 10), policies=rng.randint(1, 8))
    cluster = spec_of(doc).cluster
    flows = sample_flows(Connectivity(cluster), rng, 300)
    flows += [
        (ipaddress.IPv4Address(s), ipaddress.IPv4Address(d), proto, port)
        for s, d, proto, port in random_flows(rng, doc, 150)
    ]
    wrong = _check(cluster, flows)
    assert not wrong, "\n".join(wrong[:20])


@pytest.mark.parametrize("name", scenario_names())
def test_symbolic_connectivity_gives_kubernetes_verdicts(name):
    cluster, probes = load(name)
    c = Connectivity(cluster)
    wrong = [
        str(p)
        for p in probes
        if c.allows(address(cluster, p.src), address(cluster, p.dst), p.proto, p.port) != p.allowed
    ]
    assert not wrong


def test_regions_partition_the_address_space():
    prefixes = {
        ipaddress.IPv4Network(n)
        for n in ("10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "192.0.2.0/24", "0.0.0.0/1")
    }
    regions = split_regions(prefixes)
    nets = [n for r in regions for n in r.networks()]
    assert sum(n.num_addresses for n in nets) == 2**32
    assert list(ipaddress.collapse_addresses(nets)) == [ipaddress.IPv4Network("0.0.0.0/0")]
    r = next(r for r in regions if str(r.prefix) == "10.1.0.0/16")
    assert str(r) == "10.1.0.0/16 except 10.1.2.0/24"
    assert ipaddress.IPv4Address("10.1.3.1") in r and ipaddress.IPv4Address("10.1.2.1") not in r


def test_shop_exposure_is_what_the_policies_say(tmp_path):
    from review_support import SHOP

    spec = spec_of(SHOP.read_text(), "shop.yaml")
    c = Connectivity(spec.cluster)
    frontend = c.party_named("shop/frontend")
    outside = {e.name: c.flow(e, frontend).allowed for e in c.externals}
    assert {k: str(v) for k, v in outside.items()} == {
        "0.0.0.0/0 except 203.0.113.0/24": "TCP 8080",
        "203.0.113.0/24": "none",
    }
    cart = c.party_named("shop/cart")
    flow = c.flow(frontend, cart)
    assert str(flow.allowed) == "TCP 7000"
    assert [str(g.rule) for g in flow.grants(flow.egress)] == ["shop/frontend-egress egress[0]"]
    assert [str(g.rule) for g in flow.grants(flow.ingress)] == ["shop/cart ingress[0]"]
    # the cache is never reached by the frontend, on any port or protocol
    assert not c.flow(frontend, c.party_named("shop/cache")).allowed


def test_workload_whose_addresses_differ_is_split():
    doc = yaml.safe_load(
        """
apiVersion: netcc.io/v1alpha1
kind: ClusterNetwork
metadata: {name: split}
spec:
  podCIDR: 10.244.0.0/16
  serviceCIDR: 10.96.0.0/16
  nodes: [{name: n1, address: 192.168.1.1, podCIDR: 10.244.1.0/24}]
  namespaces: [{name: a}]
  workloads:
    - {name: two, namespace: a, node: n1, ips: [10.244.1.10, 10.244.1.20]}
    - {name: db, namespace: a, node: n1, labels: {app: db}, ips: [10.244.1.30]}
  policies:
    - apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: db, namespace: a}
      spec:
        podSelector: {matchLabels: {app: db}}
        ingress: [{from: [{ipBlock: {cidr: 10.244.1.0/28}}]}]
"""
    )
    c = Connectivity(spec_of(doc).cluster)
    names = sorted(p.name for p in c.pods)
    assert names == ["a/db", "a/two[10.244.1.10]", "a/two[10.244.1.20]"]
    db = c.party_named("a/db")
    assert c.flow(c.party_named("a/two[10.244.1.10]"), db).allowed.is_all
    assert not c.flow(c.party_named("a/two[10.244.1.20]"), db).allowed
