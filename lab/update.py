"""Apply a new OUT to a running lab, as a rollout does on real nodes: the loader's `apply` in
each node's namespace, with the pins and state the lab's first load made. Programs are swapped
in place and conntrack carries over, so established connections live through the update.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from netcc.lab import netns as lab_netns
from netcc.lab.core import WIREGUARD_BACKEND, LabError, _call, _jsonable, _loader_function
from netcc.lab.plan import plan_from_doc
from netcc.lab.state import STATE_DIR, LabState


def apply_update(
    out: str | Path, spec: str | Path | None = None, state_dir: Path = STATE_DIR
) -> dict[str, Any]:
    """Load OUT on every node of the running lab; `spec` (what OUT was compiled from) becomes
    the lab's spec, for the tools that read it (services). Returns each node's result."""
    from netcc.contract.lock import LockError, verify_lock
    from netcc.loader.datapath import pod_nodes

    state = LabState.load(state_dir)
    if state.doc.get("status") != "up" or not state.doc.get("loaded"):
        raise LabError("no lab with the datapath loaded is up")
    plan = plan_from_doc(state.doc["plan"])
    out = Path(out).resolve()
    try:
        verify_lock(out)
        placed = pod_nodes(out)
    except (LockError, OSError, ValueError, KeyError) as e:
        raise LabError(f"{out}: not a usable artifact directory: {e}") from None
    if placed != {str(ip): p.node for p in plan.pods for ip in p.ips}:
        raise LabError(f"{out} places pods differently from the running lab; bring it up again")
    apply = _loader_function("apply", "apply")
    if apply is None:
        raise LabError("loader not available")
    results = {}
    for r in state.of_kind("load"):
        with lab_netns.entered(r["netns"]):
            results[r["node"]] = _jsonable(
                _call(
                    apply,
                    out=out,
                    node=r["node"],
                    pin_root=r["pin_root"],
                    state_dir=r.get("state_dir"),
                    wireguard=WIREGUARD_BACKEND,
                )
            )
        r["out"] = str(out)
    info: dict[str, Any] = {"out": str(out), "loader": results}
    if spec is not None:
        info["spec"] = str(Path(spec).resolve())
    state.update(**info)
    return results
