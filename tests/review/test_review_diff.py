"""`netcc diff`: exact added and removed flows, exit codes, and every kind of input."""

import hashlib
import json
import random
import subprocess
from ipaddress import IPv4Address, IPv4Network

import pytest
from review_support import SHOP, run, shop_doc, spec_of, write_spec
from specgen import EXTERNALS, random_spec

from netcc.review.diff import diff
from netcc.semantics.policy import evaluate

PROTO_NAMES = {6: "TCP", 17: "UDP", 132: "SCTP"}


NODE_ADDRESSES = {
    "192.168.77.11",
    "192.168.77.12",
    "192.168.77.13",
    "10.244.1.1",
    "10.244.2.1",
    "10.244.3.1",
}


def covers(change, src: str, dst: str, proto: int, port: int) -> bool:
    """Whether a diff entry covers a connection between two named ends.

    Node addresses come as /32 entries of their own; other CIDRs stand for the addresses
    outside the pods and nodes."""

    def end(pattern: str, who: str) -> bool:
        if "/" in who and not who[0].isdigit():
            return pattern == who
        if who in NODE_ADDRESSES:
            return pattern == f"{who}/32"
        if pattern[0].isdigit():
            return IPv4Address(who) in IPv4Network(pattern)
        return False

    if not (end(change["from"], src) and end(change["to"], dst)):
        return False
    name = PROTO_NAMES.get(proto, "OTHER")
    if change["protocol"] != name:
        return False
    if name == "OTHER":
        return True
    lo, _, hi = change["ports"].partition("-")
    return int(lo) <= port <= int(hi or lo)


def address(cluster, who: str) -> IPv4Address | None:
    if "/" in who:
        ns, name = who.split("/")
        w = next((w for w in cluster.workloads if w.namespace == ns and w.name == name), None)
        return w.ips[0] if w else None
    return IPv4Address(who)


def verdict(cluster, src: str, dst: str, proto: int, port: int) -> bool:
    s, d = address(cluster, src), address(cluster, dst)
    if s is None or d is None:
        return False  # the workload does not exist in this version
    return evaluate(cluster, s, d, proto, port).allowed


def check_exact(old_doc, new_doc, rng, count=400) -> list[str]:
    old, new = spec_of(old_doc).cluster, spec_of(new_doc).cluster
    doc = diff(old, new).to_json()
    pods = sorted({w.key for c in (old, new) for w in c.workloads})
    others = [*EXTERNALS, "192.168.77.11", "10.244.2.1", "192.168.77.12"]
    wrong = []
    for _ in range(count):
        src = rng.choice(pods)
        dst = rng.choice(pods + others)
        if rng.random() < 0.5:
            src, dst = dst, src
        if src == dst:
            continue
        proto = rng.choice((6, 17, 132, 1))
        port = 0 if proto == 1 else rng.choice((1, 53, 80, 81, 443, 8080, 9090, 9100, 9101, 65535))
        before, after = verdict(old, src, dst, proto, port), verdict(new, src, dst, proto, port)
        added = [c for c in doc["added"] if covers(c, src, dst, proto, port)]
        removed = [c for c in doc["removed"] if covers(c, src, dst, proto, port)]
        if bool(added) != (after and not before) or bool(removed) != (before and not after):
            wrong.append(f"{src} -> {dst} {port}/{proto}: {before}->{after}, {added} {removed}")
    return wrong


@pytest.mark.parametrize("seed", range(12))
def test_diff_is_exact_on_generated_specs(seed):
    rng = random.Random(seed)
    old = random_spec(rng, pods=6, policies=rng.randint(1, 6))
    if seed % 3 == 0:
        new = random_spec(rng, pods=7, policies=rng.randint(0, 6))  # other workloads too
    else:
        new = json.loads(json.dumps(old))
        new["spec"]["policies"] = random_spec(rng, pods=6, policies=rng.randint(0, 6))["spec"][
            "policies"
        ]
    wrong = check_exact(old, new, rng)
    assert not wrong, "\n".join(wrong[:10])


@pytest.mark.parametrize("seed", range(6))
def test_diff_of_a_spec_with_itself_is_empty(seed):
    doc = random_spec(random.Random(seed), pods=8, policies=6)
    c = spec_of(doc).cluster
    assert diff(c, c).to_json() == {"added": [], "removed": []}


def default_deny_pair(tmp_path):
    doc = shop_doc()
    doc["spec"]["policies"] = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "default-deny", "namespace": "shop"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        }
    ]
    open_doc = shop_doc()
    open_doc["spec"]["policies"] = []
    return (
        write_spec(tmp_path / "deny.yaml", doc),
        write_spec(tmp_path / "open.yaml", open_doc),
        doc,
        open_doc,
    )


