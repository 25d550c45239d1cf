"""netcc.loader.kube against recorded API answers (tests/cni/recordings), served over TCP, TLS
and a unix socket by a local server."""

from __future__ import annotations

import json
import os
import shutil
import socketserver
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from netcc.loader.cni.protocol import CniError, parse_request
from netcc.loader.kube import (
    Action,
    BadResponse,
    ConfigError,
    Forbidden,
    KubeClient,
    NotFound,
    Pod,
    Unauthorized,
    Unavailable,
)
from netcc.loader.kube.client import _retry_after

RECORDINGS = Path(__file__).with_name("recordings")
POD = "cart-7d9f8c6b5-x2x4q"


def load_recordings() -> dict[str, dict]:
    out = {}
    for path in sorted(RECORDINGS.glob("*.json")):
        rec = json.loads(path.read_text())
        resp = rec["response"]
        if "bodyFrom" in resp:
            other = json.loads((RECORDINGS / resp["bodyFrom"]).read_text())
            resp["body"] = other["response"]["body"]
        if "bodyText" in resp:
            resp["body"] = resp["bodyText"].encode()
        out[rec["request"]["path"]] = rec
    return out


class Api(BaseHTTPRequestHandler):
    """Answers each request with its recording; 401 when a required token is missing."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        srv = self.server
        srv.seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        rec = srv.recordings.get(self.path)
        if rec is None:
            rec = srv.recordings["/api/v1/namespaces/shop/pods/cart-gone"]  # a 404 Status
        if srv.token and self.headers.get("Authorization") != f"Bearer {srv.token}":
            rec = srv.recordings["/api/v1/namespaces/shop/pods/expired"]  # a 401 Status
        time.sleep(rec.get("delaySeconds", 0))
        resp = rec["response"]
        self.send_response(resp["status"])
        for key, value in resp["headers"].items():
            if key != "Transfer-Encoding":
                self.send_header(key, value)
        if "bodyLines" in resp:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for event in resp["bodyLines"]:
                line = json.dumps(event).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            return
        body = resp["body"]
        body = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: rec.get("truncateTo", len(body))])
        if "truncateTo" in rec:
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


class UnixApiServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def _serve(srv) -> Iterator:
    srv.recordings, srv.seen, srv.token = load_recordings(), [], None
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def api() -> Iterator[ThreadingHTTPServer]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    srv.daemon_threads = True
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield from _serve(srv)


@pytest.fixture
def unix_api(short_dir: Path) -> Iterator[UnixApiServer]:
    path = short_dir / "kube.sock"
    srv = UnixApiServer(str(path), Api)
    srv.url = f"unix://{path}"
    yield from _serve(srv)


def client(api, **kw) -> KubeClient:
    return KubeClient(api.url, **{"token": "t0ken", "read_timeout": 0.5, **kw})


def test_get_pod(api):
    pod = client(api).get_pod("shop", POD)
    assert pod == Pod(
        namespace="shop",
        name=POD,
        uid="6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        labels={"app": "cart", "tier": "backend", "pod-template-hash": "7d9f8c6b5"},
        node_name="node-1",
        phase="Pending",
    )
    [seen] = api.seen
    assert seen["authorization"] == "Bearer t0ken" and seen["accept"] == "application/json"


def test_get_pod_over_a_unix_socket(unix_api):
    assert client(unix_api).get_pod("shop", POD).labels["app"] == "cart"


def test_not_found(api):
    with pytest.raises(NotFound) as e:
        client(api).get_pod("shop", "cart-gone")
    assert str(e.value) == 'get pods shop/cart-gone: not found: pods "cart-gone" not found'


def test_forbidden_names_the_missing_rbac_rule(api):
    with pytest.raises(Forbidden) as e:
        client(api).get_pod("payments", "api-0")
    msg = str(e.value)
    assert "forbids get pods payments/api-0 (403 Forbidden)" in msg
    assert 'cannot get resource "pods"' in msg  # the API server's words
    assert msg.endswith("needs the RBAC permission `get pods` in namespace payments")


def test_unauthorized_with_a_fixed_token(api):
    api.token = "the-right-one"
    with pytest.raises(Unauthorized, match=r"rejected the node's credentials .*401"):
        client(api).get_pod("shop", POD)
    assert len(api.seen) == 1  # a fixed token is not retried


def test_a_rotated_token_file_is_read_again(api, tmp_path):
    token = tmp_path / "token"
    token.write_text("first\n")
    c = KubeClient(api.url, token_file=token, read_timeout=0.5)
    api.token = "first"
    c.get_pod("shop", POD)
    token.write_text("second-and-longer\n")  # kubelet rotates the projected token
    api.token = "second-and-longer"
    c.get_pod("shop", POD)
    assert [s["authorization"] for s in api.seen] == [
        "Bearer first",
        "Bearer second-and-longer",
    ]


def test_a_401_reads_the_token_file_once_more(api, tmp_path):
    token = tmp_path / "token"
    token.write_text("stale")
    c = KubeClient(api.url, token_file=token, read_timeout=0.5)
    c.get_pod("shop", POD)  # cached
    api.token = "fresh"
    st = token.stat()
    token.write_text("fresh")  # same size; mtime restored: only a forced read sees it
    os.utime(token, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert c.get_pod("shop", POD).name == POD
    assert [s["authorization"] for s in api.seen] == ["Bearer stale"] * 2 + ["Bearer fresh"]
    api.token = "nobody-has-this"
    with pytest.raises(Unauthorized, match=f"token file {token}"):
        c.get_pod("shop", POD)


@pytest.mark.parametrize(
    ("name", "words", "retry"),
    [
        ("etcd-trouble", "(500 Internal Server Error): Internal error occurred: etcdserver", None),
        ("throttled", "(429 Too Many Requests): Too many requests", 2.0),
    ],
)
def test_server_side_trouble_is_unavailable(api, name, words, retry):
    with pytest.raises(Unavailable) as e:
        client(api).get_pod("shop", name)
    assert words in str(e.value) and e.value.retry_after == retry
    if retry:
        assert str(e.value).endswith("retry after 2 s")


def test_a_slow_server_times_out(api):
    start = time.monotonic()
    with pytest.raises(Unavailable, match=r"did not answer get pods shop/slow: timed out"):
        client(api, read_timeout=0.3).get_pod("shop", "slow")
    assert time.monotonic() - start < 2


def test_a_truncated_body_is_unavailable(api):
    with pytest.raises(Unavailable, match="connection closed after 700 bytes"):
        client(api).get_pod("shop", "truncated")


def test_nobody_listening(short_dir):
    with pytest.raises(Unavailable, match="did not answer get pods shop/x"):
        KubeClient(f"unix://{short_dir}/none.sock").get_pod("shop", "x")
    with pytest.raises(Unavailable, match="refused"):
        KubeClient("http://127.0.0.1:9", connect_timeout=1).get_pod("shop", "x")


def test_bounded_bodies_and_bad_answers(api):
    with pytest.raises(BadResponse, match="larger than 1000 bytes"):
        client(api, max_body=1000).get_pod("shop", POD)
    api.recordings["/api/v1/namespaces/shop/pods/odd"] = {
        "response": {"status": 200, "headers": {}, "body": {"kind": "Service"}}
    }
    with pytest.raises(BadResponse, match="not a Pod"):
        client(api).get_pod("shop", "odd")
    api.recordings["/api/v1/namespaces/shop/pods/html"] = {
        "response": {"status": 200, "headers": {}, "body": b"<html>proxy</html>"}
    }
    with pytest.raises(BadResponse, match="not JSON"):
        client(api).get_pod("shop", "html")


def test_stream_json_lines_reads_a_watch(api):
    path = "/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices"
    events = list(
        client(api).stream_json_lines(
            path,
            Action("watch", "endpointslices", "shop"),
            {"watch": "1", "resourceVersion": "184400"},
        )
    )
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[0]["object"]["endpoints"][0]["addresses"] == ["10.244.1.17"]


def test_invalid_names_never_reach_the_api(api):
    for namespace, name in (("Shop", "x"), ("shop", "../secrets"), ("shop", "a/b"), ("", "x")):
        with pytest.raises(ValueError):
            client(api).get_pod(namespace, name)
    assert api.seen == []


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.1:6443", "ftp://127.0.0.1", "unix://relative/path", "https://user@h:1"],
)
def test_refused_base_urls(url):
    with pytest.raises(ValueError):
        KubeClient(url)


def test_retry_after_forms():
    assert _retry_after("7") == 7.0
    assert _retry_after(None) is None and _retry_after("soon") is None
    http_date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= _retry_after(http_date) <= 31


def test_in_cluster_needs_the_environment(tmp_path):
    with pytest.raises(ConfigError, match="KUBERNETES_SERVICE_HOST"):
        KubeClient.in_cluster(env={})
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    with pytest.raises(ConfigError, match="token is missing"):
        KubeClient.in_cluster(env=env, sa_dir=tmp_path)
    (tmp_path / "token").write_text("t")
    (tmp_path / "ca.crt").write_text("")
    with pytest.raises(ConfigError, match=r"CA file .*ca\.crt is unusable"):  # an empty CA file
        KubeClient.in_cluster(env=env, sa_dir=tmp_path)


@pytest.fixture
def tls_api(tmp_path) -> Iterator[ThreadingHTTPServer]:
    """The recorded API over TLS, with a certificate for 127.0.0.1 from a fresh CA."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "apiserver.crt", tmp_path / "apiserver.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1", "-subj", "/CN=kube-apiserver", "-addext",
         "subjectAltName=IP:127.0.0.1,DNS:kubernetes.default.svc",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    srv.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.ca, srv.port = cert, srv.server_address[1]
    yield from _serve(srv)


