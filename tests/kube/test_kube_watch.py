"""SliceWatcher against a loopback server replaying recorded API answers: paged lists, watches
with bookmarks, 410 relists, backoff (delays recorded through an injected sleep)."""

from __future__ import annotations

import logging
import random
import socket
import threading
import time

import pytest
from kubereplay import Reply, answer, raw_stream, recording, stream

from netcc.loader.kube import Action, EndpointSlice, Gone, KubeClient, SliceWatcher
from netcc.loader.kube.endpointslices import PATH

TOKEN = recording("list-page-1.json")["body"]["metadata"]["continue"]
ALL = {"kube-system/kube-dns", "shop/cart", "shop/web"}


def listing(name: str, limit: str = "500", token: str | None = None) -> Reply:
    return answer(name, limit=limit, watch=None, resourceVersion=None, **{"continue": token})


def watch(name: str, rv: str, **kw) -> Reply:
    return stream(name, resourceVersion=rv, allowWatchBookmarks="true", **kw)


class Calls:
    """What the watcher told its owner."""

    def __init__(self, fail_on: str = "") -> None:
        self.changes: list[tuple[str, list[str]]] = []
        self.slices: dict[str, tuple[EndpointSlice, ...]] = {}
        self.synced = 0
        self.fail_on = fail_on

    def on_change(self, key: str, slices: tuple[EndpointSlice, ...]) -> None:
        self.changes.append((key, [s.name for s in slices]))
        self.slices[key] = slices
        if key == self.fail_on:
            raise RuntimeError(f"the owner failed on {key}")

    def on_synced(self) -> None:
        self.synced += 1

    def take(self) -> list[tuple[str, list[str]]]:
        out, self.changes = self.changes, []
        return out


@pytest.fixture
def calls() -> Calls:
    return Calls()


def watcher(client: KubeClient, calls: Calls, **kw) -> SliceWatcher:
    kw = {"timeout_seconds": 60, "rng": random.Random(1), **kw}
    return SliceWatcher(client, calls.on_change, on_synced=calls.on_synced, **kw)


def synced(api, client, calls, **kw) -> SliceWatcher:
    """A watcher that has listed list-single.json (resourceVersion 184400)."""
    api.play(listing("list-single.json"))
    w = watcher(client, calls, **kw)
    assert w.step() == 0.0 and w.stats.synced
    assert {k for k, _ in calls.take()} == ALL
    return w


def window(raw: float, base: float, cap: float) -> tuple[float, float]:
    """Where a jittered delay of `raw` may fall."""
    return max(base, 0.75 * min(raw, cap)), min(cap, 1.25 * raw)


# -- list and watch ---------------------------------------------------------------------------


def test_list_in_two_pages_then_watch(api, client, calls):
    api.play(
        listing("list-page-1.json", limit="3"),
        listing("list-page-2.json", limit="3", token=TOKEN),
        watch("watch-events.jsonl", "184400", timeoutSeconds="60"),
    )
    w = watcher(client, calls, page_size=3)
    assert w.step() == 0.0
    assert calls.take() == [
        ("kube-system/kube-dns", ["kube-dns-m2x7c"]),
        ("shop/cart", ["cart-6xk2p", "cart-q8w4z"]),  # one service, two slices
        ("shop/web", ["web-h7v2n"]),  # web-v6-8kd9s is IPv6; legacy-db has no service
    ]
    assert calls.synced == 1
    assert (w.stats.lists, w.stats.pages, w.stats.resource_version) == (1, 2, "184400")
    assert w.step() == 0.0
    assert calls.take() == [
        ("shop/cart", ["cart-6xk2p", "cart-q8w4z"]),
        ("shop/api", ["api-4zq8x"]),
    ]
    terminating = calls.slices["shop/cart"][0].endpoints[1]
    assert (terminating.ready, terminating.serving, terminating.terminating) == (False, False, True)
    assert w.stats.resource_version == "184530"  # the bookmark's
    assert (w.stats.watches, w.stats.reconnects, w.stats.events, w.stats.bookmarks) == (1, 0, 2, 1)
    assert [r.query for r in api.requests] == [
        {"limit": "3"},
        {"limit": "3", "continue": TOKEN},
        {
            "watch": "1",
            "resourceVersion": "184400",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "60",
        },
    ]
    assert {r.path for r in api.requests} == {PATH}
    assert calls.synced == 1


def test_bookmarks_advance_the_resource_version(api, client, calls):
    w = synced(api, client, calls)
    api.play(
        watch("watch-bookmarks.jsonl", "184400"),
        watch("watch-events.jsonl", "184688"),
        watch("watch-bookmarks.jsonl", "184530"),
    )
    assert [w.step(), w.step(), w.step()] == [0.0, 0.0, 0.0]
    assert (w.stats.bookmarks, w.stats.resource_version) == (5, "184688")
    assert (w.stats.watches, w.stats.reconnects, w.stats.lists) == (3, 2, 1)


