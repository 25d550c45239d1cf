"""The review as Markdown that fits a pull-request comment (GitHub allows 65,536 characters).

Exposure and isolation first, since that is what a reviewer looks for; then the matrix; then
one collapsed section per workload. When the whole text would not fit, the per-workload
sections that do not fit are left out, with a note pointing at the HTML and JSON reports.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from netcc.review.services import service_rows

LIMIT = 60_000  # leaves room under GitHub's 65,536 for a bot's own header
WARN = "⚠️"
ROWS = 60  # rows of a summary table before the rest is left out
MATRIX_MAX = 16  # columns (pods and outside addresses) a comment's table can show


def cell(text: object) -> str:
    """Escape a table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(header: list[str], rows: list[list[str]], limit: int | None = None) -> list[str]:
    """A Markdown table; past `limit` rows, a note says how many were left out."""
    if not rows:
        return []
    shown = rows if limit is None else rows[:limit]
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in shown]
    if len(shown) < len(rows):
        out += ["", f"_… and {len(rows) - len(shown)} more rows (see the HTML or JSON report)._"]
    return [*out, ""]


def _classes(section: dict[str, Any] | None) -> list[str]:
    """Workload classes: their blocks, the keys that decide a pod's class, the closed world."""
    if section is None:
        return []
    rows = []
    for c in section["classes"]:
        b = c["block"]
        by = "; ".join(f"{d}: {', '.join(ps)}" for d, ps in c["isolated_by"].items() if ps)
        example = f"{b['example']['cidr']} on {b['example']['node']}"
        rows.append([c["class"], f"{b['offset']}/{b['size']}", example, by or "not isolated"])
    out = ["### Workload classes", ""]
    out += table(["class", "block (offset/size)", "e.g.", "isolated by"], rows, ROWS)
    out += ["Label keys that decide a pod's class:", ""]
    for ns, keys in section["keys"].items():
        shown = ", ".join(cell(k) for k in keys) or "none (no class: its pods are refused)"
        out.append(f"- {cell(ns)}: {shown}")
    return [*out, "", section["undeclared"], ""]


def _encryption(section: dict[str, Any] | None) -> list[str]:
    """Which traffic is encrypted between nodes and which is not (with `spec.encryption`)."""
    if section is None:
        return []
    out = ["### Encryption", "", f"{section['summary']}.", ""]
    keys = section.get("keys")
    if keys:
        shown = ", ".join(
            f"key {k['id']} {k['state']}"
            + (f" (fingerprint `{k['fingerprint']}`)" if k["fingerprint"] else "")
            for k in keys
        )
        out += [f"Keys: {shown}; pod MTU {section['mtu']}.", ""]
    rows = [
        [f"{t['from']} → {t['to']}", f"{t['src']} → {t['dst']}", t.get("spi", "—")]
        for t in section["encrypted"]
    ]
    out += ["**Encrypted**", ""]
    out += table(["nodes", "pod CIDRs", "SPI"], rows, ROWS) or ["nothing", ""]
    out += ["**Not encrypted**", ""]
    out += table(["traffic", "why"], [[n["traffic"], n["why"]] for n in section["not_encrypted"]])
    return out


def rules_text(side: dict[str, Any] | None, *, this: bool) -> str:
    """The rules behind one side, or why the side lets everything through."""
    if side is None:
        return "— (not a pod)"
    reason = side["reason"]
    if reason == "unisolated":
        return f"{WARN} not isolated" if this else "not isolated"
    if reason == "host":
        return "own node (always)"
    if reason == "self":
        return "itself"
    return "<br>".join(f"`{r['rule']}` ({_line(r)})" for r in side["rules"]) or "—"


def _line(r: dict) -> str:
    """`line N`, or `FILE:N` for a rule taken from a manifest."""
    return f"{r['file']}:{r['line']}" if r.get("file") else f"line {r['line']}"


