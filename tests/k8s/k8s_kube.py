"""What kubelet would do with `OUT/k8s`, offline: read the manifests, project the artifact
ConfigMaps into a volume directory, and give a container's command and environment."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

# kubelet's atomic writer keeps the payload in a timestamped directory behind `..data`.
PAYLOAD_DIR = "..2025_01_01_00_00_00.000000001"


def manifests(tree: dict[str, bytes]) -> dict[str, dict[str, Any]]:
    """Every document of `k8s/`, by path under `k8s/` (one document per file)."""
    out = {}
    for path, data in sorted(tree.items()):
        if path.startswith("k8s/"):
            docs = list(yaml.safe_load_all(data))
            assert len(docs) == 1, f"{path}: {len(docs)} documents"
            out[path.removeprefix("k8s/")] = docs[0]
    return out


def of_kind(docs: dict[str, dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {p: d for p, d in docs.items() if d["kind"] == kind}


def daemonset(docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (ds,) = of_kind(docs, "DaemonSet").values()
    return ds


def pod_spec(docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return daemonset(docs)["spec"]["template"]["spec"]


def container(docs: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    pod = pod_spec(docs)
    for c in pod.get("initContainers", []) + pod["containers"]:
        if c["name"] == name:
            return c
    raise KeyError(name)


def volume(docs: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    return next(v for v in pod_spec(docs)["volumes"] if v["name"] == name)


def configmaps(docs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The artifact ConfigMaps (those of a generation) by name: not the Grafana dashboard's."""
    return {
        d["metadata"]["name"]: d
        for d in of_kind(docs, "ConfigMap").values()
        if "netcc.io/generation" in d["metadata"].get("labels", {})
    }


def project(vol: dict[str, Any], cms: dict[str, dict[str, Any]], root: Path) -> Path:
    """Write a projected volume of ConfigMaps into `root` as kubelet does: each item's key at
    its path inside a payload directory, `..data` pointing at it, and a symlink per top-level
    entry. A missing ConfigMap or key, or two items on one path, fail as in kubelet."""
    projected = vol["projected"]
    payload = root / PAYLOAD_DIR
    payload.mkdir(parents=True)
    top = set()
    for source in projected["sources"]:
        ref = source["configMap"]
        cm = cms[ref["name"]]
        for item in ref["items"]:
            key, path = item["key"], item["path"]
            assert not path.startswith("/") and ".." not in path.split("/"), path
            if key in cm.get("data", {}):
                data = cm["data"][key].encode()
            else:
                data = base64.b64decode(cm["binaryData"][key], validate=True)
            target = payload / path
            assert not target.exists(), f"two items project to {path}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            os.chmod(target, item.get("mode", projected.get("defaultMode", 0o644)))
            top.add(path.split("/")[0])
    (root / "..data").symlink_to(PAYLOAD_DIR)
    for name in sorted(top):
        (root / name).symlink_to(f"..data/{name}")
    return root


def environment(c: dict[str, Any], node: str, **paths: str) -> dict[str, str]:
    """The container's environment on `node`, with the directories of its volume mounts
    replaced by `paths` (NAME=directory), plus PATH."""
    env = {"PATH": os.environ["PATH"]}
    for var in c["env"]:
        if "valueFrom" in var:
            assert var["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
            env[var["name"]] = node
        else:
            env[var["name"]] = var["value"]
    for name, path in paths.items():
        assert name in env, f"{c['name']} has no {name}"
        env[name] = path
    return env


def capabilities(c: dict[str, Any]) -> list[str]:
    """The container's capabilities, for setpriv (`bpf`, `net_admin`...)."""
    sc = c["securityContext"]["capabilities"]
    assert sc["drop"] == ["ALL"]
    return [cap.lower() for cap in sc.get("add", [])]


def as_container(c: dict[str, Any], argv: list[str]) -> list[str]:
    """`argv` with the container's user, capabilities and no_new_privs (setpriv)."""
    sc = c["securityContext"]
    bounding = ",".join(["-all", *(f"+{cap}" for cap in capabilities(c))])
    cmd = ["setpriv", f"--bounding-set={bounding}", "--inh-caps=-all"]
    if sc.get("allowPrivilegeEscalation") is False:
        cmd.append("--no-new-privs")
    uid = sc.get("runAsUser", 0)
    if uid != 0:
        cmd += [f"--reuid={uid}", f"--regid={sc.get('runAsGroup', uid)}", "--clear-groups"]
    return [*cmd, "--", *argv]


def script_of(c: dict[str, Any]) -> list[str]:
    """The container's command line, exactly (the scripts need no kubelet expansion)."""
    argv = [*c["command"], *c.get("args", [])]
    assert not any("$(" in a or "$$" in a for a in argv), "kubelet would rewrite $( or $$"
    return argv


def assemble(docs: dict[str, dict[str, Any]], node: str, work: Path) -> Path:
    """Project the artifact volume into `work/compiled` and run the init container's command
    (as its user, with its capabilities when root) into `work/artifacts`; returns that."""
    init = container(docs, "assemble")
    work.mkdir(mode=0o755, exist_ok=True)
    compiled = project(volume(docs, "compiled"), configmaps(docs), work / "compiled")
    artifacts = work / "artifacts"
    artifacts.mkdir()
    os.chmod(artifacts, 0o777)  # as kubelet makes an emptyDir
    env = environment(
        init, node, NETCC_COMPILED=str(compiled), NETCC_ARTIFACTS=str(artifacts), TMPDIR="/tmp"
    )
    argv = script_of(init)
    if os.geteuid() == 0:
        argv = as_container(init, argv)
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AssembleError(proc.stderr)
    return artifacts


class AssembleError(Exception):
    """The init container's command failed; the message is its stderr."""
