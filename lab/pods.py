"""`netcc lab pod add|del|ready`: pods that come and go at runtime, networked as a kubelet
would.

`add` declares the pod to the lab's pod API (`pods.json`, what the node daemon reads its
labels from and the lab's EndpointSlices are computed from), makes its network namespace, and
runs CNI ADD through the node's network config list and the real `netcc-cni` binary
(`cniruntime`: environment, stdin, the chain, as containerd and CRI-O do). A refused or
failed ADD leaves nothing behind: the runtime DELs, the namespace and the pod's entry go.
`del` runs CNI DEL, then removes the namespace and the entry. Each pod is a `pod` resource of
the lab's state file, recorded before it is made, so `netcc lab down` removes pods a crash
left half-made.

A pod's API entry holds its `ip` once CNI ADD returned, and `ready`: whether its readiness
probe passed, as the EndpointSlices publish it. A pod starts not ready unless added ready;
`set_ready` (`netcc lab pod ready`) changes it.

Any number of `pod add|del` may run at once (as a kubelet starts pods in parallel): the
state file and `pods.json` change only under the lab's lock (`netcc.lab.state.lab_lock`),
each change a read-modify-write of what the file holds then, and a pod's name is checked and
recorded in one locked step, so two adds never both take it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import uuid
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from netcc.lab import netns as lab_netns
from netcc.lab import runtime
from netcc.lab.cniruntime import Attachment, CniRuntimeError, Runtime, load_conflist
from netcc.lab.kubeapi import read_pods, write_pods
from netcc.lab.plan import PREFIX, LabPlan, NodePlan, PodPlan, plan_from_doc
from netcc.lab.state import STATE_DIR, LabState, lab_lock
from netcc.loader.cni import names

IFNAME = "eth0"
MAX_NETNS = 64


class PodError(Exception):
    """A runtime pod cannot be added or deleted as asked; the message says why."""


def pod_netns(key: str) -> str:
    """`netcc-rpod-NAMESPACE.NAME` (a prefix of its own: never a static pod's namespace)."""
    import hashlib

    name = f"{PREFIX}rpod-{key.replace('/', '.')}"
    return (
        name
        if len(name) <= MAX_NETNS
        else f"{PREFIX}rpod-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    )


def parse_labels(text: str) -> dict[str, str]:
    """`k=v,k=v` into a dict; PodError when a part is not KEY=VALUE."""
    labels: dict[str, str] = {}
    for part in filter(None, text.split(",")):
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise PodError(f"label {part!r} is not KEY=VALUE")
        labels[key] = value
    return labels


def _split(key: str) -> tuple[str, str]:
    namespace, slash, name = key.partition("/")
    problem = (
        "must be NAMESPACE/NAME"
        if not slash
        else names.namespace_problem(namespace) or names.pod_name_problem(name)
    )
    if problem:
        raise PodError(f"pod {key!r}: {problem}")
    return namespace, name


def _runtime(state: LabState, node_netns: str) -> Runtime:
    return Runtime(
        [str(runtime.bin_dir(state))], state.path.parent / "cni-cache", f"/run/netns/{node_netns}"
    )


def _conflist(state: LabState, node: str) -> dict[str, Any]:
    found = load_conflist(runtime.node_dir(state, node) / "net.d")
    if found is None:
        raise PodError(f"node {node}'s network is not ready (no CNI config list yet)")
    return found


def _attachment(entry: dict[str, Any]) -> Attachment:
    namespace, name = entry["key"].split("/")
    args = {"K8S_POD_NAMESPACE": namespace, "K8S_POD_NAME": name, "K8S_POD_UID": entry["uid"]}
    return Attachment(entry["containerID"], f"/run/netns/{entry['netns']}", IFNAME, args)


def _class_of(state: LabState, node: str, ips: list[str]) -> str | None:
    load = next((r for r in state.of_kind("load") if r["node"] == node), None)
    try:
        doc = json.loads((Path(load["state_dir"]) / "daemon.json").read_text()) if load else {}
    except (OSError, ValueError):
        return None
    return next((p.get("class") for p in doc.get("pods", []) if p.get("ip") in ips), None)


def add(
    key: str,
    node: str,
    labels: dict[str, str],
    state_dir: Path = STATE_DIR,
    *,
    ready: bool = False,
) -> dict:
    """Add the pod on `node`: {"pod", "node", "netns", "ips", "class", "ready"}; a `ready`
    pod returns once every node daemon uses it as a backend (`wait_applied`). Safe to run
    in several processes at once: the checks, the pod's record and its API entry are made
    under the lab's lock; the namespace and CNI ADD (the slow part) run outside it."""
    namespace, name = _split(key)
    with LabState.locked(state_dir) as state:
        node_plan, conflist = _admit(state, key, node)
        netns = pod_netns(key)
        entry = state.record(
            "pod", key=key, node=node, netns=netns, nodeNetns=node_plan.netns,
            containerID=uuid.uuid4().hex * 2, uid=str(uuid.uuid4()),
        )  # fmt: skip
        pods = read_pods(state.path.parent)
        pods[key] = {"namespace": namespace, "name": name, "uid": entry["uid"]}
        pods[key] |= {"labels": labels, "node": node, "ready": ready}
        write_pods(state.path.parent, pods)
    try:
        lab_netns.create(netns)
        _loopback_up(netns)
        result = _runtime(state, node_plan.netns).add(conflist, _attachment(entry))
    except BaseException as e:
        _forget(state, entry)
        if isinstance(e, CniRuntimeError):
            raise PodError(f"pod {key} on {node}: CNI error {e.code}: {e.msg}") from None
        raise
    ips = [ip["address"].split("/")[0] for ip in result.get("ips", [])]
    _relist(state, key, ip=next((ip for ip in ips if ":" not in ip), None))
    entry.update(ips=ips, **{"class": _class_of(state, node, ips)})
    state.save()
    doc = _public(entry) | {"ready": ready}
    record = read_pods(state.path.parent).get(key)
    if ready and record is not None:  # a ready pod: back once every daemon uses it
        waiting = wait_applied(state, record, True)
        doc |= {"notApplied": waiting} if waiting else {}
    return doc


def set_ready(
    key: str, ready: bool, state_dir: Path = STATE_DIR, wait: bool = True
) -> dict[str, Any]:
    """Mark the runtime pod ready or not (what its EndpointSlices say), under the lab's lock:
    {"pod", "node", "ip", "ready"}. PodError when there is no such pod or no lab up."""
    _split(key)
    with LabState.locked(state_dir) as state:
        if state.doc.get("status") != "up":
            raise PodError("the lab is not up")
        pods = read_pods(state.path.parent)
        record = pods.get(key)
        if record is None:
            raise PodError(f"no runtime pod {key}")
        if record.get("ready") is not ready:
            record["ready"] = ready
            write_pods(state.path.parent, pods)
    doc = {"pod": key, "node": record["node"], "ip": record.get("ip"), "ready": ready}
    waiting = wait_applied(state, record, ready) if wait else []
    return doc | ({"notApplied": waiting} if waiting else {})


APPLY_WAIT = 10.0  # seconds `set_ready` waits for every daemon to use the change


def wait_applied(
    state: LabState, record: dict[str, Any], ready: bool, timeout: float = APPLY_WAIT
) -> list[str]:
    """Wait until every node daemon's report shows the pod's endpoint as `ready` in every
    service port that selects it; the nodes that did not within `timeout` (none: applied,
    or no service selects the pod)."""
    import time

    ip = record.get("ip")
    if not ip or not _selected(state, record):
        return []
    deadline = time.monotonic() + timeout
    while True:
        late = [
            r["node"]
            for r in state.of_kind("load")
            if r.get("state_dir") and not _reported(Path(r["state_dir"]), ip, ready)
        ]
        if not late or time.monotonic() > deadline:
            return late
        time.sleep(0.02)


def _selected(state: LabState, record: dict[str, Any]) -> bool:
    """Whether a service port of the lab's artifacts may have the pod as a backend."""
    from netcc.contract import services as dyn

    load = next(iter(state.of_kind("load")), None)
    try:
        services = dyn.load((Path(load["out"]) / dyn.SERVICES_FILE).read_bytes()) if load else None
    except (OSError, ValueError):
        return False
    if services is None:
        return False
    from netcc.lab.endpoints import selected

    ip = IPv4Address(record["ip"])
    return any(
        selected(record, p) and services.placement(p, ip) is not None for p in services.ports
    )


def _reported(state_dir: Path, ip: str, ready: bool) -> bool:
    """Whether the daemon's report lists `ip` with readiness `ready` wherever it lists it."""
    try:
        doc = json.loads((state_dir / "daemon.json").read_text())
    except (OSError, ValueError):
        return False
    seen = [
        b["ready"]
        for p in (doc.get("services") or {}).get("ports", [])
        for b in p.get("backends", [])
        if b["address"].split(":")[0] == ip
    ]
    return bool(seen) and all(r is ready for r in seen)


def _admit(state: LabState, key: str, node: str) -> tuple[NodePlan, dict[str, Any]]:
    """Whether `key` may be added on `node` now (run under the lab's lock): the node's plan
    and network config list; PodError saying why not."""
    if state.doc.get("status") != "up":
        raise PodError("the lab is not up")
    plan = plan_from_doc(state.doc["plan"])
    node_plan = next((n for n in plan.nodes if n.name == node), None)
    if node_plan is None:
        raise PodError(f"no node {node} (nodes: {', '.join(n.name for n in plan.nodes)})")
    if any(r["key"] == key for r in state.of_kind("pod")) or any(p.key == key for p in plan.pods):
        raise PodError(f"pod {key} exists already")
    if not any(r["node"] == node for r in state.of_kind("daemon")):
        raise PodError(
            f"no node daemon runs on {node}: the lab's artifacts declare no workload class"
        )
    if not runtime.daemon_running(state, node):
        raise PodError(
            f"the node daemon of {node} is not running: `netcc lab daemon restart {node}`"
        )
    return node_plan, _conflist(state, node)


def _loopback_up(netns: str) -> None:
    from pyroute2 import IPRoute

    with lab_netns.entered(netns), IPRoute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")


def _public(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "pod": entry["key"],
        "node": entry["node"],
        "netns": entry["netns"],
        "ips": entry.get("ips", []),
        "class": entry.get("class"),
    }


def _forget(state: LabState, entry: dict[str, Any]) -> None:
    """Remove the pod's namespace and API entry, and its resource."""
    lab_netns.remove(entry["netns"])
    _unlist(state, entry["key"])
    state.forget([entry])


def _relist(state: LabState, key: str, **fields: Any) -> None:
    """Set fields of the pod's API entry, if it is still listed (a read-modify-write, under
    the lab's lock)."""
    with lab_lock(state.path.parent):
        pods = read_pods(state.path.parent)
        if key in pods:
            pods[key] |= fields
            write_pods(state.path.parent, pods)


def _unlist(state: LabState, key: str) -> None:
    """Take the pod out of the pod API's list (a read-modify-write, under the lab's lock)."""
    with lab_lock(state.path.parent):
        pods = read_pods(state.path.parent)
        if pods.pop(key, None) is not None:
            write_pods(state.path.parent, pods)


def delete(key: str, state_dir: Path = STATE_DIR) -> dict[str, Any]:
    """CNI DEL of the pod, then its namespace and API entry go; what it was."""
    state = LabState.load(state_dir)
    entry = next((r for r in state.of_kind("pod") if r["key"] == key), None)
    if entry is None:
        raise PodError(f"no runtime pod {key}")
    remove(state, entry)
    state.forget([entry])
    return _public(entry)


def remove(state: LabState, entry: dict[str, Any]) -> str:
    """DEL through the node's config list (spooled by the plugin if the daemon is down), then
    the namespace and the API entry; for `down` too."""
    with contextlib.suppress(PodError):
        conflist = _conflist(state, entry["node"])
        try:
            _runtime(state, entry["nodeNetns"]).delete(conflist, _attachment(entry))
        except CniRuntimeError as e:
            raise PodError(f"DEL of {entry['key']} failed: {e}") from None
    lab_netns.remove(entry["netns"])
    _unlist(state, entry["key"])
    return f"pod {entry['key']}"


def with_runtime_pods(plan: LabPlan, state: LabState) -> LabPlan:
    """`plan` with the runtime pods that got an address, so probes reach them by name."""
    extra = tuple(
        PodPlan(r["key"], r["netns"], r["node"], tuple(IPv4Address(ip) for ip in r["ips"]), "")
        for r in state.of_kind("pod")
        if r.get("ips")
    )
    return dataclasses.replace(plan, pods=plan.pods + extra) if extra else plan


def listed(state: LabState) -> dict[str, dict[str, Any]]:
    """The runtime pods by key, for `lab status` (with their readiness, as published)."""
    published = read_pods(state.path.parent)
    return {
        r["key"]: _public(r) | {"ready": bool(published.get(r["key"], {}).get("ready"))}
        for r in state.of_kind("pod")
    }