def test_a_stream_the_server_ends_or_cuts_is_watched_again_at_once(api, client, calls):
    w = synced(api, client, calls)
    api.play(
        watch("watch-events.jsonl", "184400"),
        watch("watch-delete.jsonl", "184530"),
        watch("watch-relabel.jsonl", "184710", cut=True),  # closed without the final chunk
        watch("watch-bookmarks.jsonl", "184750"),
    )
    assert [w.step(), w.step()] == [0.0, 0.0]
    calls.take()
    assert w.step() == 0.0  # as client-go: a cut watch is over, start the next one
    assert calls.take() == [("shop/api", []), ("shop/api-v2", ["api-4zq8x"])]
    assert w.step() == 0.0
    assert (w.stats.lists, w.stats.watches, w.stats.reconnects, w.stats.errors) == (1, 4, 3, 0)


def test_a_watch_that_brings_nothing_backs_off(api, client, calls):
    w = synced(api, client, calls)
    api.play(raw_stream(resourceVersion="184400"), raw_stream(resourceVersion="184400"))
    first, second = w.step(), w.step()
    assert 0.5 <= first <= 0.625 and 0.75 <= second <= 1.25
    assert w.stats.errors == 0 and w.stats.lists == 1


def test_deleting_one_slice_of_a_service_leaves_the_other(api, client, calls):
    w = synced(api, client, calls)
    api.play(watch("watch-delete.jsonl", "184400"))
    assert w.step() == 0.0
    assert calls.take() == [("shop/cart", ["cart-6xk2p"])]
    assert w.stats.resource_version == "184710"


def test_a_slice_whose_service_label_changes_changes_both_services(api, client, calls):
    w = synced(api, client, calls)
    api.play(watch("watch-events.jsonl", "184400"), watch("watch-relabel.jsonl", "184530"))
    w.step()
    calls.take()
    assert w.step() == 0.0
    assert calls.take() == [("shop/api", []), ("shop/api-v2", ["api-4zq8x"])]
    assert w.cache.services() == {"kube-system/kube-dns", "shop/api-v2", "shop/cart", "shop/web"}


def test_slices_that_are_not_ipv4_are_ignored(api, client, calls):
    w = synced(api, client, calls)
    api.play(watch("watch-ipv6.jsonl", "184400"))
    assert w.step() == 0.0
    assert calls.take() == [] and w.stats.resource_version == "184900"
    assert [s.name for s in w.cache.service_slices("shop/web")] == ["web-h7v2n"]


# -- 410 Gone ---------------------------------------------------------------------------------


def test_an_expired_watch_lists_again_and_reports_vanished_services(api, client, calls):
    w = synced(api, client, calls)
    api.play(
        watch("watch-expired.jsonl", "184400"),  # MODIFIED cart-6xk2p, then ERROR 410
        listing("list-relist.json"),
        watch("watch-bookmarks.jsonl", "190211"),
    )
    assert w.step() == 0.0  # the first 410: list again at once
    assert calls.take() == [("shop/cart", ["cart-6xk2p", "cart-q8w4z"])]
    assert w.stats.gone == 1 and "too old resource version: 184471 (190211)" in w.stats.last_error
    assert w.step() == 0.0
    # web's slice is gone; cart's slices are as the watch left them (only newer)
    assert calls.take() == [("shop/web", [])]
    assert (w.stats.lists, w.stats.relists, w.stats.resource_version) == (2, 1, "190211")
    assert w.step() == 0.0
    assert calls.synced == 1 and w.stats.errors == 0


def test_a_410_answer_to_a_watch_lists_again(api, client, calls):
    w = synced(api, client, calls)
    api.play(
        answer("status-410-expired.json", watch="1", resourceVersion="184400"),
        listing("list-relist.json"),
    )
    assert w.step() == 0.0
    assert w.stats.gone == 1
    assert "410 Gone: too old resource version: 184400 (190211)" in w.stats.last_error
    assert w.step() == 0.0
    assert calls.take() == [("shop/cart", ["cart-6xk2p", "cart-q8w4z"]), ("shop/web", [])]


def test_an_expired_continue_token_restarts_the_list(api, client, calls):
    api.play(
        listing("list-page-1.json", limit="3"),
        listing("status-410-continue.json", limit="3", token=TOKEN),
        listing("list-page-1.json", limit="3"),  # from scratch: no continue
        listing("list-page-2.json", limit="3", token=TOKEN),
    )
    w = watcher(client, calls, page_size=3)
    assert w.step() == 0.0
    assert calls.changes == [] and calls.synced == 0 and not w.stats.synced  # nothing half-listed
    assert w.step() == 0.0
    assert {k for k, _ in calls.take()} == ALL
    assert (w.stats.gone, w.stats.lists, w.stats.pages, calls.synced) == (1, 1, 3, 1)


