"""Compiling from the manifests users already have (issue 15), through the command line: the
kustomize example, a helm rendering, a recipe collection in Markdown; positions in the
manifests' own files; OUT records the sources, so `check` sees a manifest change; review,
why, lint and diff (also between git revisions) from sources; standard input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "examples" / "app"
HELM = REPO / "tests" / "fixtures" / "helm"
RECIPES = REPO / "tests" / "fixtures" / "policy_recipes"


def netcc(*args: str, cwd: Path = REPO, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "netcc", *args], cwd=cwd, input=stdin, capture_output=True,
        check=False,
    )  # fmt: skip


def compiled(spec: Path, out: Path, cwd: Path = REPO) -> dict:
    r = netcc("compile", str(spec), "-o", str(out), cwd=cwd)
    assert r.returncode == 0, r.stderr.decode()
    return {
        "classes": json.loads((out / "classes.json").read_text())["classes"],
        "lock": json.loads((out / "netcc.lock.json").read_text()),
        "stderr": r.stderr.decode(),
    }


def test_kustomize_app_compiles_with_no_netcc_workload_entries(tmp_path: Path) -> None:
    spec = yaml.safe_load((APP / "netcc.yaml").read_text())["spec"]
    assert not {"workloads", "services", "policies", "namespaces"} & set(spec)
    got = compiled(APP / "netcc.yaml", tmp_path / "out")
    classes = {c["key"]: c for c in got["classes"]}
    assert set(classes) == {
        "shop/frontend", "shop/cart", "shop/catalog", "shop/db", "shop/report",
        "monitoring/prometheus",
    }  # fmt: skip
    assert classes["shop/frontend"]["labels"]["env"] == "prod"  # kustomize's commonLabels
    assert {(p["name"], p["port"]) for p in classes["shop/cart"]["ports"]} == {("http", 7000)}
    services = json.loads((tmp_path / "out" / "services.json").read_text())["ports"]
    assert {(p["service"], p["port"]) for p in services} == {
        ("shop/frontend", 80),
        ("shop/cart", 7000),
        ("shop/catalog", 9090),
    }  # fmt: skip (db is headless: nothing to translate)
    frontend = next(p for p in services if p["service"] == "shop/frontend")
    assert 30000 <= frontend["nodePort"] <= 32767
    assert "skipped 2 objects (v1 ConfigMap 1, v1 ServiceAccount 1)" in got["stderr"]
    assert "examples/app/rendered/prod.yaml:" in got["stderr"]  # notes name the manifest
    # OUT records every source file's digest, and carries the files
    assert list(got["lock"]["sources"]) == ["0:rendered/prod.yaml"]
    carried = json.loads((tmp_path / "out" / "sources.json").read_text())
    assert carried["files"][0]["text"] == (APP / "rendered" / "prod.yaml").read_text()


def test_same_artifacts_from_any_directory_and_from_stdin(tmp_path: Path) -> None:
    compiled(APP / "netcc.yaml", tmp_path / "a")
    compiled(Path("netcc.yaml"), tmp_path / "b", cwd=APP)
    rendered = (APP / "rendered" / "prod.yaml").read_bytes()
    r = netcc("compile", str(APP / "netcc-stdin.yaml"), "-o", str(tmp_path / "c"), stdin=rendered)
    assert r.returncode == 0, r.stderr.decode()
    a = json.loads((tmp_path / "a" / "netcc.lock.json").read_text())
    b = json.loads((tmp_path / "b" / "netcc.lock.json").read_text())
    c = json.loads((tmp_path / "c" / "netcc.lock.json").read_text())
    assert a == b
    skip = {"spec.yaml", "sources.json"}  # the spec and the source's name differ, nothing else
    assert {
        k: v for k, v in a["artifacts"].items() if k not in skip and not k.startswith("k8s")
    } == {k: v for k, v in c["artifacts"].items() if k not in skip and not k.startswith("k8s")}


def test_check_sees_a_manifest_change(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(APP, app)
    compiled(app / "netcc.yaml", tmp_path / "out")
    assert netcc("check", str(app / "netcc.yaml"), str(tmp_path / "out")).returncode == 0
    rendered = app / "rendered" / "prod.yaml"
    rendered.write_text(rendered.read_text().replace("containerPort: 7000", "containerPort: 7001"))
    r = netcc("check", str(app / "netcc.yaml"), str(tmp_path / "out"))
    assert r.returncode == 1 and b"stale" in r.stderr


def test_errors_point_into_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "svc.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: ext, namespace: shop}\n"
        "spec:\n  type: ExternalName\n  externalName: db.example.com\n"
    )
    (tmp_path / "m" / "ds.yaml").write_text(
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent}\nspec:\n"
        "  selector: {matchLabels: {app: agent}}\n  template:\n"
        "    metadata: {labels: {app: agent}}\n"
        "    spec:\n      hostNetwork: true\n      containers: [{name: a, image: a}]\n"
    )
    spec = (APP / "netcc.yaml").read_text().replace("path: rendered/prod.yaml", "path: m")
    (tmp_path / "netcc.yaml").write_text(spec)
    r = netcc("compile", str(tmp_path / "netcc.yaml"), "-o", str(tmp_path / "out"))
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert f"{tmp_path}/m/svc.yaml:5:9: error:" in err and "ExternalName" in err
    assert f"{tmp_path}/m/ds.yaml:9:20: error:" in err and "hostNetwork" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()
    # a manifest entry the schema refuses is reported where the manifest says it
    (tmp_path / "m" / "svc.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
        "spec:\n  selector: {app: web}\n  ports:\n  - port: 99999\n"
    )
    (tmp_path / "m" / "ds.yaml").unlink()
    r = netcc("compile", str(tmp_path / "netcc.yaml"), "-o", str(tmp_path / "out"))
    assert r.returncode == 1
    assert f"{tmp_path}/m/svc.yaml:7:11: error:" in r.stderr.decode(), r.stderr.decode()


def test_templates_no_selector_tells_apart_become_one_class(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(
        "".join(
            f"---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {n}, namespace: a}}\n"
            "spec:\n  selector: {matchLabels: {app: web}}\n  template:\n"
            "    metadata: {labels: {app: web}}\n    spec: {containers: [{name: c, image: i}]}\n"
            for n in ("web-blue", "web-green")
        )
        + "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"
    )
    spec = (APP / "netcc.yaml").read_text().replace("path: rendered/prod.yaml", "path: m.yaml")
    (tmp_path / "netcc.yaml").write_text(spec)
    got = compiled(tmp_path / "netcc.yaml", tmp_path / "out")
    assert [c["key"] for c in got["classes"]] == ["a/web-blue"]
    assert "one class, a/web-blue" in got["stderr"]


def test_helm_rendering_compiles(tmp_path: Path) -> None:
    spec = yaml.safe_load((HELM / "netcc.yaml").read_text())["spec"]
    assert not {"workloads", "services", "policies", "namespaces"} & set(spec)
    got = compiled(HELM / "netcc.yaml", tmp_path / "out")
    keys = {c["key"] for c in got["classes"]}
    assert {"apps/myrel-webapp", "apps/myrel-webapp-worker", "apps/myrel-webapp-redis"} <= keys
    assert not any("test-connection" in k for k in keys)  # helm's test hook is no workload
    assert "helm test hook" in got["stderr"]


def test_recipe_collection_compiles_verbatim_from_markdown(tmp_path: Path) -> None:
    got = compiled(RECIPES / "netcc.yaml", tmp_path / "out")
    assert "took 16 policies" in got["stderr"]
    policies = list((tmp_path / "out" / "k8s" / "policies").rglob("*.yaml"))
    assert len(policies) == 16


def test_review_why_lint_from_sources_and_from_out(tmp_path: Path) -> None:
    compiled(APP / "netcc.yaml", tmp_path / "out")
    for target in (str(APP / "netcc.yaml"), str(tmp_path / "out")):
        r = netcc("why", target, "--from", "shop/cart", "--to", "shop/db", "--port", "5432")
        assert r.returncode == 0 and b": allow" in r.stdout, r.stderr
        assert b"rendered/prod.yaml:" in r.stdout  # the rule, where the manifest has it
        r = netcc("why", target, "--from", "shop/frontend", "--to", "shop/db", "--port", "5432")
        assert b": deny" in r.stdout
        r = netcc("review", target, "--format", "json")
        assert r.returncode == 0, r.stderr
    lint = netcc("lint", str(APP / "netcc.yaml"))
    assert b"examples/app/rendered/prod.yaml:" in lint.stdout + lint.stderr


def test_diff_between_git_revisions_of_the_manifests(tmp_path: Path) -> None:
    app = tmp_path / "repo" / "app"
    shutil.copytree(APP, app)
    repo = tmp_path / "repo"

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "app")
    rendered = app / "rendered" / "prod.yaml"
    text = rendered.read_text()
    policy = text.index("name: db-from-cart-and-report")
    rendered.write_text(text[:policy] + text[policy:].replace("app: report", "app: catalog", 1))
    r = netcc("diff", "git:HEAD:app/netcc.yaml", "app/netcc.yaml", cwd=repo)
    out = r.stdout.decode()
    assert "newly allowed" in out and "shop/catalog" in out, (out, r.stderr.decode())
    same = netcc("diff", "git:HEAD:app/netcc.yaml", "git:HEAD:app/netcc.yaml", cwd=repo)
    assert same.stdout.decode().strip() == "connectivity unchanged", same.stderr.decode()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_rendered_overlays_are_what_kustomize_builds() -> None:
    for overlay in ("prod", "staging"):
        built = subprocess.run(
            ["kubectl", "kustomize", str(APP / "overlays" / overlay)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        have = (APP / "rendered" / f"{overlay}.yaml").read_text()

        def objects(text: str) -> list[str]:
            return sorted(json.dumps(d, sort_keys=True) for d in yaml.safe_load_all(text) if d)

        assert objects(built) == objects(have), overlay
