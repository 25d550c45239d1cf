"""The loader's decisions that need no kernel: verdict translation across versions, and when
data maps may be synced in place."""

from __future__ import annotations

from netcc.loader import migrate
from netcc.loader.fit import Misfit
from netcc.loader.fit import allow_list as _allow_list
from netcc.loader.fit import snapshot_reason as _snapshot_reason
from netcc.loader.mapdata import Layout


def _v(number: int, name: str, action: str, **extra: object) -> dict:
    return {"number": number, "name": name, "action": action, "doc": "", **extra}


RESERVED = [_v(2, "ALLOW_UNISOLATED_EGRESS", "allow"), _v(16, "DROP_MALFORMED", "drop")]


def _rule(n: int, policy: str, index: int = 0) -> dict:
    return _v(n, f"RULE_{n}", "allow", policy=policy, direction="ingress", index=index)


def _deny(n: int, pod: str) -> dict:
    return _v(n, f"DENY_{n}", "drop", pod=pod, direction="ingress")


def test_translation_follows_rules_and_denies_by_identity() -> None:
    old = {"verdicts": [*RESERVED, _rule(32, "a/b"), _rule(33, "a/c"), _deny(34, "a/x")]}
    new = {"verdicts": [*RESERVED, _rule(32, "a/a"), _rule(33, "a/b"), _deny(35, "a/x")]}
    tr = migrate.translation(old, new)
    assert not tr.identical
    assert tr.mapping == {2: 2, 16: 16, 32: 33, 34: 35}
    assert tr.removed == [33]  # a/c is gone: its connections are kept as stale
    assert tr.stale == 15 and tr.verdict(33) == 15
    # next version: the stale number keeps its meaning
    again = migrate.translation(new, new, old_stale=15)
    assert again.identical and again.verdict(15) == 15
    assert migrate.translation(old, old).identical


def test_stale_number_is_an_unused_allow() -> None:
    table = {"verdicts": [_v(n, f"R{n}", "allow") for n in range(1, 16)] + RESERVED[1:]}
    assert migrate.stale_number(table) is None  # no room: removed rules' connections dropped
    assert migrate.stale_number({"verdicts": RESERVED}, prefer=7) == 7


LAYOUT = {
    "structs": {
        "k": {"size": 4, "fields": [{"name": "ip", "offset": 0, "size": 4, "encoding": "ipv4"}]},
        "cls": {"size": 4, "fields": [{"name": "peer", "offset": 0, "size": 4, "encoding": "u32"}]},
        "allow": {
            "size": 4,
            "fields": [{"name": "verdict", "offset": 0, "size": 4, "encoding": "u32"}],
        },
    },
    "maps": {
        "ipcache": {"type": "hash", "key": "k", "value": "cls", "max_entries": 8},
        "endpoints": {"type": "hash", "key": "k", "value": "cls", "max_entries": 8},
        "policy": {"type": "hash", "key": "k", "value": "allow", "max_entries": 8},
        "policy2": {"type": "lpm_trie", "key": "k", "value": "allow", "max_entries": 8},
    },
}


def test_data_maps_are_synced_in_place_only_when_that_is_safe() -> None:
    layout = Layout(LAYOUT)
    assert _allow_list(layout, "policy") and not _allow_list(layout, "ipcache")
    same = {m: {b"k": b"v"} for m in LAYOUT["maps"]}
    fits = {m: None for m in LAYOUT["maps"]}  # no misfit: the pinned map fits

    def reason(*changed: str, fits: dict = fits) -> str | None:
        want = {m: ({b"k": b"w"} if m in changed else v) for m, v in same.items()}
        return _snapshot_reason(layout, want, fits, same)

    assert reason() is None
    assert reason("policy", "policy2") is None  # allow lists: the union is safe
    assert reason("ipcache") is None  # one classification map: every entry flips atomically
    assert "ipcache, policy change together" in (reason("ipcache", "policy") or "")
    assert reason("endpoints", "ipcache") is not None
    misfit = fits | {"policy": Misfit.layout("max_entries 8 -> 16")}
    assert reason(fits=misfit) == "consistent snapshot: policy max_entries 8 -> 16"
    renumbered = reason(fits=fits | {"ipcache": Misfit.renumbered()})
    assert renumbered == "consistent snapshot: verdicts renumbered"


def test_layout_mismatch_names_what_differs() -> None:
    layout = Layout(LAYOUT)
    info = {"type": 1, "key_size": 4, "value_size": 4, "max_entries": 8}
    assert migrate.layout_mismatch(info, layout, "policy") is None
    assert migrate.layout_mismatch(info | {"max_entries": 4}, layout, "policy") == (
        "max_entries 4 -> 8"
    )
    assert migrate.carries_verdicts(layout, "policy")
    assert not migrate.carries_verdicts(layout, "ipcache")
