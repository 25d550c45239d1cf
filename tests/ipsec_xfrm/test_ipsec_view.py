"""What the node daemon reads of an IPsec OUT (`netcc.loader.daemon.view`): pods get the MTU
ESP leaves (ipsec.json's `mtu`), and the other nodes' pod CIDRs stay routed over the underlay
by the daemon (XFRM policies match on them), unlike WireGuard's. Pure: a compile, no kernel."""

from __future__ import annotations

import json
from pathlib import Path

from clirun import run

from netcc.contract.ipsec import esp_mtu
from netcc.loader.daemon.view import DEFAULT_MTU, read_view

PODS = Path(__file__).resolve().parents[2] / "examples" / "pods.yaml"


def test_pods_get_the_esp_mtu_and_routes_stay_on_the_underlay(tmp_path):
    text = PODS.read_text()
    spec = tmp_path / "spec.yaml"
    block = "  encryption:\n    ipsec: {enabled: true, underlayMTU: 9000}\n"
    spec.write_text(text.replace("  namespaces:\n", block + "  namespaces:\n", 1))
    out = tmp_path / "out"
    r = run("compile", spec, "-o", out)
    assert r.code == 0, r.stderr
    node = sorted(p.name for p in (out / "nodes").iterdir())[0]
    planned = json.loads((out / "nodes" / node / "ipsec.json").read_text())["mtu"]
    view = read_view(out, node)
    assert view.mtu == planned == esp_mtu(9000, 128) != DEFAULT_MTU
    assert not view.tunnel and view.routes  # the daemon keeps podCIDR-via-node routes

    plain = tmp_path / "plain"
    assert run("compile", PODS, "-o", plain).code == 0
    assert read_view(plain, node).mtu == DEFAULT_MTU