def test_removing_default_deny_adds_every_denied_connection(tmp_path):
    deny, open_, deny_doc, open_doc = default_deny_pair(tmp_path)
    r = run("diff", deny, open_, "--json")
    assert r.code == 1, r.stderr
    doc = json.loads(r.stdout)
    assert doc["removed"] == []
    assert {"from", "to", "protocol", "ports"} == set(doc["added"][0])
    # one flow covers a whole pair: every port of every protocol
    assert {"from": "shop/frontend", "to": "shop/cart", "protocol": "TCP", "ports": "1-65535"} in (
        doc["added"]
    )
    assert {"from": "0.0.0.0/0", "to": "shop/cache", "protocol": "UDP", "ports": "1-65535"} in (
        doc["added"]
    )
    wrong = check_exact(deny_doc, open_doc, random.Random(1), 600)
    assert not wrong, "\n".join(wrong[:10])
    # and the other way round, the same flows are removed
    back = json.loads(run("diff", open_, deny, "--json").stdout)
    assert back == {"added": [], "removed": doc["added"]}


def test_text_output_and_exit_codes(tmp_path):
    deny, open_, _, _ = default_deny_pair(tmp_path)
    r = run("diff", deny, open_)
    assert r.code == 1
    assert "+ shop/frontend -> shop/cart: all" in r.stdout.splitlines()
    same = run("diff", SHOP, SHOP)
    assert (same.code, same.stdout) == (0, "connectivity unchanged\n")
    same = run("diff", SHOP, SHOP, "--json")
    assert (same.code, json.loads(same.stdout)) == (0, {"added": [], "removed": []})


def test_narrowed_ipblock_removes_exactly_that_range(tmp_path):
    doc = shop_doc()
    doc["spec"]["policies"][1]["spec"]["ingress"][0]["from"][0]["ipBlock"]["except"].append(
        "198.51.100.0/24"
    )
    new = write_spec(tmp_path / "new.yaml", doc)
    r = run("diff", SHOP, new, "--json")
    assert r.code == 1
    assert json.loads(r.stdout) == {
        "added": [],
        "removed": [
            {"from": "198.51.100.0/24", "to": "shop/frontend", "protocol": "TCP", "ports": "8080"}
        ],
    }


def test_errors_exit_2(tmp_path):
    r = run("diff", SHOP, tmp_path / "missing.yaml")
    assert r.code == 2 and "cannot read" in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: netcc.io/v1alpha1\nkind: ClusterNetwork\nspec: {podCIDR: x}\n")
    r = run("diff", SHOP, bad)
    assert r.code == 2
    assert f"{bad}:" in r.stderr and ": error: " in r.stderr and "Traceback" not in r.stderr
    r = run("diff", "git:nope", SHOP)
    assert r.code == 2 and "git:REV:PATH" in r.stderr


def fake_out(path, spec_text: bytes | None, digest_of: bytes):
    """An OUT directory as far as the review commands look at it: the lock (and a spec)."""
    path.mkdir()
    lock = {"lockVersion": 1, "spec": {"sha256": hashlib.sha256(digest_of).hexdigest()}}
    (path / "netcc.lock.json").write_text(json.dumps(lock))
    if spec_text is not None:
        (path / "spec.yaml").write_bytes(spec_text)
    return path


def test_out_directories(tmp_path):
    text = SHOP.read_bytes()
    with_spec = fake_out(tmp_path / "with", text, text)
    assert run("diff", with_spec, SHOP).code == 0
    without = fake_out(tmp_path / "without", None, text)
    r = run("diff", without, SHOP)
    assert r.code == 2 and "holds no spec" in r.stderr
    tampered = fake_out(tmp_path / "tampered", text + b"\n# edited\n", text)
    r = run("diff", tampered, SHOP)
    assert r.code == 2 and "does not match the spec digest" in r.stderr
    r = run("diff", tmp_path, SHOP)
    assert r.code == 2 and "not an OUT directory" in r.stderr


def test_git_revisions(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)

    git("init", "-q")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    (repo / "net.yaml").write_bytes(SHOP.read_bytes())
    git("add", "net.yaml")
    git("commit", "-qm", "one")
    doc = shop_doc()
    doc["spec"]["policies"] = doc["spec"]["policies"][1:]  # drop the default deny
    write_spec(repo / "net.yaml", doc)
    monkeypatch.chdir(repo)
    r = run("diff", "git:HEAD:net.yaml", "net.yaml", "--json")
    assert r.code == 1, r.stderr
    added = json.loads(r.stdout)["added"]
    assert {"from": "shop/cache", "to": "0.0.0.0/0", "protocol": "TCP", "ports": "1-65535"} in added
    assert {
        "from": "shop/cache",
        "to": "shop/frontend",
        "protocol": "TCP",
        "ports": "8080",
    } in added
    assert run("diff", "git:HEAD:net.yaml", "git:HEAD:net.yaml").code == 0
    r = run("diff", "git:HEAD:missing.yaml", "net.yaml")
    assert r.code == 2 and "git show HEAD:missing.yaml failed" in r.stderr