def test_410s_in_a_row_back_off_instead_of_listing_in_a_loop(api, client, calls):
    w = synced(api, client, calls)
    api.play(
        answer("status-410-expired.json", watch="1"),
        listing("status-410-continue.json"),
        listing("list-relist.json"),
        answer("status-410-expired.json", watch="1"),
        listing("list-relist.json"),
        watch("watch-bookmarks.jsonl", "190211"),
        answer("status-410-expired.json", watch="1"),
    )
    assert w.step() == 0.0
    assert 0.5 <= w.step() <= 0.625  # the second 410 without a watch event in between
    assert w.step() == 0.0
    assert 0.75 <= w.step() <= 1.25  # and the third
    assert [w.step(), w.step()] == [0.0, 0.0]  # a list, then a watch with events
    assert w.step() == 0.0  # a 410 after progress: at once again
    assert w.stats.gone == 4


# -- errors and backoff -----------------------------------------------------------------------


def test_backoff_grows_with_jitter_is_capped_and_resets_after_success(api, client, calls):
    api.play(
        *[answer("status-500.json", watch=None)] * 6,
        listing("list-single.json"),
        *[answer("status-500.json", watch="1", resourceVersion="184400")] * 2,
    )
    stop, delays = threading.Event(), []

    def sleep(delay: float) -> None:
        delays.append(delay)
        if api.pending == 0:
            stop.set()

    w = watcher(client, calls, backoff=(1.0, 8.0), sleep=sleep, rng=random.Random(5))
    w.run(stop)
    raws = [1, 2, 4, 8, 8, 8, 1, 2]  # reset by the list
    assert len(delays) == len(raws)
    for delay, raw in zip(delays, raws, strict=True):
        low, high = window(raw, 1.0, 8.0)
        assert low <= delay <= high, (delay, raw)
    assert delays[0] < delays[2] < delays[3] and max(delays) <= 8.0
    assert len(set(delays[3:6])) > 1  # jitter at the cap too: nodes do not retry in step
    assert (w.stats.errors, w.stats.lists, w.stats.synced) == (8, 1, True)
    assert "500 Internal Server Error" in w.stats.last_error and "etcdserver" in w.stats.last_error


def test_retry_after_is_honoured(api, client, calls):
    api.play(listing("status-429.json"), listing("status-429.json"))
    assert watcher(client, calls).step() == 7.0
    assert watcher(client, calls, backoff=(0.5, 5.0)).step() == 5.0  # but never past the cap


def test_an_error_event_backs_off_and_watches_again_from_the_last_version(api, client, calls):
    w = synced(api, client, calls)
    api.play(
        watch("watch-error-500.jsonl", "184400"),  # ADDED api-4zq8x, then ERROR 500
        watch("watch-bookmarks.jsonl", "184502"),
    )
    assert w.step() == 1.0  # the Status's retryAfterSeconds
    assert calls.take() == [("shop/api", ["api-4zq8x"])]
    assert "500 InternalError: Internal error occurred" in w.stats.last_error
    assert w.step() == 0.0 and w.stats.lists == 1


def test_connection_refused_backs_off(calls):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    w = watcher(KubeClient(f"http://127.0.0.1:{port}", connect_timeout=2.0), calls)
    delays = [w.step() for _ in range(8)]
    for n, delay in enumerate(delays, 1):
        low, high = window(0.5 * 2 ** (n - 1), 0.5, 30.0)
        assert low <= delay <= high
    assert delays[-1] > 20 and w.stats.errors == 8 and not w.stats.synced
    assert "did not answer list endpointslices.discovery.k8s.io" in w.stats.last_error


def test_forbidden_logs_the_rbac_rule_and_retries_at_the_longest_backoff(
    api, client, calls, caplog
):
    api.play(listing("status-403.json"), listing("status-401.json"))
    w = watcher(client, calls)
    with caplog.at_level(logging.ERROR, logger="netcc.kube"):
        assert 22.5 <= w.step() <= 30.0
        assert 22.5 <= w.step() <= 30.0
    forbidden, unauthorized = (r.getMessage() for r in caplog.records)
    assert "forbids list endpointslices.discovery.k8s.io (all namespaces) (403" in forbidden
    assert 'cannot list resource "endpointslices" in API group "discovery.k8s.io"' in forbidden
    assert "needs `list` and `watch` on endpointslices.discovery.k8s.io" in forbidden
    assert "rejected the node's credentials" in unauthorized
    assert all(r.name == "netcc.kube" for r in caplog.records)


# -- bad data ---------------------------------------------------------------------------------


