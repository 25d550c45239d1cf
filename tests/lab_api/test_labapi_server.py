"""The lab's kube API serving EndpointSlices (list, pages, watch, bookmarks, 410), read through
netcc's own Kubernetes client, on a unix socket in a temporary directory. No lab, no root."""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from pathlib import Path

import pytest
from labapi_docs import pod, pods, services_bytes

from netcc.lab.kubeapi import _Server, read_doc, write_pods
from netcc.loader.kube import Action, BadResponse, KubeClient
from netcc.loader.kube.errors import KubeError

PATH = "/apis/discovery.k8s.io/v1/endpointslices"
LIST = Action("list", "endpointslices")
WATCH = Action("watch", "endpointslices")
WAIT = 10.0  # seconds an expected event may take (never asserted as fast)


class Api:
    """A server on `sock` answering from `state` (pods.json) and `out` (services.json)."""

    def __init__(self, tmp: Path, history: int = 1000) -> None:
        self.state, self.out = tmp / "state", tmp / "out"
        self.state.mkdir(exist_ok=True)
        self.out.mkdir(exist_ok=True)
        self.sock = str(tmp / "kube.sock")
        self.history = history
        self.server: _Server | None = None
        self.client = KubeClient(f"unix://{self.sock}")

    def start(self) -> Api:
        self.server = _Server(self.sock, self.state, out=lambda: self.out, history=self.history)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def services(self, **kw) -> None:
        (self.out / "services.json").write_bytes(services_bytes(**kw))

    def list(self, query: dict | None = None, path: str = PATH) -> dict:
        return self.client.get_json(path, LIST, query)

    def watch(self, **query: str) -> Watch:
        return Watch(self.client, {"watch": "1", **query})


class Watch:
    """A watch read in a thread; its events in a queue."""

    def __init__(self, client: KubeClient, query: dict, path: str = PATH) -> None:
        self.events: queue.Queue = queue.Queue()
        self.ended = threading.Event()
        self.error: BaseException | None = None

        def run() -> None:
            try:
                for event in client.stream_json_lines(path, WATCH, query, read_timeout=30):
                    self.events.put(event)
            except KubeError as e:
                self.error = e
            finally:
                self.ended.set()

        threading.Thread(target=run, daemon=True).start()

    def next(self, *types: str) -> dict:
        """The next event of one of `types` (others are skipped), waiting up to WAIT."""
        deadline = time.monotonic() + WAIT
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                break
            if event["type"] in types:
                return event
        raise AssertionError(f"no {types} event in {WAIT} s (error: {self.error})")

    def changes(self, count: int) -> list[dict]:
        """The next `count` events that are not bookmarks."""
        return [self.next("ADDED", "MODIFIED", "DELETED", "ERROR") for _ in range(count)]


@pytest.fixture
def api(tmp_path):
    a = Api(tmp_path)
    a.services()
    a.start()
    yield a
    a.stop()


def names(doc: dict) -> list[str]:
    return [i["metadata"]["name"] for i in doc["items"]]


def endpoints_of(doc: dict, service: str) -> list[str]:
    return sorted(
        e["addresses"][0]
        for i in doc["items"]
        if i["metadata"]["labels"]["kubernetes.io/service-name"] == service
        for e in i["endpoints"]
    )


def test_list_serves_the_slices_of_pods_json(api):
    doc = api.list()
    assert doc["kind"] == "EndpointSliceList" and doc["apiVersion"] == "discovery.k8s.io/v1"
    assert all(not i["endpoints"] for i in doc["items"]) and len(doc["items"]) == 2
    assert "kind" not in doc["items"][0]  # as the API server writes list items
    rv = int(doc["metadata"]["resourceVersion"])
    write_pods(api.state, pods(pod("web-1", "10.1.0.33"), pod("db-1", "10.1.1.64", app="db")))
    doc = api.list()  # never stale: read when asked
    assert int(doc["metadata"]["resourceVersion"]) > rv
    assert endpoints_of(doc, "web") == ["10.1.0.33"]
    assert endpoints_of(doc, "db") == ["10.1.1.64"]


def test_no_services_json_no_slices(api):
    (api.out / "services.json").unlink()
    write_pods(api.state, pods(pod("web-1", "10.1.0.33")))
    assert api.list()["items"] == []


