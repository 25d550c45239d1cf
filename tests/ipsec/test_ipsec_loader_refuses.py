"""Until the nodes install IPsec, an OUT that plans it is refused by the loader (fail closed:
pod traffic must never go out in clear under a plan that says it is encrypted)."""

from __future__ import annotations

import pytest
from ipsecspecs import shop

from netcc.loader.artifacts import read_artifacts
from netcc.loader.errors import ApplyError
from netcc.pipeline import compile_spec
from netcc.write.tree import write_tree


def test_an_out_planning_ipsec_is_refused_on_every_node(tmp_path):
    tree = compile_spec(shop().encode(), "shop.yaml")
    out = tmp_path / "out"
    write_tree(tree, out)
    for node in ("node-1", "node-2", "node-3"):
        with pytest.raises(ApplyError, match=r"plans IPsec .* does not install yet"):
            read_artifacts(out, node)
