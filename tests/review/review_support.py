"""Helpers for the review tests: specs as text, the CLI run in-process, flow sampling."""

from __future__ import annotations

import random
import shutil
import subprocess
from ipaddress import IPv4Address
from pathlib import Path

import pytest
import yaml
from clirun import Ran, run  # noqa: F401  (re-exported for the review tests)
from pngpixels import colour_counts

from netcc.frontend import parse_spec
from netcc.model.types import Cluster
from netcc.review.connectivity import Connectivity, Party
from netcc.review.source import Spec
from netcc.review.svg import CELL_H, CELL_W, STYLE

ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "examples" / "shop.yaml"


def spec_of(doc: dict | str, name: str = "spec.yaml") -> Spec:
    text = (doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)).encode()
    cluster, sources = parse_spec(text, name)
    return Spec(text, name, cluster, sources)


def write_spec(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def shop_doc() -> dict:
    return yaml.safe_load(SHOP.read_text())


def probe_ports(cluster: Cluster) -> list[int]:
    """Every port a rule or container names, its neighbours and the extremes."""
    ports = {1, 65535, 80, 443}
    for w in cluster.workloads:
        ports.update(p.port for p in w.ports)
    for p in cluster.policies:
        for r in p.ingress + p.egress:
            for pp in r.ports:
                if isinstance(pp.port, int):
                    ports.update({pp.port, pp.port - 1, pp.port + 1})
                    if pp.end_port is not None:
                        ports.update({pp.end_port, pp.end_port + 1})
    return sorted(x for x in ports if 1 <= x <= 65535)


def sample_flows(
    c: Connectivity, rng: random.Random, count: int
) -> list[tuple[IPv4Address, IPv4Address, int, int]]:
    """Flows with a pod on at least one end, from every kind of party, at interesting ports."""
    taken = c.taken()
    addresses: dict[str, list[IPv4Address]] = {}
    for p in c.parties:
        addresses[p.name] = p.sample_ips(taken)
    ports = probe_ports(c.cluster)
    pods: list[Party] = c.pods
    flows = []
    for _ in range(count):
        a, b = rng.choice(pods), rng.choice(c.parties)
        if rng.random() < 0.5:
            a, b = b, a
        if not addresses[a.name] or not addresses[b.name]:
            continue
        proto = rng.choice((6, 6, 17, 132, 1, 47))
        port = 0 if proto in (1, 47) else rng.choice(ports)
        flows.append((rng.choice(addresses[a.name]), rng.choice(addresses[b.name]), proto, port))
    return flows


BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
needs_browser = pytest.mark.skipif(
    BROWSER is None, reason="needs chromium to render the page (make setup installs it)"
)


def assert_matrix_drawn(html: str, tmp_path: Path) -> None:
    """Open the page from disk in a headless browser with no network and check that the
    matrix's "all ports allowed" and "nothing allowed" colours cover real areas of it."""
    page = tmp_path / "review.html"
    page.write_text(html)
    png = tmp_path / "review.png"
    assert BROWSER is not None
    subprocess.run(
        [
            BROWSER,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1200,2000",
            f"--screenshot={png}",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    counts = colour_counts(png.read_bytes())
    cell = CELL_W * CELL_H // 2
    assert counts[STYLE["all"][0]] > cell, "no fully allowed cell is drawn"
    assert counts[STYLE["none"][0]] > cell, "no denied cell is drawn"
