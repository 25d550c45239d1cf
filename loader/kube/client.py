"""KubeClient: `get_pod` for the CNI daemon; `get_json` and `stream_json_lines` are the
helpers issue 14's list and watch of EndpointSlices build on.

Credentials: a bearer token, fixed or read from a file. A file is read again whenever it
changes (bound service-account tokens rotate: kubelet rewrites the projected file well
before expiry) and once more after a 401, in case the rotation happened just then.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode

from netcc.loader.cni import names
from netcc.loader.kube import transport
from netcc.loader.kube.errors import (
    Action,
    BadResponse,
    ConfigError,
    Forbidden,
    Gone,
    KubeError,
    NotFound,
    Unauthorized,
    Unavailable,
)

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
MAX_BODY = 4 << 20
"""A pod is a few KiB (tens with managedFields); anything near this is not one."""
MAX_LINE = 4 << 20
MAX_TOKEN = 64 << 10
_MAX_SHOWN = 300  # characters of a server's message quoted in an error


@dataclass(frozen=True)
class Pod:
    """What the daemon needs of a pod."""

    namespace: str
    name: str
    uid: str
    labels: Mapping[str, str] = field(default_factory=dict)
    node_name: str = ""
    phase: str = ""

    @classmethod
    def from_json(cls, doc: object) -> Pod:
        """A Pod from the API's JSON; BadResponse when it is not one."""
        bad = BadResponse("the API server's answer is not a Pod")
        if not isinstance(doc, dict) or doc.get("kind", "Pod") != "Pod":
            raise bad
        meta, spec, status = (doc.get(k) or {} for k in ("metadata", "spec", "status"))
        if not all(isinstance(d, dict) for d in (meta, spec, status)):
            raise bad
        labels = meta.get("labels") or {}
        namespace, name = meta.get("namespace"), meta.get("name")
        uid, node, phase = meta.get("uid", ""), spec.get("nodeName", ""), status.get("phase", "")
        if not isinstance(labels, dict):
            raise bad
        texts = (namespace, name, uid, node, phase, *labels.keys(), *labels.values())
        if not all(isinstance(t, str) for t in texts) or not namespace or not name:
            raise bad
        return cls(namespace, name, uid, dict(labels), node, phase)


