"""NodePort services from the external host: every node answers with Cluster, only nodes with a
local backend with Local (and only that backend)."""

from __future__ import annotations

from svclab_specs import EXTERNAL, NODEPORT_CLUSTER, NODEPORT_LOCAL, NODES, WEB

from netcc.lab.services import spread


def _failures(answers) -> list[str]:
    return sorted({a.detail for a in answers if not a.ok})


def test_nodeport_cluster_answers_on_every_node_from_every_backend(svclab):
    seen = set()
    for node in NODES:
        answers = svclab.connect(EXTERNAL, svclab.node_address(node), NODEPORT_CLUSTER, 60)
        assert all(a.ok for a in answers), (node, _failures(answers))
        seen |= set(spread(answers))
        assert len(spread(answers)) > 1, (node, spread(answers))  # not only the local one
    assert seen == set(WEB)


def test_nodeport_local_answers_only_with_a_local_backend(svclab):
    answers = svclab.connect(EXTERNAL, svclab.node_address("node-1"), NODEPORT_LOCAL, 30)
    assert all(a.ok for a in answers), _failures(answers)
    assert set(spread(answers)) == {"shop/web-1"}  # web-local's only backend, on node-1
    for node in ("node-2", "node-3"):  # no local backend: no answer, never a forward
        answers = svclab.connect(
            EXTERNAL, svclab.node_address(node), NODEPORT_LOCAL, 5, timeout=1.0
        )
        assert not any(a.ok for a in answers), (node, spread(answers))