def test_namespaced_list_and_label_selector(api):
    write_pods(api.state, pods(pod("web-1", "10.1.0.33")))
    assert (
        len(api.list(path="/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices")["items"]) == 2
    )
    assert api.list(path="/apis/discovery.k8s.io/v1/namespaces/other/endpointslices")["items"] == []
    web = api.list({"labelSelector": "kubernetes.io/service-name=web"})
    assert endpoints_of(web, "web") == ["10.1.0.33"] and len(web["items"]) == 1
    assert len(api.list({"labelSelector": "kubernetes.io/service-name!=web"})["items"]) == 1
    assert api.list({"labelSelector": "!kubernetes.io/service-name"})["items"] == []
    with pytest.raises(BadResponse, match="400"):
        api.list({"labelSelector": "app in (a,b)"})


def test_pages_with_limit_and_continue(api):
    write_pods(
        api.state,
        pods(*(pod(f"p{i}", f"10.1.0.{50 + i}") for i in range(3)), pod("w", "10.1.0.33")),
    )
    whole = api.list()
    assert len(whole["items"]) == 3
    got, token, rvs = [], "", set()
    while True:
        query = {"limit": "1", **({"continue": token} if token else {})}
        page = api.list(query)
        rvs.add(page["metadata"]["resourceVersion"])
        got += page["items"]
        token = page["metadata"].get("continue", "")
        if token:
            write_pods(api.state, {})  # later writes do not change the pages of a list
            assert page["metadata"]["remainingItemCount"] >= 1
        else:
            break
    assert got == whole["items"] and rvs == {whole["metadata"]["resourceVersion"]}
    with pytest.raises(BadResponse, match="400"):
        api.list({"limit": "1", "continue": "garbage!"})


def test_an_expired_continue_token_is_410(tmp_path):
    api = Api(tmp_path, history=2)
    api.services()
    api.start()
    try:
        write_pods(api.state, pods(pod("a", "10.1.0.33")))
        token = api.list({"limit": "1"})["metadata"]["continue"]
        for i in range(3):
            write_pods(api.state, pods(pod("a", "10.1.0.33", ready=bool(i % 2))))
            api.list()
        with pytest.raises(KubeError, match="410"):
            api.list({"limit": "1", "continue": token})
    finally:
        api.stop()


def test_watch_sends_added_modified_deleted(api):
    rv = api.list()["metadata"]["resourceVersion"]
    w = api.watch(resourceVersion=rv, timeoutSeconds="60")
    write_pods(api.state, pods(pod("web-1", "10.1.0.33", ready=False)))
    events = w.changes(2)  # the empty slice goes, the pod's slice comes
    kinds = {e["type"]: e["object"] for e in events}
    assert set(kinds) == {"ADDED", "DELETED"}, events
    added = kinds["ADDED"]
    assert added["kind"] == "EndpointSlice" and added["endpoints"][0]["addresses"] == ["10.1.0.33"]
    assert added["endpoints"][0]["conditions"]["ready"] is False
    assert int(added["metadata"]["resourceVersion"]) > int(rv)

    write_pods(api.state, pods(pod("web-1", "10.1.0.33", ready=True)))
    [modified] = w.changes(1)
    assert modified["type"] == "MODIFIED"
    assert modified["object"]["metadata"]["name"] == added["metadata"]["name"]
    assert modified["object"]["endpoints"][0]["conditions"]["ready"] is True
    assert int(modified["object"]["metadata"]["resourceVersion"]) > int(
        added["metadata"]["resourceVersion"]
    )

    write_pods(api.state, {})
    events = w.changes(2)
    assert {e["type"] for e in events} == {"ADDED", "DELETED"}
    deleted = next(e["object"] for e in events if e["type"] == "DELETED")
    assert deleted["metadata"]["name"] == added["metadata"]["name"]


def test_watch_from_an_older_version_replays_the_difference(api):
    rv = api.list()["metadata"]["resourceVersion"]
    write_pods(api.state, pods(pod("db-1", "10.1.0.64", app="db")))
    later = api.list()
    w = api.watch(resourceVersion=rv, timeoutSeconds="60")
    events = w.changes(2)
    assert {e["type"] for e in events} == {"ADDED", "DELETED"}
    added = next(e["object"] for e in events if e["type"] == "ADDED")
    assert added["endpoints"][0]["addresses"] == ["10.1.0.64"]
    assert endpoints_of(later, "db") == ["10.1.0.64"]