def test_in_cluster_over_tls(tls_api, tmp_path):
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text("sa-token\n")
    shutil.copy(tls_api.ca, sa / "ca.crt")
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(tls_api.port)}
    c = KubeClient.in_cluster(env=env, sa_dir=sa, read_timeout=2)
    assert c.get_pod("shop", POD).node_name == "node-1"
    assert tls_api.seen[0]["authorization"] == "Bearer sa-token"
    untrusting = KubeClient(f"https://127.0.0.1:{tls_api.port}", token="x", read_timeout=2)
    with pytest.raises(Unavailable, match="CERTIFICATE_VERIFY_FAILED"):
        untrusting.get_pod("shop", POD)


# -- the daemon's CNI errors for each recorded failure ---------------------------------------


def _daemon_add(api, namespace: str, name: str, **kw) -> CniError:
    """A CNI ADD of pod `namespace/name` by a ready daemon whose pod source is a KubeClient
    of `api`; the CniError it fails with (before anything is made)."""
    from ipaddress import IPv4Address, IPv4Network

    from netcc.loader.cni.ipam import AddressStore
    from netcc.loader.daemon.handler import Daemon, Readiness
    from netcc.loader.daemon.view import NodeView

    def never(*args: object) -> None:
        raise AssertionError("a failed ADD must not apply")

    store = AddressStore(Path(kw.pop("tmp")) / "ipam")
    d = Daemon("node-1", store, client(api, **kw), never)
    d.view = NodeView(
        Path("/nonexistent"), "node-1", "ab" * 32, None, IPv4Network("10.244.1.0/24"),
        IPv4Address("10.244.1.1"),
    )  # fmt: skip
    d.readiness = Readiness(True, "")
    request = {
        "command": "ADD", "containerID": "c0ffee", "netns": "/run/netns/x", "ifname": "eth0",
        "args": f"IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name}",
        "path": "/opt/cni/bin",
        "config": json.dumps({"cniVersion": "1.0.0", "name": "netcc", "type": "netcc-cni"}),
    }  # fmt: skip
    with pytest.raises(CniError) as e:
        d.add(parse_request(json.dumps(request).encode()))
    assert store.allocations() == {}
    return e.value


