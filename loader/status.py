"""`netcc load status`: what is attached where, which artifacts, the verdict counters and the
flow events written and lost (`flow_events`).

Reads the node's state (`state.py`) and checks it against the kernel: every hook must run the
applied version's pinned program, every bound pod must still route through its interface and
have its endpoint entry bound there, and a pod that was skipped for lack of an interface must
still lack one. `ok` is true when all of that holds; the CLI exits 0 then and 1 otherwise, so
it can serve as a readiness or liveness probe.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Any

from netcc.contract.events import BUDGET_MAP
from netcc.contract.programs import PROGRAMS
from netcc.loader import attach, libbpf, migrate, state
from netcc.loader.artifacts import ENDPOINTS
from netcc.loader.ipsec.apply import format_status as format_ipsec
from netcc.loader.link.hook import Hook
from netcc.loader.mapdata import Layout, event_counters, verdict_counters
from netcc.loader.maps import BpfMap
from netcc.loader.netns import current_netns
from netcc.loader.routes import resolve_endpoints
from netcc.loader.state import Paths

STATS = "netcc_stats"
DAEMON_REPORT = "daemon.json"  # written by the node daemon (`netcc.loader.daemon.run`)


class StatusError(Exception):
    """Nothing applied where asked, or a state that cannot be read."""


def select_paths(
    node: str | None = None,
    pin_root: str | Path | None = None,
    state_dir: str | Path | None = None,
) -> list[Paths]:
    """The nodes to look at: the one named (or whose state dir is given), else every node
    whose state records this network namespace."""
    if state_dir is not None or node is not None:
        if node is None:
            doc = json.loads((Path(state_dir) / state.STATE_FILE).read_text())  # type: ignore[arg-type]
            node = doc["node"]
        return [state.paths_for(node, pin_root, state_dir)]
    here = list(current_netns())
    found = []
    for d in state.find_state_dirs():
        try:
            doc = json.loads((d / state.STATE_FILE).read_text())
        except (OSError, ValueError):
            continue
        if not _is_node_state(doc):
            continue  # another tool's state.json (the lab keeps one under /run/netcc/lab)
        if [doc["netns"].get("dev"), doc["netns"].get("ino")] == here:
            found.append(state.paths_for(doc["node"], doc.get("pin_root"), d))
    return found


def _is_node_state(doc: Any) -> bool:
    return (
        isinstance(doc, dict)
        and doc.get("version") == state.STATE_VERSION
        and isinstance(doc.get("node"), str)
        and isinstance(doc.get("digest"), str)
        and isinstance(doc.get("netns"), dict)
    )


def _prog(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    fd = libbpf.obj_get(path)
    try:
        return libbpf.prog_info(fd)
    finally:
        os.close(fd)


def counters(paths: Paths, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Packets and bytes per verdict (summed over CPUs), named from the applied verdicts."""
    layout = Layout(json.loads(state.read_copy(paths, state.LAYOUT_COPY)))
    table = migrate.verdict_table(
        json.loads(state.read_copy(paths, state.VERDICTS_COPY)), doc.get("stale_verdict")
    )
    out = []
    with BpfMap.pinned(paths.maps / STATS, layout) as stats:
        for n, (packets, nbytes) in verdict_counters(stats.fd, layout, STATS).items():
            v = table.get(n)
            if v is None and not packets:
                continue
            v = v or {"name": f"VERDICT_{n}", "action": "?", "doc": "not in verdicts.json"}
            row = {"verdict": n, "name": v["name"], "action": v["action"], "doc": v.get("doc", "")}
            for k in ("policy", "pod", "direction", "index"):
                if k in v:
                    row[k] = v[k]
            out.append(row | {"packets": packets, "bytes": nbytes})
    return out


def flow_events(paths: Paths) -> dict[str, int] | None:
    """Flow events the datapath wrote and those it could not (over a CPU's budget, the ring
    buffer full), summed over CPUs; None when the applied datapath has no budget map."""
    layout = Layout(json.loads(state.read_copy(paths, state.LAYOUT_COPY)))
    if BUDGET_MAP not in layout.maps or not (paths.maps / BUDGET_MAP).exists():
        return None
    with BpfMap.pinned(paths.maps / BUDGET_MAP, layout) as budget:
        got = event_counters(budget)
    return {"sent": got["sent"], "lostBudget": got["lost_budget"], "lostRing": got["lost_ring"]}


