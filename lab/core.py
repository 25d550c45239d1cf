"""`netcc lab`: a spec's cluster built from network namespaces, with the real datapath loaded.

`up` builds the topology (`lab_topology`), compiles the spec (or takes `--artifacts OUT`) and
runs the node loader on every node exactly as on a real node: inside that node's namespace,
through the loader's Python API. `probe` sends real TCP and UDP between namespaces
(`lab_probe`), names the rule behind the verdict with `netcc.loader.trace` and reads what the
loaded datapath's own counters recorded. `down` removes exactly what the state file
(`lab_state`) lists, also after a crash half-way through `up`, and nothing outside the lab's
own names (`netcc-*` namespaces, its state directory, its bpffs directory).

Longer than most modules (~570 lines) on purpose: `up`, `probe` and `down` share one state
file and one undo order, which read best side by side.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from netcc.lab import netns as lab_netns
from netcc.lab import pods as lab_pods
from netcc.lab import runtime as lab_runtime
from netcc.lab import wireguard as lab_wireguard
from netcc.lab.plan import PREFIX as NETNS_PREFIX
from netcc.lab.plan import (
    LabPlan,
    LabPlanError,
    plan_from_doc,
    plan_lab,
    plan_to_doc,
    resolve_endpoint,
)
from netcc.lab.probe import DEFAULT_TIMEOUT, Probe, ProbeResult, run_probes
from netcc.lab.state import STATE_DIR, LabState, LabStateError
from netcc.lab.topology import LabBuildError, TopologyBuilder
from netcc.loader.wireguard.uapi import NETNS_SOCKET_BASE

PIN_BASE = "/sys/fs/bpf/netcc-lab"
OUT_NAME = "out"
LOADER_UNAVAILABLE = "loader not available"
# The lab, `netcc lab wg` and its tests drive wireguard-go (uapi.wg_command): never let the
# loader's `auto` pick the kernel module where one exists.
WIREGUARD_BACKEND = "userspace"


class LabError(Exception):
    """A lab operation that cannot go on; the message says why."""


# --- the node loader's API -------------------------------------------------------------------


def _loader_function(module: str, name: str) -> Callable[..., Any] | None:
    try:
        mod = importlib.import_module(f"netcc.loader.{module}")
    except ImportError:
        return None
    fn = getattr(mod, name, None)
    return fn if callable(fn) else None


def loader_unavailable_reason() -> str | None:
    """None when `netcc.loader.apply.apply` can be called, else why not."""
    if _loader_function("apply", "apply") is None:
        return f"{LOADER_UNAVAILABLE} (no netcc.loader.apply.apply)"
    return None


def _call(fn: Callable[..., Any], **given: Any) -> Any:
    """Call a loader function with the arguments its signature names (out, node, pin_root)."""
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return fn(**given)
    return fn(**{k: v for k, v in given.items() if k in params})


def _jsonable(value: Any) -> Any:
    """A loader result as JSON, whatever it is (dataclass, mapping, list or object)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return str(value)


# --- up --------------------------------------------------------------------------------------


@dataclasses.dataclass
class UpReport:
    inventory: dict[str, Any]
    timings: dict[str, float]
    out: str | None
    loaded: dict[str, Any]


