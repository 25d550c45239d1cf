"""The lab's stand-in for the Kubernetes API server: what a node daemon asks, answered from the
lab's own pod list, on a unix socket.

No kube-apiserver runs in the lab, so the daemons get a pod's labels the way they would in a
real cluster, through the same client (`netcc.loader.kube`), from this server: `GET
/api/v1/namespaces/NS/pods/NAME` answers a `v1.Pod` (or a `v1.Status` 404) built from
`pods.json` in the lab's state directory, which `netcc lab pod add|del` maintain. The file is
read on every request, so an answer is never stale. Run it as
`python -m netcc.lab.kubeapi STATE_DIR SOCKET`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socketserver
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

PODS_FILE = "pods.json"
_POD_PATH = re.compile(r"^/api/v1/namespaces/([a-z0-9.-]+)/pods/([a-z0-9.-]+)$")


def read_pods(state_dir: Path) -> dict[str, dict[str, Any]]:
    """The lab's dynamic pods by `namespace/name` (empty when there are none)."""
    try:
        doc = json.loads((state_dir / PODS_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return doc.get("pods", {}) if isinstance(doc, dict) else {}


def write_pods(state_dir: Path, pods: dict[str, dict[str, Any]]) -> None:
    """Replace the pod list atomically (readers never see half a file)."""
    tmp = state_dir / f".{PODS_FILE}.tmp"
    tmp.write_text(json.dumps({"pods": dict(sorted(pods.items()))}, indent=1) + "\n")
    os.replace(tmp, state_dir / PODS_FILE)


def pod_object(pod: dict[str, Any]) -> dict[str, Any]:
    """A `v1.Pod` as the API server would answer it (the fields netcc reads)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod["name"],
            "namespace": pod["namespace"],
            "uid": pod["uid"],
            "labels": pod.get("labels", {}),
        },
        "spec": {"nodeName": pod["node"]},
        "status": {"phase": "Pending"},
    }


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        m = _POD_PATH.match(self.path.split("?", 1)[0])
        if m is None:
            self._send(404, _status(404, "NotFound", f"the lab serves no {self.path}"))
            return
        namespace, name = m.groups()
        pod = read_pods(self.server.state_dir).get(f"{namespace}/{name}")
        if pod is None:
            self._send(404, _status(404, "NotFound", f'pods "{name}" not found'))
            return
        self._send(200, pod_object(pod))

    def _send(self, code: int, doc: dict[str, Any]) -> None:
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def address_string(self) -> str:
        return "lab"

    def log_message(self, *args: Any) -> None:  # quiet
        pass


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, socket_path: str, state_dir: Path) -> None:
        self.state_dir = state_dir
        with contextlib.suppress(FileNotFoundError):
            os.unlink(socket_path)
        super().__init__(socket_path, _Handler)
        os.chmod(socket_path, 0o600)


def serve(state_dir: Path, socket_path: str) -> None:
    """Serve until killed."""
    with _Server(socket_path, state_dir) as server:
        server.serve_forever()


if __name__ == "__main__":
    serve(Path(sys.argv[1]), sys.argv[2])
