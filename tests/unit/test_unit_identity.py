"""netcc.resolve.identity: deterministic label-set identities, stable under additions."""

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st
from unitspecs import BASE, cluster_of

from netcc import contract as layout
from netcc.model.types import Workload
from netcc.resolve import identity
from netcc.resolve.identity import allocate, identity_labels, workload_identities

KEYS = st.sampled_from(["app", "tier", "env", "example.com/owner"])
VALUES = st.sampled_from(["", "a", "b", "web", "Prod_1.x"])
LABEL_SETS = st.builds(
    lambda d: tuple(sorted(d.items())), st.dictionaries(KEYS, VALUES, max_size=4)
)


def test_identity_of_a_label_set_is_a_fixed_number():
    # The shop example's frontend: a change here renumbers every deployed cluster.
    labels = (
        ("app", "frontend"),
        ("io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name", "shop"),
        ("io.cilium.k8s.namespace.labels.team", "shop"),
        ("io.kubernetes.pod.namespace", "shop"),
        ("tier", "web"),
    )
    table, notes = allocate({labels})
    assert table[labels].number == 429982579
    assert table[labels].labels == labels
    assert notes == []


def test_identity_labels_compose_pod_namespace_and_namespace_labels():
    cluster = cluster_of()
    web = next(w for w in cluster.workloads if w.key == "a/web-1")
    assert identity_labels(cluster, web) == (
        ("app", "web"),
        ("io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name", "a"),
        ("io.cilium.k8s.namespace.labels.team", "red"),
        ("io.kubernetes.pod.namespace", "a"),
    )


def test_identities_depend_only_on_the_label_set():
    cluster = cluster_of()
    ids, notes = workload_identities(cluster)
    assert notes == []
    # Same labels and namespace: same identity, whatever the name, node, address or ports.
    assert ids["a/web-1"] == ids["a/web-2"] == ids["a/web-3"] == ids["a/web-4"]
    assert len({ids[k].number for k in ("a/web-1", "a/api", "b/db")}) == 3
    # Same pod labels in another namespace, or other namespace labels: another identity.
    moved = BASE.replace(
        "{name: db, namespace: b, node: node-2, labels: {app: db}",
        "{name: db, namespace: b, node: node-2, labels: {app: web}",
    )
    ids2, _ = workload_identities(cluster_of(base=moved))
    assert ids2["b/db"].number != ids["a/web-1"].number
    relabeled = BASE.replace("{name: a, labels: {team: red}}", "{name: a, labels: {team: green}}")
    ids3, _ = workload_identities(cluster_of(base=relabeled))
    assert ids3["a/web-1"].number != ids["a/web-1"].number
    assert ids3["b/db"] == ids["b/db"]


def test_identities_are_the_same_in_another_spec():
    # Renaming pods, moving them and adding one does not change any existing number.
    ids, _ = workload_identities(cluster_of())
    other = BASE.replace("name: web-1,", "name: web-1-renamed,").replace(
        "node: node-1, labels: {app: web}, ips: [10.244.1.11]",
        "node: node-2, labels: {app: web}, ips: [10.244.2.11]",
    ) + (
        "    - {name: extra, namespace: b, node: node-1, labels: {app: extra},"
        " ips: [10.244.1.50]}\n"
    )
    ids2, _ = workload_identities(cluster_of(base=other))
    assert ids2["a/web-1-renamed"] == ids["a/web-1"]
    for key in ("a/web-2", "a/web-3", "a/api", "b/db"):
        assert ids2[key] == ids[key]


@settings(max_examples=150, deadline=None)
@given(st.sets(LABEL_SETS, max_size=12), LABEL_SETS)
def test_adding_a_label_set_never_renumbers_the_others(existing, added):
    before, _ = allocate(existing)
    after, notes = allocate(existing | {added})
    assert notes == []
    for labels, ident in before.items():
        assert after[labels] == ident
    assert len({i.number for i in after.values()}) == len(after)


@given(st.sets(LABEL_SETS, max_size=12))
def test_numbers_stay_out_of_the_reserved_range(label_sets):
    table, _ = allocate(label_sets)
    for ident in table.values():
        assert layout.IDENTITY_MIN_LABELS <= ident.number < 2**32
        assert ident.number not in (
            layout.IDENTITY_HOST,
            layout.IDENTITY_WORLD,
            layout.IDENTITY_REMOTE_NODE,
        )


def test_hash_bounds_stay_in_32_bits(monkeypatch):
    # The largest and smallest digests still land inside [IDENTITY_MIN_LABELS, 2**32).
    class FakeDigest:
        def __init__(self, value: bytes):
            self.value = value

        def digest(self):
            return self.value

    for raw in (b"\xff" * 32, b"\x00" * 32):
        monkeypatch.setattr(identity.hashlib, "sha256", lambda _blob, raw=raw: FakeDigest(raw))
        n = identity._hash((("app", "x"),), 0)
        assert layout.IDENTITY_MIN_LABELS <= n < 2**32


def test_collisions_are_probed_in_sorted_order_and_reported(monkeypatch):
    real = identity._hash
    # Every label set hashes to the same number at probe 0; later probes are the real ones.
    monkeypatch.setattr(
        identity, "_hash", lambda labels, probe: 4242 if probe == 0 else real(labels, probe)
    )
    sets = [(("app", "c"),), (("app", "a"),), (("app", "b"),)]
    table, notes = allocate(set(sets))
    # The first label set in sorted order keeps the number; the others probe on.
    assert table[(("app", "a"),)].number == 4242
    assert table[(("app", "b"),)].number == real((("app", "b"),), 1)
    assert table[(("app", "c"),)].number == real((("app", "c"),), 1)
    assert len({i.number for i in table.values()}) == 3
    assert len(notes) == 2
    assert all("collision" in n for n in notes)
    assert any("'b'" in n for n in notes) and any("'c'" in n for n in notes)


def test_probing_continues_past_several_collisions(monkeypatch):
    monkeypatch.setattr(identity, "_hash", lambda labels, probe: 1000 + probe)
    sets = {(("k", str(i)),) for i in range(5)}
    table, notes = allocate(sets)
    assert sorted(i.number for i in table.values()) == [1000, 1001, 1002, 1003, 1004]
    assert len(notes) == 4


def test_collision_notes_reach_the_plan(monkeypatch):
    from netcc.plan.planner import plan
    from netcc.resolve.resolution import resolve

    real = identity._hash
    monkeypatch.setattr(
        identity, "_hash", lambda labels, probe: 4242 if probe == 0 else real(labels, probe)
    )
    p = plan(resolve(cluster_of()))
    assert len(p.notes) == 2  # three distinct label sets: web, api, db
    numbers = {i.number for i in p.identities.values()}
    assert 4242 in numbers and len(numbers) == 3


def test_identity_describe():
    ident = identity.Identity(300, (("app", "web"), ("tier", "x")))
    assert ident.describe() == "app=web,tier=x"
    assert dataclasses.replace(ident, labels=()).describe() == ""


def test_workload_identity_ignores_everything_but_labels():
    cluster = cluster_of()
    web = next(w for w in cluster.workloads if w.key == "a/web-1")
    twin = Workload("other", "a", "node-2", web.labels, (), (), "x")
    assert identity_labels(cluster, twin) == identity_labels(cluster, web)