def up(
    spec_path: str | Path,
    external: list[str] | tuple[str, ...] = (),
    artifacts: str | Path | None = None,
    load: bool = True,
    state_dir: Path = STATE_DIR,
    fail_after: int | None = None,
    hard: bool = False,
) -> UpReport:
    """Bring the spec's cluster up. On any failure everything made so far is removed again."""
    from netcc.frontend import parse_spec

    started = time.perf_counter()
    spec_path = Path(spec_path)
    try:
        spec = spec_path.read_bytes()
    except OSError as e:
        raise LabError(f"cannot read {spec_path}: {e.strerror}") from None
    from netcc.sources.bundle import SourceError
    from netcc.sources.readers import disk_bundle

    try:
        bundle = disk_bundle(spec, spec_path)
    except SourceError as e:
        raise LabError(str(e)) from None
    cluster, _ = parse_spec(spec, str(spec_path), bundle)
    plan = plan_lab(cluster, external)
    if load and (reason := loader_unavailable_reason()):
        raise LabError(f"{reason}; `--no-load` brings the lab up without policy")
    state = LabState.create(
        state_dir,
        spec=str(spec_path.resolve()),
        plan=plan_to_doc(plan),
        inventory=plan.inventory(),
        loaded=False,
    )
    timings = {"spec": time.perf_counter() - started}
    try:
        mark = time.perf_counter()
        TopologyBuilder(plan, state, fail_after, hard).build()
        timings["topology"] = time.perf_counter() - mark
        out, loaded = None, {}
        if load:
            mark = time.perf_counter()
            out = _artifacts(spec, spec_path, artifacts, state, plan, bundle)
            timings["compile"] = time.perf_counter() - mark
            mark = time.perf_counter()
            loaded = _load_all(plan, out, state)
            timings["loader"] = time.perf_counter() - mark
            if lab_runtime.has_classes(out):  # runtime pods: a node daemon on every node
                mark = time.perf_counter()
                try:
                    lab_runtime.start_all(state, WIREGUARD_BACKEND)
                except lab_runtime.LabRuntimeError as e:
                    raise LabError(str(e)) from e
                timings["daemons"] = time.perf_counter() - mark
        timings["total"] = time.perf_counter() - started
        state.update(status="up", timings=timings, loader=loaded, loaded=load)
    except BaseException as e:
        try:
            cleanup = down(state_dir)
            left = cleanup.problems
        except Exception as d:
            left = [f"{type(d).__name__}: {d}"]
        if left:
            e.add_note("cleaning up failed too; run `netcc lab down`:\n  " + "\n  ".join(left))
        raise
    return UpReport(plan.inventory(), timings, str(out) if out else None, loaded)


def _artifacts(
    spec: bytes,
    spec_path: Path,
    given: str | Path | None,
    state: LabState,
    plan: LabPlan,
    bundle: Any = None,
) -> Path:
    """The OUT the nodes load: `given`, checked against the plan, or the spec compiled."""
    from netcc.contract.lock import LockError, verify_lock
    from netcc.loader.datapath import pod_nodes

    if given is not None:
        out = Path(given).resolve()
    else:
        from netcc.pipeline import compile_spec
        from netcc.write.tree import write_tree

        out = state.path.parent / OUT_NAME
        state.record("dir", path=str(out))
        write_tree(compile_spec(spec, str(spec_path), bundle), out)
    try:
        verify_lock(out)
        placed = pod_nodes(out)
    except (LockError, OSError, ValueError, KeyError) as e:
        raise LabError(f"{out}: not a usable artifact directory: {e}") from None
    wanted = {str(ip): p.node for p in plan.pods for ip in p.ips}
    if placed != wanted:
        raise LabError(
            f"{out} does not place the spec's pods on the same nodes; compile the spec again"
        )
    state.update(out=str(out))
    return out


def _load_all(plan: LabPlan, out: Path, state: LabState) -> dict[str, Any]:
    """Run the loader for every node inside the node's namespace, as on a real node."""
    from netcc.loader.bpffs import ensure_bpffs

    apply = _loader_function("apply", "apply")
    if apply is None:
        raise LabError(LOADER_UNAVAILABLE)
    ensure_bpffs()  # mounted for good if it was not: other tools expect it there
    if os.path.exists(PIN_BASE):
        raise LabError(f"{PIN_BASE} exists but no lab is up; it is not this lab's: remove it")
    state.record("pins", path=PIN_BASE)
    os.makedirs(PIN_BASE, mode=0o700)
    state.record("dir", path=str(state.path.parent / "nodes"))
    results = {}
    for node in plan.nodes:
        where = {
            "pin_root": f"{PIN_BASE}/{node.name}",
            "state_dir": str(state.path.parent / "nodes" / node.name),
        }
        if ifname := lab_wireguard.tunnel_ifname(out, node.name):
            lab_wireguard.record(state, node.name, node.netns, ifname)
        state.record("load", node=node.name, netns=node.netns, out=str(out), **where)
        try:
            with lab_netns.entered(node.netns):
                results[node.name] = _jsonable(
                    _call(apply, out=out, node=node.name, wireguard=WIREGUARD_BACKEND, **where)
                )
        except Exception as e:
            error = LabError(f"the loader failed on {node.name}: {type(e).__name__}: {e}")
            if getattr(e, "log", ""):
                error.add_note(str(e.log))
            raise error from e
    return results