class TokenFile:
    """A bearer token in a file, read again when the file changes (inode, size or mtime)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, ...] | None = None
        self._token = ""

    def get(self, force: bool = False) -> str:
        with self._lock:
            try:
                st = os.stat(self.path)
                stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
                if force or stamp != self._stamp:
                    with open(self.path, "rb") as f:
                        data = f.read(MAX_TOKEN + 1)
                    if len(data) > MAX_TOKEN:
                        raise ConfigError(f"token file {self.path} is larger than {MAX_TOKEN}")
                    self._token, self._stamp = data.decode("ascii").strip(), stamp
            except (OSError, UnicodeDecodeError) as e:
                raise ConfigError(f"cannot read the API token {self.path}: {e}") from None
            return self._token


class KubeClient:
    """A client for one API server. Thread-safe; every request has its own connection."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        token_file: Path | None = None,
        ca_file: Path | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        deadline: float = 30.0,
        max_body: int = MAX_BODY,
    ) -> None:
        """`read_timeout` bounds each wait for data, `deadline` a whole request/response."""
        self.endpoint = transport.parse_endpoint(base_url)
        self._transport = transport.Transport(
            self.endpoint,
            ca_file=ca_file,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        self._token = token
        self._token_file = TokenFile(token_file) if token_file else None
        self.read_timeout = read_timeout
        self.deadline = deadline
        self.max_body = max_body

    @classmethod
    def in_cluster(
        cls, env: Mapping[str, str] | None = None, sa_dir: Path = SERVICE_ACCOUNT_DIR, **options
    ) -> KubeClient:
        """The client a pod uses: KUBERNETES_SERVICE_HOST/PORT, the service account's token
        and CA. ConfigError when not running in a cluster."""
        env = os.environ if env is None else env
        host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
        if not host or not port:
            raise ConfigError("not in a cluster: KUBERNETES_SERVICE_HOST/PORT are not set")
        token, ca = Path(sa_dir) / "token", Path(sa_dir) / "ca.crt"
        for path in (token, ca):
            if not path.is_file():
                raise ConfigError(f"not in a cluster: {path} is missing")
        netloc = f"[{host}]" if ":" in host else host
        return cls(f"https://{netloc}:{port}", token_file=token, ca_file=ca, **options)

    # -- resources ---------------------------------------------------------------------------

    def get_pod(self, namespace: str, name: str) -> Pod:
        """The pod `namespace/name` (RBAC: get pods). NotFound, Forbidden, ... on failure."""
        problem = names.namespace_problem(namespace)
        if problem:
            raise ValueError(f"namespace {namespace!r} {problem}")
        problem = names.pod_name_problem(name)
        if problem:
            raise ValueError(f"pod name {name!r} {problem}")
        action = Action("get", "pods", namespace, name)
        path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(name, safe='')}"
        return Pod.from_json(self.get_json(path, action))

    # -- requests ----------------------------------------------------------------------------

    def get_json(self, path: str, action: Action, query: Mapping[str, str] | None = None) -> dict:
        """GET `path` and decode the JSON object it returns."""
        conn, resp = self._open(path, action, query, None)
        with contextlib.closing(conn):
            body = self._read(resp, action)
        try:
            doc = json.loads(body)
        except ValueError:
            raise BadResponse(f"{action}: the API server's answer is not JSON") from None
        if not isinstance(doc, dict):
            raise BadResponse(f"{action}: the API server's answer is not a JSON object")
        return doc

    def stream_json_lines(
        self,
        path: str,
        action: Action,
        query: Mapping[str, str] | None = None,
        read_timeout: float | None = None,
    ) -> Iterator[dict]:
        """GET `path` and yield each JSON object of a line-delimited stream (a watch:
        `?watch=1`), until the server ends it. `read_timeout` bounds the silence between
        lines (a watch's `timeoutSeconds` plus a margin)."""
        conn, resp = self._open(path, action, query, read_timeout)
        with contextlib.closing(conn):
            while True:
                try:
                    line = transport.read_line(resp, MAX_LINE)
                except transport.TooLarge as e:
                    raise BadResponse(f"{action}: {e}") from None
                except (OSError, http.client.HTTPException) as e:
                    raise self._unavailable(action, e) from None
                if not line:
                    return
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    raise BadResponse(f"{action}: a streamed line is not JSON") from None
                if not isinstance(event, dict):
                    raise BadResponse(f"{action}: a streamed line is not a JSON object")
                yield event

    def _open(
        self,
        path: str,
        action: Action,
        query: Mapping[str, str] | None,
        read_timeout: float | None,
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """A connection and its 200 response; a KubeError for anything else."""
        url = self.endpoint.prefix + path + (f"?{urlencode(query)}" if query else "")
        for attempt in (1, 2):
            headers = {"Accept": "application/json", "User-Agent": "netcc-loader"}
            token = self._bearer(force=attempt == 2)
            if token:
                headers["Authorization"] = f"Bearer {token}"
            conn = self._transport.connection(read_timeout)
            try:
                conn.request("GET", url, headers=headers)
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                raise self._unavailable(action, e) from None
            if resp.status == 200:
                return conn, resp
            with contextlib.closing(conn):
                try:
                    body = transport.read_body(resp, 64 << 10, time.monotonic() + self.deadline)
                except (OSError, http.client.HTTPException, transport.TooLarge, transport.TooSlow):
                    body = b""
            if resp.status == 401 and attempt == 1 and self._token_file is not None:
                continue  # the token may have rotated a moment ago: read it again, once
            raise self._error(resp, body, action)
        raise AssertionError("unreachable")

    def _bearer(self, force: bool) -> str | None:
        if self._token_file is not None:
            return self._token_file.get(force=force)
        return self._token

    def _read(self, resp: http.client.HTTPResponse, action: Action) -> bytes:
        try:
            return transport.read_body(resp, self.max_body, time.monotonic() + self.deadline)
        except transport.TooLarge as e:
            raise BadResponse(f"{action}: {e}") from None
        except (OSError, http.client.HTTPException, transport.TooSlow) as e:
            raise self._unavailable(action, e) from None

    def _unavailable(self, action: Action, e: BaseException) -> Unavailable:
        if isinstance(e, TimeoutError | transport.TooSlow):
            why = "timed out"
        elif isinstance(e, http.client.IncompleteRead):
            why = f"the connection closed after {len(e.partial)} bytes of the answer"
        else:
            why = str(e) or type(e).__name__
        return Unavailable(f"Kubernetes API at {self.endpoint} did not answer {action}: {why}")

    def _error(self, resp: http.client.HTTPResponse, body: bytes, action: Action) -> KubeError:
        status, message = resp.status, _status_message(body)
        said = f": {message}" if message else ""
        where = f"Kubernetes API at {self.endpoint}"
        if status == 404:
            return NotFound(f"{action}: not found{said}")
        if status == 401:
            source = f" (token file {self._token_file.path})" if self._token_file else ""
            return Unauthorized(
                f"{where} rejected the node's credentials{source} for {action}"
                f" (401 Unauthorized){said}"
            )
        if status == 403:
            scope = f" in namespace {action.namespace}" if action.namespace else ""
            return Forbidden(
                f"{where} forbids {action} (403 Forbidden){said}; the node's service account"
                f" needs the RBAC permission `{action.rbac}`{scope}"
            )
        if status == 410:
            return Gone(f"{where} answered {action} with 410 Gone{said}")
        if status == 429 or status >= 500:
            retry = _retry_after(resp.getheader("Retry-After"))
            again = f"; retry after {retry:g} s" if retry is not None else ""
            return Unavailable(
                f"{where} could not serve {action} ({status} {resp.reason}){said}{again}",
                retry_after=retry,
            )
        return BadResponse(f"{where} refused {action} ({status} {resp.reason}){said}")


def _status_message(body: bytes) -> str:
    """The `message` of a Status object, else the start of the body as text."""
    try:
        doc = json.loads(body)
        text = doc["message"] if isinstance(doc, dict) else None
    except (ValueError, KeyError):
        text = None
    if not isinstance(text, str):
        text = body.decode("utf-8", "replace").strip()
    text = " ".join(text.split())
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date from now."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
