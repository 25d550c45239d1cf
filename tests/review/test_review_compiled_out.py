"""`review`, `why` and `diff` on real `OUT` directories from `netcc compile`: OUT carries the
spec, so reviewers need nothing else, also through `git:REV:OUT`."""

from __future__ import annotations

import json
import subprocess

from review_support import SHOP, run, shop_doc, write_spec

from netcc.contract.lock import LOCK_NAME, SPEC_IN_OUT


def compile_to(spec, out) -> None:
    r = run("compile", spec, "-o", out)
    assert r.code == 0, r.stderr


def test_compiled_out_carries_its_spec_and_the_lock_names_it(tmp_path):
    out = tmp_path / "out"
    compile_to(SHOP, out)
    assert (out / SPEC_IN_OUT).read_bytes() == SHOP.read_bytes()
    lock = json.loads((out / LOCK_NAME).read_text())
    assert SPEC_IN_OUT in lock["artifacts"]


def test_review_and_why_read_out_alone(tmp_path):
    out = tmp_path / "out"
    compile_to(SHOP, out)
    from_out = run("review", out, "--format", "json")
    from_spec = run("review", SHOP, "--format", "json")
    assert from_out.code == 0, from_out.stderr
    got, want = json.loads(from_out.stdout), json.loads(from_spec.stdout)
    assert got.pop("spec") == {"file": f"{out}/spec.yaml", "sha256": want.pop("spec")["sha256"]}
    assert got == want
    why = run(
        "why", out, "--from", "shop/frontend", "--to", "shop/cart", "--port", "7000", "--json"
    )
    assert why.code == 0, why.stderr
    assert json.loads(why.stdout)["verdict"] == "allow"


def test_diff_of_compiled_outs(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    compile_to(SHOP, old)
    doc = shop_doc()
    doc["spec"]["policies"] = doc["spec"]["policies"][1:]  # drop the default deny
    compile_to(write_spec(tmp_path / "open.yaml", doc), new)
    assert run("diff", old, old).code == 0
    r = run("diff", old, new, "--json")
    assert r.code == 1, r.stderr
    added = json.loads(r.stdout)["added"]
    assert {"from": "shop/cache", "to": "0.0.0.0/0", "protocol": "TCP", "ports": "1-65535"} in added


def test_diff_of_out_committed_to_git(tmp_path, monkeypatch):
    """Platform teams commit OUT: `git:REV:OUT` against the working tree's OUT."""
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)

    git("init", "-q")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    compile_to(SHOP, repo / "out")
    git("add", "out")
    git("commit", "-qm", "one")
    doc = shop_doc()
    doc["spec"]["policies"] = doc["spec"]["policies"][1:]
    compile_to(write_spec(tmp_path / "open.yaml", doc), repo / "out")
    monkeypatch.chdir(repo)
    assert run("diff", "git:HEAD:out", "git:HEAD:out").code == 0
    r = run("diff", "git:HEAD:out", "out", "--json")
    assert r.code == 1, r.stderr
    assert json.loads(r.stdout)["added"]