def test_watch_from_zero_starts_with_every_slice(api):
    write_pods(api.state, pods(pod("web-1", "10.1.0.33")))
    w = api.watch(resourceVersion="0", timeoutSeconds="60")
    events = w.changes(2)
    assert [e["type"] for e in events] == ["ADDED", "ADDED"]


def test_bookmarks_carry_the_current_version(api):
    write_pods(api.state, pods(pod("web-1", "10.1.0.33")))
    rv = api.list()["metadata"]["resourceVersion"]
    w = api.watch(resourceVersion=rv, allowWatchBookmarks="true", timeoutSeconds="60")
    mark = w.next("BOOKMARK")["object"]
    assert mark["metadata"]["resourceVersion"] == rv and mark["kind"] == "EndpointSlice"
    write_pods(api.state, pods(pod("web-1", "10.1.0.33", ready=False)))
    w.next("MODIFIED")
    rv2 = api.list()["metadata"]["resourceVersion"]
    deadline = time.monotonic() + WAIT
    while w.next("BOOKMARK")["object"]["metadata"]["resourceVersion"] != rv2:
        assert time.monotonic() < deadline


def test_no_bookmarks_unless_asked(api):
    rv = api.list()["metadata"]["resourceVersion"]
    w = api.watch(resourceVersion=rv, timeoutSeconds="2")
    assert w.ended.wait(WAIT)
    assert w.events.empty() and w.error is None


def test_timeout_seconds_ends_the_stream(api):
    rv = api.list()["metadata"]["resourceVersion"]
    w = api.watch(resourceVersion=rv, allowWatchBookmarks="1", timeoutSeconds="1")
    assert w.ended.wait(WAIT) and w.error is None


def expired(event: dict) -> dict:
    assert event["type"] == "ERROR", event
    status = event["object"]
    assert status["kind"] == "Status" and status["apiVersion"] == "v1"
    assert (status["status"], status["reason"], status["code"]) == ("Failure", "Expired", 410)
    return status


def test_a_version_the_server_never_had_is_410(tmp_path):
    api = Api(tmp_path)
    api.services()
    for i in range(4):
        write_pods(api.state, pods(pod("a", "10.1.0.33", ready=bool(i % 2))))
    api.start()
    start = read_doc(api.state)["resourceVersion"]  # the server's first (it saw OUT's services)
    try:
        w = api.watch(resourceVersion=str(start - 2), timeoutSeconds="60")
        status = expired(w.next("ERROR"))
        assert status["message"] == f"too old resource version: {start - 2} ({start})"
        assert w.ended.wait(WAIT)
        w = api.watch(resourceVersion=str(start), timeoutSeconds="1")  # its own: served
        assert w.ended.wait(WAIT) and w.events.empty()
        w = api.watch(resourceVersion=str(start + 50), timeoutSeconds="60")
        expired(w.next("ERROR"))
    finally:
        api.stop()


def test_a_restarted_server_expires_the_versions_of_the_last(tmp_path):
    api = Api(tmp_path)
    api.services()
    api.start()
    old = api.list()["metadata"]["resourceVersion"]
    api.stop()
    write_pods(api.state, pods(pod("a", "10.1.0.33")))
    api.start()
    try:
        w = api.watch(resourceVersion=old, timeoutSeconds="60")
        assert expired(w.next("ERROR"))["message"].startswith(f"too old resource version: {old} (")
        assert w.ended.wait(WAIT)
    finally:
        api.stop()


def test_a_pod_list_made_anew_expires_every_watch(api):
    write_pods(api.state, pods(pod("a", "10.1.0.33")))
    write_pods(api.state, pods(pod("a", "10.1.0.33"), pod("b", "10.1.0.34")))
    rv = api.list()["metadata"]["resourceVersion"]
    w = api.watch(resourceVersion=rv, timeoutSeconds="60")
    (api.state / "pods.json").unlink()  # as `lab down` and a new `lab up` leave it
    write_pods(api.state, pods(pod("c", "10.1.0.40")))
    status = expired(w.next("ERROR"))
    assert status["message"].startswith(f"resource version {rv} is not this server's")
    assert w.ended.wait(WAIT)
    assert endpoints_of(api.list(), "web") == ["10.1.0.40"]