@pytest.mark.parametrize(
    ("pod", "code", "words"),
    [
        # the token is refused: an operator must fix the credentials
        ("shop/expired", 5, ["401 Unauthorized", "token is not accepted"]),
        # RBAC missing: the message names the permission
        ("payments/api-0", 5, ["403 Forbidden", "needs the RBAC permission `get pods`"]),
        # the API does not know the pod
        ("shop/cart-gone", 3, ["does not know it", 'pods "cart-gone" not found']),
        # passing trouble: 11, try again later
        ("shop/etcd-trouble", 11, ["500 Internal Server Error", "try again later"]),
        ("shop/throttled", 11, ["429", "retry after 2 s", "try again later"]),
        ("shop/slow", 11, ["timed out", "try again later"]),
        ("shop/truncated", 11, ["connection closed", "try again later"]),
        # an answer this client cannot use
        ("shop/malformed", 5, ["a bad answer", "not JSON"]),
    ],
)
def test_api_failures_become_clear_cni_errors(api, tmp_path, pod, code, words):
    namespace, name = pod.split("/")
    if name == "expired":
        api.token = "the-right-one"
    err = _daemon_add(api, namespace, name, tmp=tmp_path, read_timeout=0.3)
    assert err.code == code, err.msg
    assert err.msg.startswith(f"pod {pod}")
    for w in words:
        assert w in err.msg, err.msg


def test_the_api_unreachable_is_try_again_later(short_dir, tmp_path):
    class Nowhere:
        url = f"unix://{short_dir}/none.sock"

    err = _daemon_add(Nowhere, "shop", "x", tmp=tmp_path)
    assert err.code == 11 and "try again later" in err.msg