def _some(entries: list[dict[str, Any]], limit: int = 8) -> str:
    """`workload: ports` lines, at most `limit` of them."""
    lines = [f"{r['workload']}: {r['ports']}" for r in entries[:limit]]
    if len(entries) > limit:
        lines.append(f"… {len(entries) - limit} more")
    return "<br>".join(lines) or "—"


def _isolation(w: dict[str, Any], direction: str) -> str:
    iso = w["isolation"][direction]
    return ", ".join(iso["policies"]) if iso["isolated"] else f"{WARN} open"


def _matrix(report: dict[str, Any]) -> list[str]:
    m = report["matrix"]
    cols = [i for i, c in enumerate(m["cols"]) if c["kind"] != "node"]
    if len(cols) > MATRIX_MAX:
        return [
            f"{len(cols)} columns are too many for a comment; see `netcc review --format html`.",
            "",
        ]
    ext = [c["name"] for c in m["cols"] if c["kind"] == "external"]
    names = {name: f"ext{i + 1}" for i, name in enumerate(ext)}

    def label(p: dict[str, Any]) -> str:
        return names.get(p["name"], p["name"])

    rows = []
    for r, src in enumerate(m["rows"]):
        row = [f"**{label(src)}**"]
        for c in cols:
            x = m["cells"][r][c]
            row.append({"n/a": "", "self": "—", "none": "·"}.get(x["level"], x["ports"]))
        rows.append(row)
    out = [
        "Rows send, columns receive. `all`: every protocol and port; `·`: nothing; "
        "`—`: itself. Both sides' policies are applied.",
        "",
    ]
    out += table(["from \\ to", *(label(m["cols"][c]) for c in cols)], rows)
    out += [f"- **{v}**: {k}" for k, v in names.items()] + ([""] if names else [])
    return out


def placed(w: dict[str, Any]) -> str:
    """Where a workload's pods are: its node and addresses, or a class's blocks."""
    if w.get("kind") == "class":
        return f"any node · blocks {', '.join(w['blocks'])}"
    return f"{w['node']} · {', '.join(w['ips'])}"


def node_of(w: dict[str, Any]) -> str:
    """The node column: a class's pods run on any node."""
    return "any (class)" if w.get("kind") == "class" else w["node"]


def _workload(w: dict[str, Any]) -> list[str]:
    summary = (
        f"<b>{w['name']}</b> · {placed(w)} · "
        f"ingress {'isolated' if w['isolation']['ingress']['isolated'] else 'OPEN'} · "
        f"egress {'isolated' if w['isolation']['egress']['isolated'] else 'OPEN'}"
    )
    out = [f"<details><summary>{summary}</summary>", ""]
    ports = (
        ", ".join(f"{p['name'] or '-'} {p['port']}/{p['protocol']}" for p in w["ports"])
        or "none declared"
    )
    out += [f"Container ports: {ports}", ""]
    incoming = [
        [
            c["from"],
            c["ports"],
            rules_text(c["ingress"], this=True),
            rules_text(c["egress"], this=False),
        ]
        for c in w["ingress"]
    ]
    out += ["**Reached by**", ""] + (
        table(["from", "ports", "its ingress allows by", "sender's egress allows by"], incoming)
        or ["nothing", ""]
    )
    outgoing = [
        [
            c["to"],
            c["ports"],
            rules_text(c["egress"], this=True),
            rules_text(c["ingress"], this=False),
        ]
        for c in w["egress"]
    ]
    out += ["**Reaches**", ""] + (
        table(["to", "ports", "its egress allows by", "receiver's ingress allows by"], outgoing)
        or ["nothing", ""]
    )
    return [*out, "</details>", ""]


def _default_namespace(report: dict[str, Any]) -> list[str]:
    """The policies that name no namespace, and where they were put (nothing when none)."""
    found = report.get("default_namespace")
    if not found:
        return []
    ns = found["namespace"]
    return [
        "### Policies in the default namespace",
        "",
        f"These policies name no namespace: netcc put them in `{ns}`, the spec's default "
        f"namespace, as `kubectl apply -n {ns}` would.",
        "",
        *table(
            ["policy", "declared at"],
            [[p["policy"], _line(p)] for p in found["policies"]],
            ROWS,
        ),
    ]