def test_history_is_bounded(tmp_path):
    api = Api(tmp_path, history=3)
    api.services()
    api.start()
    try:
        first = api.list()["metadata"]["resourceVersion"]
        for i in range(5):
            write_pods(api.state, pods(pod("a", "10.1.0.33", ready=bool(i % 2))))
            api.list()
        w = api.watch(resourceVersion=first, timeoutSeconds="60")
        expired(w.next("ERROR"))
    finally:
        api.stop()


def test_a_services_change_is_a_new_version(api):
    write_pods(api.state, pods(pod("web-1", "10.1.0.33")))
    doc = api.list()
    rv = doc["metadata"]["resourceVersion"]
    w = api.watch(resourceVersion=rv, timeoutSeconds="60")
    api.services(web_target=8081)
    events = w.changes(2)  # the web slice's ports changed: a slice of another name
    assert {e["type"] for e in events} == {"ADDED", "DELETED"}
    added = next(e["object"] for e in events if e["type"] == "ADDED")
    assert {p["port"] for p in added["ports"]} == {8081, 9100}
    assert int(added["metadata"]["resourceVersion"]) > int(rv)
    assert read_doc(api.state)["resourceVersion"] == int(added["metadata"]["resourceVersion"])

    api.services(web_target=8081, db=False)
    [gone] = w.changes(1)
    assert gone["type"] == "DELETED"
    assert gone["object"]["metadata"]["labels"]["kubernetes.io/service-name"] == "db"


def test_a_broken_services_json_leaves_the_last_good_one_in_use(api):
    write_pods(api.state, pods(pod("web-1", "10.1.0.33")))
    before = api.list()
    (api.out / "services.json").write_text('{"servicesVersion": 1, "ports": [')
    time.sleep(0.2)  # several polls (nothing is expected to happen)
    assert api.list() == before
    api.services(web_target=8081)
    deadline = time.monotonic() + WAIT
    while api.list() == before:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert 8081 in {p["port"] for i in api.list()["items"] for p in i["ports"]}


def test_a_client_that_goes_away_ends_its_watch(api):
    def watching() -> int:
        return sum("process_request" in t.name for t in threading.enumerate())

    before = watching()
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(api.sock)
        s.sendall(f"GET {PATH}?watch=1&timeoutSeconds=600 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        s.settimeout(WAIT)
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        assert watching() == before + 1
    deadline = time.monotonic() + WAIT
    while watching() > before:
        assert time.monotonic() < deadline, "the watch's thread outlived its client"
        time.sleep(0.05)


def test_the_watch_is_chunked_json_lines(api):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(api.sock)
        s.sendall(
            f"GET {PATH}?watch=1&resourceVersion=0&timeoutSeconds=1 HTTP/1.1\r\n\r\n".encode()
        )
        s.settimeout(WAIT)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head and body.endswith(b"0\r\n\r\n")
    lines = []
    while body:
        size, _, rest = body.partition(b"\r\n")
        n = int(size, 16)
        lines.append(rest[:n])
        body = rest[n + 2 :]
    assert lines[-1] == b""
    assert [json.loads(line)["type"] for line in lines[:-1]] == ["ADDED", "ADDED"]


def test_pods_are_still_served_with_address_and_readiness(api):
    write_pods(api.state, pods(pod("web-1", "10.1.0.33", ready=False), pod("web-2", None)))
    got = api.client.get_json("/api/v1/namespaces/shop/pods/web-1", Action("get", "pods"))
    assert got["status"]["podIP"] == "10.1.0.33"
    assert got["status"]["conditions"] == [{"type": "Ready", "status": "False"}]
    assert api.client.get_pod("shop", "web-2").phase == "Pending"


def test_bad_watch_requests_are_400(api):
    for query in ({"resourceVersion": "abc"}, {"timeoutSeconds": "-1"}):
        with pytest.raises(BadResponse, match="400"):
            list(api.client.stream_json_lines(PATH, WATCH, {"watch": "1", **query}))
