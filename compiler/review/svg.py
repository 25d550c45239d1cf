"""The connectivity matrix as one inline SVG picture: rows send, columns receive.

Dark green: everything passes; light green: some ports (the cell says which); grey: nothing;
hatched: no pod on either end, so no policy applies. Each cell has a tooltip with the exact
ports. Only system fonts, no scripts: it renders the same offline, in a browser or a viewer.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

CELL_W, CELL_H = 74, 24
CHAR_W = 6.4  # average advance of 11px sans-serif
LABEL_MAX = 36
ANGLE = 40  # degrees the column labels are turned
PAD = 10
FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"'
STYLE = {
    "all": ("#1f883d", "#ffffff"),
    "some": ("#aceebb", "#0a3622"),
    "none": ("#eaeef2", "#6e7781"),
    "self": ("#d0d7de", "#57606a"),
    "n/a": ("url(#hatch)", "#6e7781"),
}
GROUPS = {"pod": "pods", "node": "nodes", "external": "outside the cluster"}
LEGEND = (
    ("all", "all protocols and ports"),
    ("some", "some ports (as written)"),
    ("none", "nothing"),
    ("self", "itself"),
    ("n/a", "no pod on either end"),
)


def _clip(name: str) -> str:
    return name if len(name) <= LABEL_MAX else name[: LABEL_MAX - 1] + "…"


def _width(text: str) -> float:
    return len(text) * CHAR_W


def _group_edges(parties: list[dict[str, Any]]) -> list[tuple[int, int, str]]:
    """(first index, end index, kind) of each run of one kind."""
    out: list[tuple[int, int, str]] = []
    for i, p in enumerate(parties):
        if out and out[-1][2] == p["kind"]:
            out[-1] = (out[-1][0], i + 1, p["kind"])
        else:
            out.append((i, i + 1, p["kind"]))
    return out


def matrix_svg(matrix: dict[str, Any], title: str = "Connectivity") -> str:
    """The SVG element (no XML prolog) for a report's `matrix`."""
    rows, cols, cells = matrix["rows"], matrix["cols"], matrix["cells"]
    row_labels = [_clip(r["name"]) for r in rows]
    col_labels = [_clip(c["name"]) for c in cols]
    gutter = max(_width(GROUPS[r["kind"]]) for r in rows) if rows else 0.0
    left = PAD + gutter + 12 + max([_width(t) for t in row_labels] + [60]) + 8
    rad = math.radians(ANGLE)
    longest = max([_width(t) for t in col_labels] + [60])
    top = PAD + 18 + longest * math.sin(rad) + 14
    grid_w, grid_h = CELL_W * len(cols), CELL_H * len(rows)
    right_overhang = max(0.0, longest * math.cos(rad) - CELL_W / 2)
    legend_y = top + grid_h + 28
    width = max(left + grid_w + right_overhang + PAD + 20, 560)
    height = legend_y + 22 * len(LEGEND) + PAD
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" {FONT} font-size="11">',
        f"<title>{escape(title)}</title>",
        '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#ffffff"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#d0d7de" stroke-width="2"/></pattern></defs>',
        f'<rect width="{width:.0f}" height="{height:.0f}" fill="#ffffff"/>',
        f'<text x="{PAD}" y="{PAD + 12}" font-weight="bold" fill="#24292f">from ↓  to →</text>',
    ]
    # column labels, turned, anchored at the middle of each column's top edge
    for j, label in enumerate(col_labels):
        x = left + CELL_W * j + CELL_W / 2
        y = top - 6
        out.append(
            f'<text x="{x:.1f}" y="{y:.1f}" transform="rotate(-{ANGLE} {x:.1f} {y:.1f})" '
            f'fill="#24292f"><title>{escape(cols[j]["name"])}</title>{escape(label)}</text>'
        )
    for i, label in enumerate(row_labels):
        y = top + CELL_H * i + CELL_H / 2 + 4
        out.append(
            f'<text x="{left - 8:.1f}" y="{y:.1f}" text-anchor="end" fill="#24292f">'
            f"<title>{escape(rows[i]['name'])}</title>{escape(label)}</text>"
        )
    for i, row in enumerate(cells):
        for j, c in enumerate(row):
            fill, ink = STYLE[c["level"]]
            x, y = left + CELL_W * j, top + CELL_H * i
            src, dst = rows[i]["name"], cols[j]["name"]
            tip = f"{src} → {dst}: " + (
                "no policy applies" if c["level"] == "n/a" else c["ports"] or "nothing"
            )
            text = {"none": "·", "self": "—", "n/a": ""}.get(c["level"], c.get("short", ""))
            out.append(
                f'<g><title>{escape(tip)}</title><rect x="{x}" y="{y:.1f}" width="{CELL_W}" '
                f'height="{CELL_H}" fill="{fill}" stroke="#ffffff" stroke-width="1.5"/>'
                + (
                    f'<text x="{x + CELL_W / 2:.1f}" y="{y + CELL_H / 2 + 4:.1f}" '
                    f'text-anchor="middle" fill="{ink}">{escape(text)}</text>'
                    if text
                    else ""
                )
                + "</g>"
            )
    # group separators and names
    for first, _end, kind in _group_edges(rows):
        if first:
            y = top + CELL_H * first
            out.append(
                f'<line x1="{PAD}" y1="{y:.1f}" x2="{left + grid_w:.1f}" y2="{y:.1f}" '
                'stroke="#57606a" stroke-width="1.5"/>'
            )
        y = top + CELL_H * first + CELL_H / 2 + 4
        out.append(
            f'<text x="{PAD}" y="{y:.1f}" fill="#57606a" font-style="italic">'
            f"{escape(GROUPS[kind])}</text>"
        )
    for first, _end, _kind in _group_edges(cols):
        if first:
            x = left + CELL_W * first
            out.append(
                f'<line x1="{x:.1f}" y1="{top - 4:.1f}" x2="{x:.1f}" y2="{top + grid_h:.1f}" '
                'stroke="#57606a" stroke-width="1.5"/>'
            )
    out.append(
        f'<rect x="{left:.1f}" y="{top:.1f}" width="{grid_w}" height="{grid_h}" fill="none" '
        'stroke="#57606a" stroke-width="1"/>'
    )
    for k, (level, meaning) in enumerate(LEGEND):
        fill, _ = STYLE[level]
        y = legend_y + 22 * k
        out.append(
            f'<rect x="{left:.1f}" y="{y:.1f}" width="28" height="16" fill="{fill}" '
            'stroke="#8c959f" stroke-width="0.5"/>'
            f'<text x="{left + 36:.1f}" y="{y + 12:.1f}" fill="#24292f">{escape(meaning)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)
