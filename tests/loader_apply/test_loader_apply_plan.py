"""The plan of `netcc load apply` without a kernel: desired states and snapshots built by hand,
and the actions the diff gives for each (first apply, nothing to do, drift, new versions that
reuse, migrate or recreate maps, pods and uplinks that come and go, runtime endpoints, a
change of attach mode)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from netcc.contract.programs import PROGRAMS
from netcc.loader import libbpf
from netcc.loader.actions import (
    ApplyStatus,
    AttachHook,
    Cleanup,
    DeleteEntries,
    DetachHook,
    EnsureClsact,
    FlushFlows,
    HookChange,
    LoadObject,
    MigrateEntries,
    ReplaceHook,
    UpsertEntries,
    WriteState,
    describe,
)
from netcc.loader.artifacts import Artifacts
from netcc.loader.desired import Binding, Desired, Interface, RuntimeEndpoint
from netcc.loader.errors import ApplyError
from netcc.loader.link.hook import Mode
from netcc.loader.mapdata import Layout
from netcc.loader.plan import Plan, plan
from netcc.loader.snapshot import Applied, HookState, PinnedMap, Snapshot
from netcc.loader.state import Paths


def _struct(size: int, *fields: tuple[str, str]) -> dict:
    sizes = {"u8": 1, "u16": 2, "u32": 4, "u64": 8, "ipv4": 4}
    out, off = [], 0
    for name, enc in fields:
        out.append({"name": name, "offset": off, "size": sizes[enc], "encoding": enc})
        off += sizes[enc]
    assert off == size
    return {"size": size, "fields": out}


STRUCTS = {
    "ip_key": _struct(4, ("ip", "ipv4")),
    "endpoint_info": _struct(
        16, ("workload", "u32"), ("profile", "u32"), ("ifindex", "u32"), ("ingress_deny", "u32")
    ),
    "ipcache_entry": _struct(8, ("identity", "u32"), ("peer", "u32")),
    "policy_key": _struct(8, ("profile", "u32"), ("port", "u32")),
    "policy_entry": _struct(4, ("verdict", "u32")),
    "lb_key": _struct(8, ("vip", "ipv4"), ("port", "u16"), ("proto", "u8"), ("scope", "u8")),
    "lb_entry": _struct(4, ("row", "u32")),
    "ct_key": _struct(8, ("local", "ipv4"), ("remote", "ipv4")),
    "ct_entry": _struct(8, ("verdict", "u32"), ("flags", "u32")),
    "stats_entry": _struct(16, ("packets", "u64"), ("bytes", "u64")),
}


def layout_doc(ct_capacity: int = 1024) -> dict:
    maps = {
        "netcc_endpoints": ("hash", "ip_key", "endpoint_info", 64),
        "netcc_ipcache": ("hash", "ip_key", "ipcache_entry", 64),
        "netcc_policy_exact": ("hash", "policy_key", "policy_entry", 64),
        "netcc_lb_services": ("hash", "lb_key", "lb_entry", 64),
        "netcc_ct": ("lru_hash", "ct_key", "ct_entry", ct_capacity),
        "netcc_flow_cache": ("lru_hash", "ct_key", "ct_entry", 16),
        "netcc_stats": ("percpu_array", "u32", "stats_entry", 64),
    }
    return {
        "structs": STRUCTS,
        "maps": {
            n: dict(zip(("type", "key", "value", "max_entries"), m, strict=True))
            for n, m in maps.items()
        },
    }


def _v(number: int, name: str, action: str, **extra: Any) -> dict:
    return {"number": number, "name": name, "action": action, "doc": "", **extra}


def verdicts(*rules: str) -> dict:
    reserved = [_v(2, "ALLOW_UNISOLATED", "allow"), _v(16, "DROP_MALFORMED", "drop")]
    ours = [
        _v(32 + i, f"RULE_{32 + i}", "allow", policy=p, direction="ingress", index=0)
        for i, p in enumerate(rules)
    ]
    return {"verdicts": reserved + ours + [_v(40, "DENY_40", "drop", pod="app/b")]}


CLIENT, SERVER, NODE = "10.0.1.10", "10.0.1.11", "192.0.2.1"
PODS = {CLIENT: (7, "vclient"), SERVER: (8, "vserver")}


def _endpoint(ip: str, workload: int) -> dict:
    value = {"workload": workload, "profile": workload, "ingress_deny": 40}
    return {"key": {"ip": ip}, "value": value, "note": f"app/{ip}"}


def _policy(port: int, verdict: int) -> dict:
    return {"key": {"profile": 2, "port": port}, "value": {"verdict": verdict}}


def maps(port: int = 8080, nodeport: bool = False, peer: int = 1) -> dict[str, list[dict]]:
    services = [{"key": {"vip": NODE, "port": 30080, "proto": 6, "scope": 1}, "value": {"row": 1}}]
    return {
        "netcc_endpoints": [_endpoint(CLIENT, 1), _endpoint(SERVER, 2)],
        "netcc_ipcache": [
            {"key": {"ip": ip}, "value": {"identity": 100 + w, "peer": peer}}
            for ip, w in ((CLIENT, 1), (SERVER, 2))
        ],
        "netcc_policy_exact": [_policy(port, 32)],
        "netcc_lb_services": services if nodeport else [],
    }


def desired(
    digest: str = "d1" * 32,
    mode: Mode = Mode.TCX,
    data: dict | None = None,
    rules: tuple[str, ...] = ("app/b",),
    ct_capacity: int = 1024,
    runtime: tuple[RuntimeEndpoint, ...] = (),
) -> Desired:
    layout = Layout(layout_doc(ct_capacity))
    art = Artifacts(Path("/out"), "n1", digest, {}, {}, layout, verdicts(*rules), data or maps())
    return Desired(art, Paths("n1", Path("/pins/n1"), Path("/state/n1")), mode, runtime)


def routes(*present: str) -> dict[str, Binding]:
    out = {}
    for ip in (CLIENT, SERVER):
        ifindex, name = PODS[ip]
        out[ip] = Binding(ifindex, name) if ip in present else Binding(reason="no route")
    return out


def applied_as(d: Desired, p: Plan, uplinks: tuple[Interface, ...] = ()) -> Snapshot:
    """What the kernel holds once plan `p` of `d` ran: every map pinned with the desired
    contents, the programs pinned, every hook running its program."""
    from netcc.loader import desired as desired_mod

    layout = d.artifacts.layout
    data = desired_mod.map_data(d, p.endpoints)
    programs = {name: 100 + i for i, name in enumerate(PROGRAMS)}
    pinned = {
        name: PinnedMap(
            {
                "type": libbpf.MAP_TYPES[m.type],
                "key_size": layout.size(m.key),
                "value_size": layout.size(m.value),
                "max_entries": m.max_entries,
            },
            data.get(name),
        )
        for name, m in layout.maps.items()
    }
    applied = Applied(
        digest=d.digest,
        pin_root=d.paths.pin_root,
        layout=layout,
        verdicts=d.artifacts.verdicts,
        hooks=tuple(h for _, h in sorted(p.hooks.items())),
        bindings={e.ip: e.ifindex for e in p.endpoints},
        programs=PROGRAMS,
        clsact_created=frozenset(h.ifindex for h in p.hooks.values() if h.mode.needs_clsact),
    )
    return Snapshot(
        applied,
        pinned,
        programs,
        {k: HookState(h, programs[h.program]) for k, h in p.hooks.items()},
        {e.ip: Binding(e.ifindex, e.ifname, e.reason) for e in p.endpoints if not e.runtime},
        uplinks,
    )


def first(d: Desired, present: tuple[str, ...] = (CLIENT, SERVER), **kw: Any) -> Snapshot:
    """The kernel after a first apply of `d` with these pods routed."""
    uplinks = kw.pop("uplinks", ())
    p = plan(d, Snapshot(routes=routes(*present), uplinks=uplinks))
    return applied_as(d, p, uplinks)


def kinds(p: Plan) -> list[str]:
    return [type(a).__name__ for a in p.actions]


# --- first apply, nothing to do, drift ---------------------------------------------------


def test_first_apply_loads_fills_attaches_and_records() -> None:
    d = desired(mode=Mode.TC)
    p = plan(d, Snapshot(routes=routes(CLIENT, SERVER)))
    assert p.status == ApplyStatus.APPLIED and p.mode == Mode.TC
    lines = describe(p.actions)
    assert lines[:3] == ["stage maps", "create map netcc_endpoints", "create map netcc_ipcache"]
    load = lines.index(f"load object {'d1' * 6}")
    assert lines[load + 1 : load + 5] == [
        "upsert 2 into netcc_endpoints",
        "upsert 2 into netcc_ipcache",
        "upsert 1 into netcc_policy_exact",
        "upsert 0 into netcc_lb_services",
    ]
    hooks = [a for a in p.actions if isinstance(a, AttachHook | EnsureClsact)]
    assert describe(hooks) == [
        "clsact on vclient",
        "attach vclient egress tc netcc_to_container",
        "attach vclient ingress tc netcc_from_container",
        "clsact on vserver",
        "attach vserver egress tc netcc_to_container",
        "attach vserver ingress tc netcc_from_container",
    ]
    assert not any(isinstance(a, FlushFlows | DetachHook | ReplaceHook) for a in p.actions)
    assert kinds(p)[-2:] == ["WriteState", "Cleanup"]
    assert "pin netcc_ct" in lines and "pin netcc_stats" in lines
    state = next(a for a in p.actions if isinstance(a, WriteState))
    assert state.clsact_live == {7, 8} and not state.had_state
    assert p.maps["netcc_ct"] == {"plan": "create"}
    assert p.maps["netcc_endpoints"] == {"plan": "create", "added": 2, "changed": 0}
    assert {p.change(k) for k in p.hooks} == {HookChange.ATTACHED}
    # the endpoint entries carry their interface
    d2 = desired()
    p2 = plan(d2, Snapshot(routes=routes(CLIENT, SERVER)))
    fill = next(a for a in p2.actions if isinstance(a, UpsertEntries))
    unpack = d2.artifacts.layout.unpack
    assert sorted(unpack("endpoint_info", v)["ifindex"] for v in fill.entries.values()) == [7, 8]
    assert all(h.link_pin == f"/pins/n1/links/{h.ifindex}-{h.direction}" for h in p2.hooks.values())


def test_same_version_in_place_is_unchanged() -> None:
    d = desired()
    p = plan(d, first(d))
    assert p.status == ApplyStatus.UNCHANGED and p.actions == []
    assert p.prog_ids["netcc_from_container"] == 100
    assert {p.change(k) for k in p.hooks} == {HookChange.KEPT}


def test_drift_is_repaired_and_only_the_drift() -> None:
    d = desired()
    snap = first(d)
    key = (8, "egress")
    snap.hooks[key] = dataclasses.replace(snap.hooks[key], prog_id=None)  # detached behind
    pinned = snap.maps["netcc_policy_exact"]
    layout = d.artifacts.layout
    stray = dict(layout.pack_entries("netcc_policy_exact", [_policy(22, 32)]))
    snap.maps["netcc_policy_exact"] = dataclasses.replace(
        pinned, contents={**(pinned.contents or {}), **stray}
    )
    p = plan(d, snap)
    assert p.status == ApplyStatus.REPAIRED
    assert not any(isinstance(a, LoadObject) for a in p.actions)
    assert kinds(p) == [
        "SaveContents",
        "DeleteEntries",
        "AttachHook",
        "FlushFlows",
        "WriteState",
        "Cleanup",
    ]
    assert describe(p.actions)[1:3] == [
        "delete 1 from netcc_policy_exact",
        "attach vserver egress tcx netcc_to_container",
    ]
    assert p.maps["netcc_policy_exact"] == {"plan": "reuse", "added": 0, "changed": 0, "removed": 1}
    assert p.change(key) == HookChange.ATTACHED
    assert p.change((7, "egress")) == HookChange.KEPT
    cleanup = p.actions[-1]
    assert isinstance(cleanup, Cleanup) and not cleanup.unpin_other_versions


def test_missing_program_pin_reloads_the_same_version() -> None:
    d = desired()
    snap = first(d)
    del snap.programs["netcc_to_container"]
    p = plan(d, snap)
    assert p.status == ApplyStatus.UPDATED
    load = next(a for a in p.actions if isinstance(a, LoadObject))
    assert not load.fresh_dir  # the version's own program directory: pins replaced in it
    assert all(p.maps[m] == {"plan": "reuse"} for m in ("netcc_ct", "netcc_stats"))
    assert {p.change(k) for k in p.hooks} == {HookChange.REPLACED}


# --- new versions ------------------------------------------------------------------------


def test_new_version_shares_maps_and_syncs_allow_lists_in_place() -> None:
    v1 = desired()
    v2 = desired("d2" * 32, data=maps(port=9090))
    p = plan(v2, first(v1))
    assert p.status == ApplyStatus.UPDATED
    assert {m["plan"] for m in p.maps.values()} == {"reuse"}
    lines = describe(p.actions)
    assert lines.index("upsert 1 into netcc_policy_exact") < lines.index(
        "delete 1 from netcc_policy_exact"
    )
    assert lines.index("delete 1 from netcc_policy_exact") < lines.index(
        "replace vclient egress tcx netcc_to_container"
    )
    assert {p.change(k) for k in p.hooks} == {HookChange.REPLACED}
    assert not any(isinstance(a, MigrateEntries) for a in p.actions)
    assert "pin netcc_ct" not in lines  # reused: the pin stays
    assert kinds(p)[-3:] == ["FlushFlows", "WriteState", "Cleanup"]
    cleanup = p.actions[-1]
    assert isinstance(cleanup, Cleanup) and cleanup.unpin_other_versions


def test_classification_and_policy_changing_together_recreate_the_data_maps() -> None:
    v1 = desired()
    v2 = desired("d2" * 32, data=maps(port=9090, peer=2))
    p = plan(v2, first(v1))
    why = "consistent snapshot: netcc_ipcache, netcc_policy_exact change together"
    for m in ("netcc_endpoints", "netcc_ipcache", "netcc_policy_exact", "netcc_lb_services"):
        assert p.maps[m]["plan"] == "recreate" and p.maps[m]["why"] == why
    assert p.maps["netcc_ct"] == {"plan": "reuse"}
    lines = describe(p.actions)
    assert "pin netcc_ipcache" in lines and "pin netcc_ct" not in lines
    assert "upsert 2 into netcc_ipcache" in lines  # filled whole, nothing deleted
    assert not any(isinstance(a, DeleteEntries) for a in p.actions)


def test_renumbered_verdicts_migrate_state_and_recreate_data_maps() -> None:
    v1 = desired()
    v2 = desired("d2" * 32, rules=("app/a", "app/b"))
    p = plan(v2, first(v1))
    assert p.maps["netcc_ct"] == {"plan": "migrate", "why": "verdicts renumbered"}
    assert p.maps["netcc_stats"] == {"plan": "migrate", "why": "verdicts renumbered"}
    assert p.maps["netcc_endpoints"]["why"] == "consistent snapshot: verdicts renumbered"
    # a cache holding verdicts is made anew and starts empty
    assert p.maps["netcc_flow_cache"] == {"plan": "create", "why": "verdicts renumbered"}
    migrations = [a for a in p.actions if isinstance(a, MigrateEntries)]
    assert [(a.map, a.second_pass) for a in migrations] == [
        ("netcc_ct", False),
        ("netcc_stats", False),
        ("netcc_ct", True),
        ("netcc_stats", True),
    ]
    assert migrations[0].translation.mapping[32] == 33
    lines = describe(p.actions)
    assert lines.index("migrate netcc_ct") < lines.index(
        "replace vclient egress tcx netcc_to_container"
    )
    assert lines.index("migrate netcc_ct (second pass)") > lines.index(
        "replace vserver ingress tcx netcc_from_container"
    )
    state = next(a for a in p.actions if isinstance(a, WriteState))
    assert state.stale_verdict == 15  # the loader's own: a free number below the first drop
    back = plan(v1, applied_as(v2, p))
    assert back.maps["netcc_ct"]["plan"] == "migrate"


def test_a_capacity_change_migrates_the_map() -> None:
    v1 = desired()
    v2 = desired("d2" * 32, ct_capacity=4096)
    p = plan(v2, first(v1))
    assert p.maps["netcc_ct"] == {"plan": "migrate", "why": "max_entries 1024 -> 4096"}
    assert p.maps["netcc_policy_exact"] == {"plan": "reuse", "added": 0, "changed": 0, "removed": 0}
    assert "pin netcc_ct" in describe(p.actions)
    gone = desired("d3" * 32)
    snap = first(v1)
    snap.maps["netcc_old"] = snap.maps["netcc_ct"]  # pinned by a version that had it
    assert "unpin netcc_old" in describe(plan(gone, snap).actions)


# --- pods, uplinks, runtime endpoints, modes ---------------------------------------------


def test_pods_that_come_and_go() -> None:
    d = desired()
    snap = first(d, present=(CLIENT,))
    assert set(snap.hooks) == {(7, "egress"), (7, "ingress")}
    snap.routes = routes(CLIENT, SERVER)  # the server's veth appeared
    p = plan(d, snap)
    assert p.status == ApplyStatus.REPAIRED and p.warnings == []
    assert [a.hook.ifindex for a in p.actions if isinstance(a, AttachHook)] == [8, 8]
    assert "upsert 1 into netcc_endpoints" in describe(p.actions)

    snap = first(d)
    snap.routes = routes(CLIENT)  # and went
    p = plan(d, snap)
    assert p.warnings == [f"pod {SERVER} (app/{SERVER}): no route; skipped"]
    detached = [a for a in p.actions if isinstance(a, DetachHook)]
    assert [(a.hook.ifindex, a.running) for a in detached] == [(8, True), (8, True)]
    assert {p.change(k) for k in ((8, "egress"), (8, "ingress"))} == {HookChange.DETACHED}
    assert "delete 1 from netcc_endpoints" in describe(p.actions)
    assert kinds(p).index("FlushFlows") < kinds(p).index("DetachHook")


def test_uplink_hooks_appear_and_disappear_with_nodeports() -> None:
    uplink = (Interface(3, "eth0"),)
    plain = desired()
    svc = desired("d2" * 32, data=maps(nodeport=True))
    assert svc.nodeport_addresses() == [NODE]
    snap = first(plain)
    snap.uplinks = uplink
    p = plan(svc, snap)
    attached = [a.hook for a in p.actions if isinstance(a, AttachHook)]
    assert [(h.ifname, h.role, h.program) for h in attached] == [
        ("eth0", "uplink", "netcc_to_uplink"),
        ("eth0", "uplink", "netcc_from_uplink"),
    ]
    back = first(svc, uplinks=uplink)
    back.uplinks = ()  # the next version has no NodePort: the snapshot finds no uplink
    p = plan(plain, back)
    detached = [a.hook for a in p.actions if isinstance(a, DetachHook)]
    assert [(h.ifindex, h.role) for h in detached] == [(3, "uplink"), (3, "uplink")]


def test_runtime_endpoints_are_bound_to_their_interface() -> None:
    pod = RuntimeEndpoint(
        "10.0.1.20", {"workload": 3, "profile": 3, "ingress_deny": 40}, 9, "nc0123", "app/c"
    )
    d = desired(runtime=(pod,))
    snap = first(desired())
    p = plan(d, snap)
    assert p.status == ApplyStatus.REPAIRED
    assert [a.hook.ifname for a in p.actions if isinstance(a, AttachHook)] == ["nc0123"] * 2
    upsert = next(a for a in p.actions if isinstance(a, UpsertEntries))
    (value,) = upsert.entries.values()
    assert d.artifacts.layout.unpack("endpoint_info", value)["ifindex"] == 9
    assert p.endpoints[-1].to_json()["runtime"] is True
    # applied, then the same again: nothing to do; the pod removed: its hooks go
    again = applied_as(d, p)
    assert plan(d, again).status == ApplyStatus.UNCHANGED
    gone = plan(desired(), again)
    assert [a.hook.ifindex for a in gone.actions if isinstance(a, DetachHook)] == [9, 9]
    with pytest.raises(ApplyError, match=r"10\.0\.1\.10 are also endpoints in OUT"):
        plan(desired(runtime=(dataclasses.replace(pod, ip=CLIENT),)), snap)


def test_switching_attach_mode_attaches_then_detaches() -> None:
    snap = first(desired(mode=Mode.TC))
    p = plan(desired(mode=Mode.TCX), snap)
    assert p.status == ApplyStatus.REPAIRED
    k = kinds(p)
    assert k.count("AttachHook") == 4 and k.count("DetachHook") == 4
    assert k.index("DetachHook") > max(i for i, n in enumerate(k) if n == "AttachHook")
    assert {a.hook.mode for a in p.actions if isinstance(a, DetachHook)} == {Mode.TC}
    assert {p.change(key) for key in p.hooks} == {HookChange.ATTACHED}
    cleanup = p.actions[-1]
    assert isinstance(cleanup, Cleanup)
    assert {h.ifindex for h in cleanup.clsact_owned} == {7, 8}  # netcc made them
    state = next(a for a in p.actions if isinstance(a, WriteState))
    assert state.clsact_live == frozenset() and state.mode == Mode.TCX


def test_refusals() -> None:
    d = desired()
    snap = first(d)
    assert snap.applied is not None
    snap.applied = dataclasses.replace(snap.applied, pin_root=Path("/elsewhere"))
    with pytest.raises(ApplyError, match="applied under /elsewhere, not /pins/n1; detach"):
        plan(d, snap)
    percpu = layout_doc()
    percpu["maps"]["netcc_policy_exact"]["type"] = "percpu_hash"
    bad = dataclasses.replace(d, artifacts=dataclasses.replace(d.artifacts, layout=Layout(percpu)))
    with pytest.raises(ApplyError, match="netcc_policy_exact is per-CPU"):
        plan(bad, Snapshot(routes=routes(CLIENT)))


def test_the_executor_runs_every_kind_of_action() -> None:
    from netcc.loader import actions
    from netcc.loader.execute import HANDLERS

    def leaves(cls: type) -> set[type]:
        subs = cls.__subclasses__()
        return set().union(*map(leaves, subs)) if subs else {cls}

    assert set(HANDLERS) == leaves(actions.Action)