# --- down ------------------------------------------------------------------------------------


@dataclasses.dataclass
class DownReport:
    removed: list[str]
    problems: list[str]  # what could not be removed (kept in the state file)
    warnings: list[str]  # foreign things noticed and left alone


def down(state_dir: Path = STATE_DIR) -> DownReport:
    """Remove everything the state file lists, last made first; keep what could not go."""
    state = LabState.load(state_dir)
    removed: list[str] = []
    problems: list[str] = []
    warnings: list[str] = []
    gone: list[dict[str, Any]] = []
    detach = _loader_function("detach", "detach")
    inodes = set()
    for r in state.of_kind("netns"):
        with contextlib.suppress(OSError):
            inodes.add(lab_netns.inode(r["name"]))
    daemons = lab_wireguard.daemon_pids({r["inode"] for r in state.of_kind("wireguard")})
    daemons = [*daemons, *lab_runtime.daemon_pids(state)]
    for pid in set(lab_netns.pids_in(inodes)) - set(daemons):
        warnings.append(f"process {pid} runs in a lab namespace; not the lab's, left alone")
    for r in reversed(state.resources):
        try:
            _check_ours(r, state.path.parent)
            what = _remove(r, detach, warnings, state)
        except Exception as e:
            problems.append(f"{_describe(r)}: {type(e).__name__}: {e}")
            continue
        gone.append(r)
        if what:
            removed.append(what)
    state.forget(gone)
    if not state.resources and not problems:
        state.remove()
    return DownReport(removed, problems, warnings)


def _describe(r: dict[str, Any]) -> str:
    name = r.get("name") or r.get("key") or r.get("node") or r.get("path") or r.get("socket")
    return f"{r['kind']} {name}"


def _check_ours(r: dict[str, Any], state_root: Path) -> None:
    """Refuse a state entry naming anything outside the lab's own names (a damaged file)."""
    kind = r["kind"]
    netns = r.get("name") if kind == "netns" else r.get("netns")
    lab_kinds = ("netns", "link", "load", "wireguard", "pod", "daemon")
    if kind in lab_kinds and not str(netns).startswith(NETNS_PREFIX):
        raise LabStateError(f"{_describe(r)}: not a lab namespace; left alone")
    pins = r.get("path") if kind == "pins" else r.get("pin_root") if kind == "load" else None
    if pins is not None and Path(PIN_BASE) not in (Path(pins), *Path(pins).parents):
        raise LabStateError(f"{_describe(r)}: not under {PIN_BASE}; left alone")
    if kind == "kubeapi" and Path(r["socket"]).parent.resolve() != state_root.resolve():
        raise LabStateError(f"{_describe(r)}: not under {state_root}; left alone")
    if kind == "wireguard" and Path(r["dir"]).parent != NETNS_SOCKET_BASE:
        raise LabStateError(f"{_describe(r)}: not under {NETNS_SOCKET_BASE}; left alone")
    path = r.get("path") if kind == "dir" else r.get("state_dir") if kind == "load" else None
    if path is not None and state_root.resolve() not in Path(path).resolve().parents:
        raise LabStateError(f"{_describe(r)}: not under {state_root}; left alone")