def test_a_malformed_list_item_is_logged_and_left_out(api, client, calls, caplog):
    api.play(listing("list-malformed-item.json"))
    w = watcher(client, calls)
    with caplog.at_level(logging.ERROR, logger="netcc.kube"):
        assert w.step() == 0.0
    assert calls.take() == [
        ("kube-system/kube-dns", ["kube-dns-m2x7c"]),
        ("shop/cart", ["cart-6xk2p"]),
        ("shop/web", ["web-h7v2n"]),
    ]
    [record] = caplog.records
    assert "EndpointSlice shop/cart-q8w4z: endpoints[0].addresses must be a list" in (
        record.getMessage()
    )
    assert record.exc_info is None and w.stats.errors == 1 and w.stats.synced


def test_malformed_watch_objects_are_logged_and_taken_as_absent(api, client, calls, caplog):
    w = synced(api, client, calls)
    api.play(watch("watch-malformed.jsonl", "184400"))
    with caplog.at_level(logging.ERROR, logger="netcc.kube"):
        assert w.step() == 0.0
    # cart-6xk2p's new version is malformed: what it holds now is unknown, so it is dropped
    assert calls.take() == [("shop/cart", ["cart-q8w4z"]), ("shop/api", ["api-4zq8x"])]
    assert len(caplog.records) == w.stats.errors == 5
    assert all(r.exc_info is None for r in caplog.records)
    assert "endpoints[0].conditions.ready must be true or false, not 'yes'" in caplog.text
    assert w.stats.resource_version == "184806"


@pytest.mark.parametrize(
    ("line", "cut"),
    [
        (b'{"type":"ADDED","object":{"metadata":\n', False),  # not JSON
        (b'{"type":"ADDED","object":{"metadata":', True),  # the connection closed mid-line
        (b'{"type":"ADDED","object":"cart-6xk2p"}\n', False),  # no object
        (b'{"object":{}}\n', False),  # no type
        (b'{"type":"BOOKMARK","object":{"metadata":{}}}\n', False),  # no resourceVersion
        (b"[1, 2]\n", False),
    ],
)
def test_a_bad_event_ends_the_watch_with_backoff(api, client, calls, line, cut):
    w = synced(api, client, calls)
    api.play(
        raw_stream(line, cut=cut, resourceVersion="184400"),
        watch("watch-delete.jsonl", "184400"),
    )
    assert 0.5 <= w.step() <= 0.625
    assert w.stats.errors == 1 and w.stats.last_error
    assert w.step() == 0.0 and w.stats.lists == 1  # from the same version, no list


def test_an_unknown_event_type_is_skipped(api, client, calls, caplog):
    w = synced(api, client, calls)
    api.play(
        raw_stream(b'{"type":"SYNC","object":{}}\n', resourceVersion="184400"),
    )
    assert w.step() == 0.0
    assert "ignoring a watch event of type 'SYNC'" in caplog.text


@pytest.mark.parametrize(
    "body",
    [
        b'{"kind":"EndpointSliceList","items":[]}',
        b'{"metadata":{"resourceVersion":"1"},"items":{}}',
    ],
)
def test_a_list_that_is_not_one_backs_off(api, client, calls, body):
    api.play(Reply(body=body), listing("list-single.json"))
    w = watcher(client, calls)
    assert 0.5 <= w.step() <= 0.625 and not w.stats.synced
    assert w.step() == 0.0 and calls.synced == 1


def test_an_owner_that_raises_does_not_stop_the_watch(api, client, caplog):
    calls = Calls(fail_on="shop/cart")
    w = synced(api, client, calls)
    api.play(watch("watch-events.jsonl", "184400"), watch("watch-delete.jsonl", "184530"))
    assert w.step() == 0.0 and w.step() == 0.0
    assert [k for k, _ in calls.take()] == ["shop/cart", "shop/api", "shop/cart"]
    assert w.stats.callback_errors == 3  # the list's, and two events'
    assert "on_change(shop/cart) failed" in caplog.text


# -- the loop ---------------------------------------------------------------------------------


def test_run_stops_promptly_during_a_backoff(api, client, calls):
    api.play(answer("status-500.json"))
    w = watcher(client, calls, backoff=(30.0, 30.0))
    stop = threading.Event()
    t = threading.Thread(target=w.run, args=(stop,), daemon=True)
    t.start()
    while w.stats.errors == 0 and t.is_alive():
        time.sleep(0.01)
    stop.set()
    t.join(10)
    assert not t.is_alive() and len(api.requests) == 1


def test_run_with_stop_set_asks_nothing(api, client, calls):
    stop = threading.Event()
    stop.set()
    watcher(client, calls).run(stop)
    assert api.requests == []


def test_http_410_is_gone(api, client):
    api.play(answer("status-410-expired.json"))
    with pytest.raises(Gone, match=r"answered list endpointslices.* with 410 Gone: too old"):
        client.get_json(PATH, Action("list", "endpointslices.discovery.k8s.io"))
