"""Policies of the kubernetes-network-policy-recipes collection, compiled as written: six of
the seven here name no namespace (for `kubectl apply -n`), so netcc puts them in the spec's
default namespace, `default`, as `kubectl apply` does without -n. The generated
NetworkPolicies carry that namespace, each policy gives the verdicts its recipe promises,
and `netcc review` lists the policies that got the default namespace, in every format.

(The k8s tests over every compiled spec, `k8s_specs.all_trees`, include these recipes too:
strict validation against the Kubernetes schemas, the policies as written.)"""

from __future__ import annotations

import json
from ipaddress import IPv4Address

import pytest
import yaml
from clirun import run
from k8s_kube import manifests, of_kind
from k8s_specs import RECIPE_PODS, RECIPES, all_trees

from netcc.frontend import parse_spec
from netcc.semantics.policy import evaluate

DEFAULTED = [
    "web-deny-all",
    "api-allow",
    "web-allow-prod",
    "api-allow-5000",
    "redis-allow-services",
    "foo-deny-egress",
]
TCP = 6


@pytest.fixture(scope="module")
def cluster():
    return parse_spec(RECIPES, "recipes.yaml")[0]


def allowed(cluster, src: str, dst: str, port: int) -> bool:
    ip = {name: IPv4Address(address) for name, (_, _, address) in RECIPE_PODS.items()}
    return evaluate(cluster, ip[src], ip[dst], TCP, port).allowed


def test_policies_without_namespace_are_in_the_default_namespace(cluster):
    assert [p.name for p in cluster.policies if p.namespace_defaulted] == DEFAULTED
    assert {p.namespace for p in cluster.policies} == {"default"}
    assert [p.name for p in cluster.policies if not p.namespace_defaulted] == ["default-deny-all"]


@pytest.mark.parametrize(
    ("src", "dst", "port", "verdict"),
    [
        # 01 + 06: web takes nothing but from the production namespace
        ("monitoring", "web", 80, False),
        ("dev-client", "web", 80, False),
        ("prod-client", "web", 80, True),
        # 02: the api only from bookstore pods
        ("bookstore-frontend", "api", 8080, True),
        ("monitoring", "api", 8080, False),
        # 03: everything else in `default` takes nothing
        ("dev-client", "foo", 80, False),
        # 09: the apiserver only on 5000, only from monitoring
        ("monitoring", "apiserver", 5000, True),
        ("monitoring", "apiserver", 5001, False),
        ("web", "apiserver", 5000, False),
        # 10: the db from search and the api, not from other bookstore pods
        ("search", "db", 6379, True),
        ("api", "db", 6379, True),
        ("bookstore-frontend", "db", 6379, False),
        # 11: foo sends nothing, even where nothing isolates the receiver
        ("foo", "dev-client", 80, False),
        ("prod-client", "dev-client", 80, True),  # the control: no policy there
    ],
)
def test_each_recipe_gives_the_verdict_it_promises(cluster, src, dst, port, verdict):
    assert allowed(cluster, src, dst, port) is verdict


def test_the_manifests_carry_the_namespace_the_policies_got():
    tree = all_trees()["recipes"]
    policies = of_kind(manifests(tree), "NetworkPolicy")
    assert sorted(policies) == sorted(
        f"policies/default/{name}.yaml" for name in [*DEFAULTED, "default-deny-all"]
    )
    for path, policy in policies.items():
        assert policy["metadata"]["namespace"] == "default"
        defaulted = path.removeprefix("policies/default/").removesuffix(".yaml") in DEFAULTED
        note = b"It names no namespace: metadata.namespace default is the spec's default"
        assert (note in tree[f"k8s/{path}"]) is defaulted, path


def test_review_lists_the_policies_that_got_the_default_namespace(tmp_path):
    spec = tmp_path / "recipes.yaml"
    spec.write_text(RECIPES)
    r = run("review", spec, "--format", "json")
    assert r.code == 0, r.stderr
    found = json.loads(r.stdout)["default_namespace"]
    assert found["namespace"] == "default"
    assert [p["policy"] for p in found["policies"]] == [f"default/{n}" for n in DEFAULTED]
    lines = RECIPES.splitlines()
    for p in found["policies"]:  # each points at its policy in the spec
        assert lines[p["line"] - 1].strip() == "- kind: NetworkPolicy", p
    for fmt, start, end in (("md", "### Policies in", "###"), ("html", "<h2>Policies in", "<h2>")):
        r = run("review", spec, "--format", fmt)
        assert r.code == 0, r.stderr
        section = r.stdout.split(start, 1)[1].split(end, 1)[0]
        assert "the default namespace" in section and "kubectl apply -n default" in section
        assert all(f"default/{n}" in section for n in DEFAULTED), fmt
        assert "default/default-deny-all" not in section, fmt


def test_review_says_nothing_of_it_when_every_policy_names_its_namespace(tmp_path):
    document = yaml.safe_load(RECIPES)
    for policy in document["spec"]["policies"]:
        policy["metadata"].setdefault("namespace", "default")
    spec = tmp_path / "named.yaml"
    spec.write_text(yaml.safe_dump(document))
    r = run("review", spec, "--format", "json")
    assert r.code == 0, r.stderr
    assert "default_namespace" not in json.loads(r.stdout)
    for fmt in ("md", "html"):
        assert "default namespace" not in run("review", spec, "--format", fmt).stdout