def render_markdown(report: dict[str, Any]) -> str:
    """The whole Markdown report."""
    s = report["summary"]
    spec = report["spec"]
    classes = s.get("classes", 0)
    parties = s["workloads"] + classes  # isolation counts classes too
    head = [
        f"## netcc review: `{report['cluster']}`",
        "",
        f"`{PurePosixPath(spec['file']).name}` (sha256 `{spec['sha256'][:12]}`) · "
        f"{s['namespaces']} namespaces · {s['workloads']} workloads · "
        + (f"{classes} workload classes · " if classes else "")
        + f"{s['nodes']} nodes · "
        f"{s['policies']} policies · {s['connections']} allowed connections into workloads · "
        f"isolated: {s['isolated']['ingress']}/{parties} ingress, "
        f"{s['isolated']['egress']}/{parties} egress",
        "",
        *_default_namespace(report),
        "### Exposure",
        "",
        "**Reachable from outside the cluster**",
        "",
    ]
    exposure = report["exposure"]
    rows = [
        [
            e["workload"],
            e["from"],
            e["ports"],
            rules_text({"reason": e["reason"], "rules": e["rules"]}, this=True),
        ]
        for e in exposure["external"]
    ]
    head += table(["workload", "from", "ports", "allowed by"], rows, ROWS) or ["nothing", ""]
    head += ["**Open to every pod of every namespace** (what its ingress admits)", ""]
    rows = [
        [
            e["workload"],
            e["ports"],
            rules_text({"reason": e["reason"], "rules": e["rules"]}, this=True),
        ]
        for e in exposure["every_namespace"]
    ]
    head += table(["workload", "ports", "allowed by"], rows, ROWS) or ["nothing", ""]
    head += ["**Services** (NetworkPolicy judges each backend after translation)", ""]
    head += table(
        ["service port", "kind", "backends", "from outside, through which node"],
        service_rows(report["services"]),
        ROWS,
    ) or ["none", ""]
    head += _classes(report.get("workload_classes"))
    head += _encryption(report.get("encryption"))
    head += ["### Isolation", ""]
    head += table(
        [
            "workload",
            "node",
            "ingress isolated by",
            "egress isolated by",
            "reached from namespaces",
        ],
        [
            [
                w["name"],
                node_of(w),
                _isolation(w, "ingress"),
                _isolation(w, "egress"),
                ", ".join(w["reached_from_namespaces"]) or "—",
            ]
            for w in report["workloads"]
        ],
        2 * ROWS,
    ) or ["no workloads", ""]
    head += ["### Connectivity", "", *_matrix(report)]
    tail = ["### Addresses outside the cluster", ""]
    tail += table(
        ["addresses", "inside ipBlocks", "may reach", "reachable from"],
        [
            [
                e["name"],
                "<br>".join(e["in_blocks"]) or "none",
                _some(e["reaches"]),
                _some(e["reached_by"]),
            ]
            for e in report["external"]
        ],
        ROWS,
    )
    tail += [
        "<sub>Generated by netcc from the model the datapath is compiled from. A pod always "
        "reaches itself, and its own node always reaches it.</sub>",
        "",
    ]
    body = ["### Workloads", ""]
    size = len("\n".join(head + tail))
    left_out = 0
    for w in report["workloads"]:
        section = _workload(w)
        n = len("\n".join(section)) + 1
        if size + n > LIMIT:
            left_out += 1
            continue
        body += section
        size += n
    if left_out:
        body += [
            f"_{left_out} workload section(s) left out to fit a comment; see "
            "`netcc review --format html` or `--format json`._",
            "",
        ]
    return "\n".join(head + body + tail).rstrip() + "\n"