def _endpoint_ifindex(paths: Paths, layout: Layout, ip: str) -> int | None:
    with BpfMap.pinned(paths.maps / ENDPOINTS, layout) as endpoints:
        raw = endpoints.get(endpoints.pack_key({"ip": str(ipaddress.IPv4Address(ip))}))
        return None if raw is None else endpoints.unpack_value(raw)["ifindex"]


def node_status(paths: Paths, ipr: Any) -> dict[str, Any]:
    """The status of one node; `ok` and `problems` say whether everything expected holds."""
    doc = state.load_state(paths)
    if doc is None:
        raise StatusError(f"nothing applied for node {paths.node} ({paths.state_file} missing)")
    problems: list[str] = []
    digest = doc["digest"]
    programs = {}
    for p in doc.get("programs") or PROGRAMS:  # those the applied object has
        info = _prog(paths.prog_dir(digest) / p)
        programs[p] = None if info is None else {"id": info["id"], "tag": info["tag"]}
        if info is None:
            problems.append(f"program {p} of {digest[:12]} is not pinned")
    layout = Layout(json.loads(state.read_copy(paths, state.LAYOUT_COPY)))

    interfaces: dict[int, dict[str, Any]] = {}
    for h in doc["hooks"]:
        hook = Hook.from_json(h)
        want = (programs.get(hook.program) or {}).get("id")
        live = attach.hook_state(ipr, hook)
        got = live.prog_id
        iface = interfaces.setdefault(
            hook.ifindex,
            {"ifname": hook.ifname, "ifindex": hook.ifindex, "pods": [], "hooks": {}}
            | {"role": hook.role},
        )
        iface["hooks"][hook.direction] = {
            "mode": hook.mode.value,
            "program": hook.program,
            "prog_id": got,
            "expected_prog_id": want,
            "ok": got is not None and got == want,
        } | ({"link_id": live.link_id, "link_pin": hook.link_pin} if hook.link_pin else {})
        if got is None:
            problems.append(f"{hook.ifname} {hook.direction}: nothing attached ({hook.mode})")
        elif got != want:
            problems.append(f"{hook.ifname} {hook.direction}: program {got}, expected {want}")

    recorded = doc.get("endpoints", [])
    live = {e.ip: e for e in resolve_endpoints(ipr, [{"key": {"ip": r["ip"]}} for r in recorded])}
    pending = []
    for r in recorded:
        now = live[r["ip"]]
        if r.get("ifindex"):
            iface = interfaces.get(r["ifindex"])
            if iface is not None:
                iface["pods"].append({"ip": r["ip"], "pod": r.get("note", "")})
            if now.ifindex != r["ifindex"]:
                where = f"ifindex {now.ifindex}" if now.ifindex else now.reason
                problems.append(f"pod {r['ip']}: routed to {where}, bound to {r['ifindex']}")
            try:
                bound = _endpoint_ifindex(paths, layout, r["ip"])
            except (OSError, libbpf.BpfError) as e:
                bound = f"unreadable ({e})"
            if bound != r["ifindex"]:
                problems.append(f"pod {r['ip']}: endpoint entry bound to {bound}")
        else:
            pending.append({"ip": r["ip"], "pod": r.get("note", ""), "reason": r.get("reason")})
            if now.ifindex:
                problems.append(
                    f"pod {r['ip']}: now routed to {now.ifname}, which has no hooks; apply again"
                )
    daemon = _daemon_or_problem(paths, problems)
    rows = _counters_or_problem(paths, doc, problems)
    try:
        events = flow_events(paths)
    except (OSError, ValueError, libbpf.BpfError) as e:
        problems.append(f"flow event counters unreadable: {e}")
        events = None
    tunnel = _tunnel_or_problem(paths, problems)
    ipsec = _ipsec_or_problem(paths, problems)
    return {
        "node": paths.node,
        "ok": not problems,
        "problems": problems,
        "digest": digest,
        "applied_at": doc.get("applied_at"),
        "out": doc.get("out"),
        "mode": doc.get("mode"),
        "pin_root": str(paths.pin_root),
        "state_dir": str(paths.state_dir),
        "programs": programs,
        "interfaces": [interfaces[i] for i in sorted(interfaces)],
        "pending": pending,
        "counters": rows,
        "events": events,
        "wireguard": tunnel,
        "ipsec": ipsec,
        "daemon": daemon,
    }