def _remove(
    r: dict[str, Any], detach: Callable[..., Any] | None, warnings: list[str], state: LabState
) -> str | None:
    """Undo one resource; a description of what went, or None if it was already gone."""
    kind = r["kind"]
    if kind == "load":
        detached = None
        if detach is not None and lab_netns.exists(r["netns"]):
            try:
                with lab_netns.entered(r["netns"]):
                    _call(
                        detach,
                        out=Path(r["out"]),
                        node=r["node"],
                        pin_root=r["pin_root"],
                        state_dir=r.get("state_dir"),
                    )
                detached = f"loader on {r['node']}"
            except Exception as e:  # a half-applied node, say: what follows removes it all
                warnings.append(f"loader detach on {r['node']}: {type(e).__name__}: {e}")
        # With or without a detach, the hooks go with the namespace's links, the pins with
        # the `pins` resource, and the loader's state directory (the lab's) here.
        if r.get("state_dir") and os.path.exists(r["state_dir"]):
            shutil.rmtree(r["state_dir"])
        return detached
    if kind == "pins":
        if not os.path.exists(r["path"]):
            return None
        shutil.rmtree(r["path"])
        return f"pins {r['path']}"
    if kind == "netns":
        return f"netns {r['name']}" if lab_netns.remove(r["name"]) else None
    if kind == "dir":
        if not os.path.exists(r["path"]):
            return None
        shutil.rmtree(r["path"])
        return f"dir {r['path']}"
    if kind == "link":
        return None  # links live in the lab's namespaces and go with them
    if kind == "wireguard":
        return lab_wireguard.remove(r)
    if kind == "pod":
        return lab_pods.remove(state, r)
    if kind in ("daemon", "kubeapi"):
        return lab_runtime.stop(r)
    raise LabStateError(f"unknown resource kind {kind}")


# --- status and probe ------------------------------------------------------------------------


def _plan(state: LabState) -> LabPlan:
    """The lab's plan with its runtime pods in it, so probes reach them by name."""
    if state.doc.get("status") != "up":
        raise LabError("the lab is not up (half-made?); run `netcc lab down`")
    return lab_pods.with_runtime_pods(plan_from_doc(state.doc["plan"]), state)


def status(state_dir: Path = STATE_DIR) -> dict[str, Any]:
    """The inventory, and per node what the loader reported (or its status, if it has one)."""
    state = LabState.load(state_dir)
    doc = dict(state.doc.get("inventory", {}))
    doc["status"] = state.doc.get("status")
    doc["out"] = state.doc.get("out")
    doc["pods"] = lab_pods.listed(state)
    if state.doc.get("loaded"):
        loader_status = _loader_function("status", "status")
        loader = {}
        for r in state.of_kind("load"):
            info: Any = state.doc.get("loader", {}).get(r["node"])
            if loader_status is not None and lab_netns.exists(r["netns"]):
                try:
                    with lab_netns.entered(r["netns"]):
                        info = _jsonable(
                            _call(
                                loader_status,
                                out=Path(r["out"]),
                                node=r["node"],
                                pin_root=r["pin_root"],
                                state_dir=r.get("state_dir"),
                            )
                        )
                except Exception as e:
                    info = {"error": f"{type(e).__name__}: {e}"}
            loader[r["node"]] = info
        doc["loader"] = loader
    return doc


@dataclasses.dataclass
class ProbeReport:
    src: str
    dst: str
    src_ip: str
    dst_ip: str
    port: int
    protocol: str
    allowed: bool
    detail: str
    decided_by: list[dict[str, Any]]
    counted: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    trace_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": "allow" if self.allowed else "deny",
            "src": self.src,
            "dst": self.dst,
            "src_ip": self.src_ip,
            "dst_ip": self.dst_ip,
            "port": self.port,
            "protocol": self.protocol,
            "detail": self.detail,
            "decided_by": self.decided_by,
            "trace_agrees": self.trace_agrees,
            "counted": self.counted,
            **({"trace_error": self.trace_error} if self.trace_error else {}),
        }

    @property
    def trace_agrees(self) -> bool | None:
        """Whether the compiled datapath's trace gives the verdict the real packets got."""
        if not self.decided_by:
            return None
        return all(h["passed"] for h in self.decided_by) == self.allowed


