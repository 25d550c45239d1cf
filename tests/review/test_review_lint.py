"""`netcc lint`: every kind of finding, where it points, and --strict for CI."""

import random
from pathlib import Path

import pytest
from review_support import SHOP, run, spec_of, write_spec
from specgen import random_spec

from netcc.review.lint import lint

HERE = Path(__file__).resolve().parent
FINDINGS = HERE / "lint_findings.yaml"

EXPECTED = [
    "11:7: warning: namespace 'b' is fully open: no policy isolates any of its 1 workload(s), "
    "for ingress or egress (spec.namespaces[1])",
    "22:22: warning: policy a/ghost selects no workload of namespace 'a' "
    "(spec.policies[0].spec.podSelector)",
    "32:13: warning: ingress rule 1 of a/web is shadowed: a broader rule already allows "
    "everything it allows (a/web ingress[0]) (spec.policies[1].spec.ingress[1])",
    "34:13: warning: ingress rule 2 of a/web can never match: no workload or address of the "
    "cluster matches its 'from' peers (spec.policies[1].spec.ingress[2])",
    "35:13: warning: ingress rule 3 of a/web can never match: none of its ports exists on the "
    "pods it would apply to (spec.policies[1].spec.ingress[3])",
    "35:28: warning: named port 'nope' (TCP) resolves on no pod it selects "
    "(spec.policies[1].spec.ingress[3].ports[0].port)",
    "36:13: warning: ingress rule 4 of a/web can never match: no workload or address of the "
    "cluster matches its 'from' peers (IPv6 ipBlocks match no IPv4 address) "
    "(spec.policies[1].spec.ingress[4])",
    "38:13: warning: egress rule 0 of a/web never applies: its policyTypes [Ingress] leave out "
    "Egress (spec.policies[1].spec.egress[0])",
    "47:13: warning: ingress rule 1 of a/db is shadowed: a broader rule already allows "
    "everything it allows (a/db ingress[0]) (spec.policies[2].spec.ingress[1])",
]


def test_every_kind_of_finding_at_its_line_and_column():
    r = run("lint", FINDINGS)
    assert r.code == 0
    assert r.stdout.splitlines() == [f"{FINDINGS}:{line}" for line in EXPECTED]
    assert f"netcc: {len(EXPECTED)} warning(s)" in r.stderr


def test_strict_makes_them_errors():
    r = run("lint", FINDINGS, "--strict")
    assert r.code == 1
    lines = r.stdout.splitlines()
    assert len(lines) == len(EXPECTED) and all(": error: " in line for line in lines)


def test_shop_has_one_open_namespace():
    r = run("lint", SHOP)
    assert r.code == 0
    assert r.stdout.splitlines() == [
        f"{SHOP}:16:7: warning: namespace 'monitoring' is fully open: no policy isolates any of "
        "its 1 workload(s), for ingress or egress (spec.namespaces[2])"
    ]
    assert run("lint", SHOP, "--strict").code == 1


def test_clean_spec_passes_strict(tmp_path):
    import yaml

    d = yaml.safe_load(SHOP.read_text())
    d["spec"]["policies"].append(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "deny", "namespace": "monitoring"},
            "spec": {"podSelector": {}},
        }
    )
    r = run("lint", write_spec(tmp_path / "clean.yaml", d), "--strict")
    assert (r.code, r.stdout) == (0, "")
    assert "netcc: 0 error(s)" in r.stderr


WEB = {"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": 5432}]}


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        (  # two identical rules: the later one is reported, citing the earlier
            [WEB, WEB, {"ports": [{"port": 6000, "endPort": 7000}]}],
            [
                "ingress rule 1 of a/db is shadowed: a broader rule already allows everything it "
                "allows (a/db ingress[0])"
            ],
        ),
        (  # a narrow rule before a broader one
            [WEB, {"ports": [{"port": 5000, "endPort": 6000}]}],
            [
                "ingress rule 0 of a/db is shadowed: a broader rule already allows everything it "
                "allows (a/db ingress[1])"
            ],
        ),
        (  # covered by two rules together, and only by both
            [
                {"ports": [{"port": 1, "endPort": 6000}]},
                {"ports": [{"port": 6001, "endPort": 65535}]},
                {"ports": [{"port": 5000, "endPort": 7000}]},
            ],
            [
                "ingress rule 2 of a/db is shadowed: other rules together allow everything it "
                "allows (a/db ingress[0], a/db ingress[1])"
            ],
        ),
        (  # named port and number, another protocol: nothing is shadowed
            [{"ports": [{"port": "sql"}]}, {"ports": [{"port": 5432, "protocol": "UDP"}]}],
            [],
        ),
    ],
)
def test_shadowed_rules(rules, expected):
    import yaml

    d = yaml.safe_load(FINDINGS.read_text())
    d["spec"]["policies"][2]["spec"]["ingress"] = rules
    spec = spec_of(d)
    found = [x.message for x in lint(spec.cluster, spec.sources) if "of a/db" in x.message]
    assert found == expected


@pytest.mark.parametrize("seed", range(8))
def test_lint_never_fails_on_generated_specs(seed):
    spec = spec_of(random_spec(random.Random(seed), pods=8, policies=8))
    for d in lint(spec.cluster, spec.sources):
        assert d.severity == "warning" and d.line > 0, d


def test_bad_spec_is_reported_like_compile(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SHOP.read_text().replace("node: node-2", "node: node-9", 1))
    r = run("lint", bad)
    assert r.code == 1 and ": error: " in r.stderr and "Traceback" not in r.stderr
