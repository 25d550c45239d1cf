"""The review as one self-contained HTML file: inline CSS and SVG, no scripts, no fonts or
anything else fetched, so it reads the same offline and can be attached to a build."""

from __future__ import annotations

from html import escape
from pathlib import PurePosixPath
from typing import Any

from netcc.review.report_md import node_of, placed
from netcc.review.services import service_rows
from netcc.review.svg import matrix_svg

CSS = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; color: #24292f; margin: 2em;
       max-width: 1400px; line-height: 1.45; font-size: 14px; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #d0d7de;
  padding-bottom: 0.2em; margin-top: 1.6em; }
.meta { color: #57606a; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
code { background: #f6f8fa; padding: 1px 4px; border-radius: 4px; font-size: 0.92em; }
.open { color: #9a6700; font-weight: bold; }
.ok { color: #1a7f37; }
.matrix { overflow-x: auto; border: 1px solid #d0d7de; padding: 8px; background: #ffffff; }
details { margin: 0.3em 0; border: 1px solid #d0d7de; border-radius: 6px; padding: 0.4em 0.8em; }
summary { cursor: pointer; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin: 0.8em 0; }
.card { border: 1px solid #d0d7de; border-radius: 6px; padding: 8px 14px; min-width: 110px; }
.card b { display: block; font-size: 1.5em; }
"""


def _table(header: list[str], rows: list[list[str]]) -> str:
    """Cells are HTML already (escape before)."""
    if not rows:
        return "<p>nothing</p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _rules(side: dict[str, Any] | None, filename: str, *, this: bool) -> str:
    if side is None:
        return "— (not a pod)"
    reason = side["reason"]
    if reason == "unisolated":
        return '<span class="open">not isolated</span>' if this else "not isolated"
    if reason == "host":
        return "own node (always)"
    if reason == "self":
        return "itself"
    return (
        "<br>".join(
            f"<code>{escape(r['rule'])}</code> <span class=meta>"
            f"{escape(r.get('file') or filename)}:{r['line']}</span>"
            for r in side["rules"]
        )
        or "—"
    )


def _isolation(w: dict[str, Any], direction: str) -> str:
    iso = w["isolation"][direction]
    if not iso["isolated"]:
        return '<span class="open">open</span>'
    return "<br>".join(escape(p) for p in iso["policies"])


def _workload(w: dict[str, Any], filename: str) -> str:
    flags = " · ".join(
        f"{d} "
        + ("isolated" if w["isolation"][d]["isolated"] else '<span class="open">OPEN</span>')
        for d in ("ingress", "egress")
    )
    ports = ", ".join(escape(f"{p['name'] or '-'} {p['port']}/{p['protocol']}") for p in w["ports"])
    incoming = [
        [
            escape(c["from"]),
            escape(c["ports"]),
            _rules(c["ingress"], filename, this=True),
            _rules(c["egress"], filename, this=False),
        ]
        for c in w["ingress"]
    ]
    outgoing = [
        [
            escape(c["to"]),
            escape(c["ports"]),
            _rules(c["egress"], filename, this=True),
            _rules(c["ingress"], filename, this=False),
        ]
        for c in w["egress"]
    ]
    labels = ", ".join(escape(f"{k}={v}") for k, v in w["labels"].items()) or "none"
    return (
        f'<details id="{escape(w["name"])}"><summary><b>{escape(w["name"])}</b> · '
        f"{escape(placed(w))} · {flags}</summary>"
        f"<p>Labels: {labels}. Container ports: {ports or 'none declared'}. "
        f"Declared at <span class=meta>{escape(w.get('file') or filename)}:{w['line']}</span>.</p>"
        "<h4>Reached by</h4>"
        + _table(["from", "ports", "its ingress allows by", "sender's egress allows by"], incoming)
        + "<h4>Reaches</h4>"
        + _table(["to", "ports", "its egress allows by", "receiver's ingress allows by"], outgoing)
        + "</details>"
    )


def _default_namespace(report: dict[str, Any], filename: str) -> str:
    """The policies that name no namespace, and where they were put ("" when none)."""
    found = report.get("default_namespace")
    if not found:
        return ""
    ns = escape(found["namespace"])
    rows = [
        [
            f"<code>{escape(p['policy'])}</code>",
            f"<span class=meta>{escape(p.get('file') or filename)}:{p['line']}</span>",
        ]
        for p in found["policies"]
    ]
    return (
        "<h2>Policies in the default namespace</h2>\n"
        f"<p>These policies name no namespace: netcc put them in <code>{ns}</code>, the spec's "
        f"default namespace, as <code>kubectl apply -n {ns}</code> would.</p>\n"
        + _table(["policy", "declared at"], rows)
        + "\n"
    )


def _classes(section: dict[str, Any] | None) -> str:
    """Workload classes: their blocks, what isolates them, the keys that decide a pod's class,
    and what a pod fitting no class gets ("" in a spec without classes)."""
    if not section:
        return ""
    rows = []
    for c in section["classes"]:
        b = c["block"]
        by = "<br>".join(
            f"{escape(d)}: {escape(', '.join(ps))}" for d, ps in c["isolated_by"].items() if ps
        )
        match = ", ".join(
            escape(f"{k}={v}" if v is not None else f"{k} absent") for k, v in c["match"].items()
        )
        rows.append(
            [
                f'<a href="#{escape(c["class"])} (class)">{escape(c["class"])}</a>',
                escape(match) if match else "—",
                escape(str(c["perNode"])),
                escape(f"{b['offset']}/{b['size']}"),
                escape(f"{b['example']['cidr']} on {b['example']['node']}"),
                by or '<span class="open">not isolated</span>',
            ]
        )
    keys = "".join(
        f"<li><code>{escape(ns)}</code>: "
        + (", ".join(f"<code>{escape(k)}</code>" for k in ks) or "none (no class: pods refused)")
        + "</li>"
        for ns, ks in section["keys"].items()
    )
    return (
        "<h2>Workload classes</h2>\n"
        "<p>Pods scheduled at runtime. Every node's podCIDR holds each class's block at the same "
        "offset, so every node knows a class pod's identity from its address.</p>\n"
        + _table(
            ["class", "decided by", "perNode", "block (offset/size)", "e.g.", "isolated by"], rows
        )
        + f"\n<h3>Label keys that decide a pod's class</h3>\n<ul>{keys}</ul>\n"
        f"<p>{escape(section['undeclared'])}</p>\n"
    )


def _encryption(section: dict[str, Any] | None) -> str:
    """Which traffic is encrypted between nodes and which is not ("" without
    `spec.encryption`)."""
    if not section:
        return ""
    keys = "".join(
        f"<li>key {k['id']} {escape(k['state'])}"
        + (f" (fingerprint <code>{escape(k['fingerprint'])}</code>)" if k["fingerprint"] else "")
        + "</li>"
        for k in section.get("keys", ())
    )
    encrypted = _table(
        ["nodes", "pod CIDRs", "SPI"],
        [
            [
                escape(f"{t['from']} → {t['to']}"),
                escape(f"{t['src']} → {t['dst']}"),
                escape(t.get("spi", "—")),
            ]
            for t in section["encrypted"]
        ],
    )
    plain = _table(
        ["traffic", "why"],
        [[escape(n["traffic"]), escape(n["why"])] for n in section["not_encrypted"]],
    )
    return (
        f"<h2>Encryption</h2>\n<p>{escape(section['summary'])}.</p>\n"
        + (f"<ul>{keys}</ul>\n" if keys else "")
        + f"<h3>Encrypted</h3>\n{encrypted}\n<h3>Not encrypted</h3>\n{plain}\n"
    )


def render_html(report: dict[str, Any]) -> str:
    """The whole HTML page."""
    s = report["summary"]
    spec = report["spec"]
    filename = PurePosixPath(spec["file"]).name
    classes = s.get("classes", 0)
    parties = s["workloads"] + classes  # isolation counts classes too
    cards = "".join(
        f'<div class="card"><b>{value}</b>{escape(label)}</div>'
        for value, label in (
            (s["workloads"], "workloads"),
            *([(classes, "workload classes")] if classes else []),
            (s["namespaces"], "namespaces"),
            (s["policies"], "policies"),
            (f"{s['isolated']['ingress']}/{parties}", "ingress isolated"),
            (f"{s['isolated']['egress']}/{parties}", "egress isolated"),
            (s["connections"], "allowed connections in"),
        )
    )
    exposure = report["exposure"]
    external = _table(
        ["workload", "from", "ports", "allowed by"],
        [
            [
                escape(e["workload"]),
                escape(e["from"]),
                escape(e["ports"]),
                _rules({"reason": e["reason"], "rules": e["rules"]}, filename, this=True),
            ]
            for e in exposure["external"]
        ],
    )
    every = _table(
        ["workload", "ports", "allowed by"],
        [
            [
                escape(e["workload"]),
                escape(e["ports"]),
                _rules({"reason": e["reason"], "rules": e["rules"]}, filename, this=True),
            ]
            for e in exposure["every_namespace"]
        ],
    )
    services = _table(
        ["service port", "kind", "backends", "from outside, through which node"],
        [[escape(c) for c in row] for row in service_rows(report["services"])],
    )
    isolation = _table(
        [
            "workload",
            "node",
            "ingress isolated by",
            "egress isolated by",
            "reached from namespaces",
        ],
        [
            [
                f'<a href="#{escape(w["name"])}">{escape(w["name"])}</a>',
                escape(node_of(w)),
                _isolation(w, "ingress"),
                _isolation(w, "egress"),
                escape(", ".join(w["reached_from_namespaces"]) or "—"),
            ]
            for w in report["workloads"]
        ],
    )
    outside = _table(
        ["addresses", "as CIDRs", "inside ipBlocks", "may reach", "reachable from"],
        [
            [
                escape(e["name"]),
                "<br>".join(escape(c) for c in e["cidrs"]),
                "<br>".join(escape(b) for b in e["in_blocks"]) or "none",
                "<br>".join(escape(f"{r['workload']}: {r['ports']}") for r in e["reaches"]) or "—",
                "<br>".join(escape(f"{r['workload']}: {r['ports']}") for r in e["reached_by"])
                or "—",
            ]
            for e in report["external"]
        ],
    )
    workloads = "".join(_workload(w, filename) for w in report["workloads"])
    title = f"netcc review: {report['cluster']}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{CSS}</style>
</head>
<body>
<h1>{escape(title)}</h1>
<p class="meta">{escape(spec["file"])} · sha256 <code>{escape(spec["sha256"])}</code></p>
<div class="cards">{cards}</div>
{_default_namespace(report, filename)}<h2>Connectivity matrix</h2>
<p>Rows send, columns receive; a cell shows what passes both the sender's egress and the
receiver's ingress policy. Hover a cell for the exact ports.</p>
<div class="matrix">{matrix_svg(report["matrix"], title)}</div>
<h2>Exposure</h2>
<h3>Reachable from outside the cluster</h3>
{external}
<h3>Open to every pod of every namespace</h3>
<p>What the workload's own ingress policy admits from every pod of the cluster.</p>
{every}
<h3>Services</h3>
<p>NetworkPolicy judges each backend after translation, with the source it really sees.</p>
{services}
{_classes(report.get("workload_classes"))}{_encryption(report.get("encryption"))}<h2>Isolation</h2>
{isolation}
<h2>Workloads</h2>
{workloads}
<h2>Addresses outside the cluster</h2>
<p>The address space outside the pods, cut along every ipBlock; each class is judged
alike by every rule. Pods and nodes inside these ranges are listed on their own.</p>
{outside}
<p class="meta">Generated by netcc from the model the datapath is compiled from. A pod always
reaches itself, and its own node always reaches it.</p>
</body>
</html>
"""