def probe(
    src: str,
    dst: str,
    port: int,
    protocol: str,
    timeout: float = DEFAULT_TIMEOUT,
    state_dir: Path = STATE_DIR,
) -> ProbeReport:
    """One real connection from SRC's namespace to DST's first address, and what decided it."""
    state = LabState.load(state_dir)
    plan = _plan(state)
    protocol = protocol.upper()
    if protocol not in ("TCP", "UDP"):
        raise LabError(f"{protocol}: probes speak TCP or UDP")
    if not 0 < port < 65536:
        raise LabError(f"{port}: not a port")
    try:
        s, d = resolve_endpoint(plan, src), resolve_endpoint(plan, dst)
    except LabPlanError as e:
        raise LabError(str(e)) from None
    hooked = []  # the nodes whose hooks the packets meet
    for e in (s, d):
        node = (
            next((p.node for p in plan.pods if p.key == e.name), None) if e.kind == "pod" else None
        )
        if node and node not in hooked:
            hooked.append(node)
    before = read_counters(state, hooked)
    (result,) = run_probes(
        [Probe(s.netns, str(s.ip), d.netns, str(d.ip), port, protocol)], timeout=timeout
    )
    after = read_counters(state, hooked)
    counted = []
    for (node, verdict), (name, packets) in after.items():
        moved = packets - before.get((node, verdict), (name, 0))[1]
        if moved > 0 and name != "ALLOW_NON_IP":  # ARP is not the probe's
            counted.append({"node": node, "verdict": verdict, "name": name, "packets": moved})
    out = state.doc.get("out") if state.doc.get("loaded") else None
    decided, trace_error = [], None
    if out:
        try:
            runtime = {ip: r["node"] for r in state.of_kind("pod") for ip in r.get("ips", [])}
            decided = decided_by(Path(out), str(s.ip), str(d.ip), port, protocol, runtime)
        except Exception as e:  # OUT changed or gone since `up`: the packets' verdict stands
            trace_error = f"{type(e).__name__}: {e}"
    return ProbeReport(
        src,
        dst,
        str(s.ip),
        str(d.ip),
        port,
        protocol,
        result.allowed,
        result.detail,
        decided,
        counted,
        trace_error,
    )


def read_counters(state: LabState, nodes: list[str]) -> dict[tuple[str, int], tuple[str, int]]:
    """(node, verdict) -> (name, packets): the loaded datapath's own `netcc_stats` counters,
    read through the loader's status inside each node's namespace; empty without a loader."""
    fn = _loader_function("status", "status")
    if fn is None or not state.doc.get("loaded"):
        return {}
    loads = {r["node"]: r for r in state.of_kind("load")}
    found: dict[tuple[str, int], tuple[str, int]] = {}
    for node in nodes:
        r = loads.get(node)
        if r is None:
            continue
        try:
            with lab_netns.entered(r["netns"]):
                doc = _call(fn, node=node, pin_root=r["pin_root"], state_dir=r.get("state_dir"))
        except Exception:
            continue  # counters are evidence, not the verdict: the probe stands without them
        for n in doc.get("nodes", []) if isinstance(doc, dict) else []:
            for c in n.get("counters", []):
                found[(node, c["verdict"])] = (c["name"], c["packets"])
    return found


def decided_by(
    out: Path,
    src_ip: str,
    dst_ip: str,
    port: int,
    protocol: str,
    runtime: dict[str, str] | None = None,
) -> list[dict]:
    """Each hop of the compiled datapath (BPF_PROG_TEST_RUN) and the verdict it counted;
    `runtime`: the lab's class pods (address -> node)."""
    from netcc.contract.programs import policy_direction
    from netcc.loader.trace import trace

    return [
        {
            "node": h.node,
            "direction": policy_direction(h.program),
            "passed": h.passed,
            "verdict": h.verdict,
            "rule": h.doc,
        }
        for h in trace(out, src_ip, dst_ip, port, protocol, runtime=runtime)
    ]


def probe_many(
    probes: list[tuple[str, str, int, str]],
    timeout: float = DEFAULT_TIMEOUT,
    state_dir: Path = STATE_DIR,
) -> list[ProbeResult]:
    """Many probes at once (one timeout for the batch): (src, dst, port, protocol) each."""
    plan = _plan(LabState.load(state_dir))
    batch = []
    for src, dst, port, protocol in probes:
        s, d = resolve_endpoint(plan, src), resolve_endpoint(plan, dst)
        batch.append(Probe(s.netns, str(s.ip), d.netns, str(d.ip), port, protocol.upper()))
    return run_probes(batch, timeout=timeout)


__all__ = [
    "LOADER_UNAVAILABLE",
    "DownReport",
    "LabBuildError",
    "LabError",
    "LabPlanError",
    "LabStateError",
    "ProbeReport",
    "UpReport",
    "decided_by",
    "down",
    "loader_unavailable_reason",
    "probe",
    "probe_many",
    "read_counters",
    "status",
    "up",
]