def _daemon_or_problem(paths: Paths, problems: list[str]) -> dict[str, Any] | None:
    """What the node daemon (`netcc load run`) last reported, if one runs here: artifacts it
    refused and a datapath it could not apply are problems."""
    try:
        doc = json.loads((paths.state_dir / DAEMON_REPORT).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    refused = doc.get("refused")
    if isinstance(refused, dict):
        problems.append(
            f"daemon refused artifacts {str(refused.get('digest'))[:12]} "
            f"({refused.get('out')}): {refused.get('reason')}"
        )
    if doc.get("running") and not doc.get("ready"):
        problems.append(f"daemon not ready: {doc.get('reason')}")
    return doc


def _tunnel_or_problem(paths: Paths, problems: list[str]) -> dict[str, Any] | None:
    """The WireGuard device's peers and handshakes, when the node has a tunnel."""
    from netcc.loader.wireguard.apply import tunnel_status
    from netcc.loader.wireguard.backend import BackendError

    try:
        tunnel = tunnel_status(paths.state_dir)
    except (BackendError, OSError) as e:
        problems.append(f"wireguard: {e}")
        return None
    if tunnel is not None and not tunnel["ok"]:
        problems.append(f"wireguard {tunnel['ifname']}: {tunnel['error']}")
    return tunnel


def _ipsec_or_problem(paths: Paths, problems: list[str]) -> dict[str, Any] | None:
    """The node's SAs (key ids, sequence numbers) and the XFRM error counters, when it applied
    an IPsec plan. The counters are shown, not problems: they never go down."""
    from netcc.loader.ipsec.apply import IPsecError, ipsec_status

    try:
        doc = ipsec_status(paths.state_dir)
    except IPsecError as e:
        problems.append(f"ipsec: {e}")
        return None
    if doc:
        problems += doc["problems"]
    return doc


def _counters_or_problem(paths: Paths, doc: dict[str, Any], problems: list[str]) -> list:
    try:
        return counters(paths, doc)
    except (OSError, ValueError, libbpf.BpfError) as e:
        problems.append(f"counters unreadable: {e}")
        return []


def status(
    node: str | None = None,
    pin_root: str | Path | None = None,
    state_dir: str | Path | None = None,
) -> dict[str, Any]:
    """{"ok", "nodes": [node status...]}; raises StatusError when nothing is applied."""
    from pyroute2 import IPRoute

    selected = select_paths(node, pin_root, state_dir)
    if not selected:
        raise StatusError(
            f"nothing applied in this network namespace (no state under {state.state_base()})"
        )
    with IPRoute() as ipr:
        nodes = [node_status(p, ipr) for p in selected]
    return {"ok": all(n["ok"] for n in nodes), "nodes": nodes}


def _format_tunnel(t: dict[str, Any] | None) -> list[str]:
    if not t or not t.get("ok"):
        return []
    lines = [f"  wireguard {t['ifname']} ({t['backend']}), port {t['listenPort']}:"]
    for p in t["peers"]:
        age = p["handshakeAgeSeconds"]
        shake = "no handshake" if age is None else f"handshake {age}s ago"
        lines.append(
            f"    peer {p['node'] or p['publicKey']} {p['endpoint']} "
            f"{','.join(p['allowedIPs'])}: {shake}, rx {p['rxBytes']} tx {p['txBytes']}"
        )
    return lines


def _format_daemon(d: dict[str, Any] | None) -> list[str]:
    if not d:
        return []
    state = "ready" if d.get("ready") else f"not ready ({d.get('reason')})"
    lines = [f"  daemon (pid {d.get('pid')}): {state}, socket {d.get('socket')}"]
    for b in d.get("blocks", []):
        lines.append(
            f"    class {b['class']}: block {b['block']}, {b['inUse']}/{b['capacity']} used"
        )
    for p in d.get("pods", []):
        where = p.get("hostIfname") if p.get("ifindex") else "no interface (half-made)"
        lines.append(f"    pod {p.get('pod', '?')} {p['ip']} class {p.get('class')} on {where}")
    return lines + _format_services(d.get("services"))


def _format_services(s: dict[str, Any] | None) -> list[str]:
    """The live backends of the service ports runtime pods back."""
    if not s:
        return []
    watch = s.get("watch") or {}
    how = "synced" if s.get("synced") else "not synced yet"
    if watch.get("lastError"):
        how += f", watch error: {watch['lastError']}"
    lines = [f"  services over classes ({how}; {s.get('events', 0)} endpoint changes):"]
    for p in s.get("ports", []):
        rows = p.get("rows", {})
        local = f", {rows['local']} on this node" if "local" in rows else ""
        lines.append(
            f"    {p['port']}: {rows.get('cluster', 0)} backend(s) in use{local}"
            f" (classes {', '.join(p.get('classes', []))})"
        )
        for b in p.get("backends", []):
            state = "ready" if b["ready"] else "terminating" if b["terminating"] else "not ready"
            if b["terminating"] and b["serving"]:
                state = "terminating, serving"
            used = "in use" if b["used"] else "not used"
            lines.append(f"      {b['address']} {b['class']} on {b['node']}: {state}, {used}")
        for st in p.get("static", []):
            lines.append(f"      {st} (static)")
        if p.get("capped"):
            lines.append(f"      {p['capped']} live backend(s) left out: more than the table holds")
        for r in p.get("rejected", []):
            lines.append(f"      rejected: {r}")
    return lines


def format_status(report: dict[str, Any], all_counters: bool = False) -> str:
    """Human-readable status; counters of rules and denies always, others when non-zero."""
    lines = []
    for n in report["nodes"]:
        verdict = "OK" if n["ok"] else "NOT OK"
        lines.append(
            f"node {n['node']}: {verdict}  artifacts {n['digest'][:12]} ({n['mode']}), "
            f"applied {n['applied_at']}"
        )
        for p in n["problems"]:
            lines.append(f"  problem: {p}")
        for i in n["interfaces"]:
            pods = ", ".join(f"{p['ip']} {p['pod']}" for p in i["pods"]) or "no pod"
            lines.append(f"  {i['ifname']} (ifindex {i['ifindex']}): {pods}")
            for d, h in sorted(i["hooks"].items()):
                mark = "ok" if h["ok"] else "MISSING" if h["prog_id"] is None else "WRONG"
                link = f" (link {h['link_id']})" if h.get("link_id") else ""
                lines.append(
                    f"    {d:<7} {h['mode']:<3} {h['program']} id {h['prog_id']}{link}  {mark}"
                )
        for p in n["pending"]:
            lines.append(f"  pending {p['ip']} {p['pod']}: {p['reason']}")
        lines += _format_daemon(n.get("daemon"))
        lines += _format_tunnel(n.get("wireguard"))
        lines += format_ipsec(n.get("ipsec"))
        if n.get("events"):
            e = n["events"]
            lines.append(
                f"  flow events: {e['sent']} sent, {e['lostBudget'] + e['lostRing']} lost "
                f"({e['lostBudget']} over budget, {e['lostRing']} ring buffer full)"
            )
        lines.append("  counters:")
        lines.append(f"    {'verdict':>7} {'action':<6} {'packets':>10} {'bytes':>12}  rule")
        for c in n["counters"]:
            if not (all_counters or c["packets"] or "policy" in c or "pod" in c):
                continue
            lines.append(
                f"    {c['verdict']:>7} {c['action']:<6} {c['packets']:>10} {c['bytes']:>12}  "
                f"{c['name']}: {c['doc']}"
            )
    return "\n".join(lines)
