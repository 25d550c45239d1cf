"""One node for the daemon's kernel tests: a network namespace running `netcc load run`, the
lab's pod API answering labels from a pods.json, pod namespaces, and the libcni-like runtime
(`netcc.lab.cniruntime`) executing the real `netcc-cni` binary, as containerd would.

`DaemonNode.remove()` takes away everything it made (processes, namespaces, pins, dirs),
whatever state a test left it in.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from netcc.lab.cniruntime import Attachment, Runtime, load_conflist
from netcc.lab.kubeapi import write_pods
from netcc.loader.cni.ipam import AddressStore

NODE = "node-1"
WAIT = 120.0  # seconds a test waits for the daemon at most (a bound, never a verdict)


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


class DaemonNode:
    """The node namespace, its daemon and its pods."""

    def __init__(self, out: Path, shim: Path, interval: float = 0.5, node: str = NODE) -> None:
        self.interval = interval  # the daemon's re-apply period (tests: often; bench: 30 s)
        self.node = node
        self.extra_env: dict[str, str] = {}  # for the daemon (bench: NETCC_DAEMON_FULL_APPLY)
        self.tag = uuid.uuid4().hex[:6]
        self.netns = f"netcctest-{self.tag}-node"
        self.out = out
        self.dir = Path(tempfile.mkdtemp(prefix="ncd", dir="/tmp"))  # short: unix sockets
        self.socket = self.dir / "cni.sock"
        self.data = self.dir / "data"
        self.state = self.dir / "state"
        self.conf = self.dir / "net.d"
        self.kube_dir = self.dir / "kube"
        self.kube_sock = self.dir / "kube.sock"
        self.pins = Path("/sys/fs/bpf") / f"netcctest-{self.tag}"
        self.bin = self.dir / "bin"
        self.pods_made: list[str] = []
        self.daemon: subprocess.Popen | None = None
        self.kube: subprocess.Popen | None = None
        self.log = self.dir / "daemon.log"
        self.bin.mkdir()
        shutil.copy(shim, self.bin / "netcc-cni")
        self.kube_dir.mkdir()
        self.pods: dict[str, dict[str, Any]] = {}
        self.runtime = Runtime([str(self.bin)], self.dir / "cache", f"/run/netns/{self.netns}")

    # -- life --------------------------------------------------------------------------------

    def create(self, wait_ready: bool = True) -> DaemonNode:
        try:
            sh("ip", "netns", "add", self.netns)
            sh("nsenter", f"--net=/run/netns/{self.netns}", "ip", "link", "set", "lo", "up")
            write_pods(self.kube_dir, {})
            self.kube = subprocess.Popen(
                [sys.executable, "-m", "netcc.lab.kubeapi", str(self.kube_dir), str(self.kube_sock)]
            )
            self.start(wait_ready=wait_ready)
        except BaseException:
            self.remove()
            raise
        return self

    def start(self, fault: str | None = None, wait_ready: bool = True) -> None:
        """Run the daemon in the node's namespace (nsenter: setns, /sys not remounted)."""
        env = dict(os.environ)
        env.pop("NETCC_DAEMON_FAULT", None)
        env.update(self.extra_env)
        if fault:
            env["NETCC_DAEMON_FAULT"] = fault
        cmd = [
            "nsenter", f"--net=/run/netns/{self.netns}", sys.executable, "-m", "netcc",
            "load", "run", str(self.out), "--node", self.node, "--socket", str(self.socket),
            "--data-dir", str(self.data), "--state-dir", str(self.state),
            "--pin-root", str(self.pins), "--kube", f"unix://{self.kube_sock}",
            "--cni-conf-dir", str(self.conf), "--interval", str(self.interval),
        ]  # fmt: skip
        with open(self.log, "ab") as log:
            self.daemon = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)
        if wait_ready:
            self.wait(lambda r: r.get("ready") and r.get("pid") == self.daemon.pid, "ready")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.daemon is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.daemon.send_signal(sig)
        try:
            self.daemon.wait(60)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait()
        self.daemon = None

    def remove(self) -> None:
        """Everything goes: daemon, pod API, namespaces (their links and hooks with them),
        pins, directories."""
        try:
            self.stop()
        finally:
            if self.kube is not None:
                self.kube.kill()
                self.kube.wait()
            for ns in [*self.pods_made, self.netns]:
                if os.path.exists(f"/run/netns/{ns}"):
                    sh("ip", "netns", "del", ns, check=False)
            shutil.rmtree(self.pins, ignore_errors=True)
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- the daemon's view -------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        try:
            return json.loads((self.state / "daemon.json").read_text())
        except (OSError, ValueError):
            return {}

    def wait(self, cond, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            r = self.report()
            if cond(r):
                return r
            if self.daemon is not None and self.daemon.poll() is not None:
                raise AssertionError(
                    f"the daemon exited ({self.daemon.returncode}):\n{self.logs()}"
                )
            time.sleep(0.1)
        raise AssertionError(f"the daemon never got {what}:\n{self.logs()}")

    def logs(self) -> str:
        try:
            return self.log.read_text()[-4000:]
        except OSError:
            return ""

    def status(self) -> tuple[int, dict[str, Any]]:
        """`netcc load status --json` in the node's namespace: exit code and report."""
        proc = sh(
            "nsenter", f"--net=/run/netns/{self.netns}", sys.executable, "-m", "netcc",
            "load", "status", "--node", self.node, "--pin-root", str(self.pins),
            "--state-dir", str(self.state), "--json", check=False,
        )  # fmt: skip
        try:
            return proc.returncode, json.loads(proc.stdout)
        except ValueError:
            raise AssertionError(f"status: {proc.stdout}{proc.stderr}") from None

    def host_links(self) -> list[str]:
        out = sh("nsenter", f"--net=/run/netns/{self.netns}", "ip", "-j", "link", "show").stdout
        return [link["ifname"] for link in json.loads(out) if link["ifname"].startswith("nc")]

    def spool(self) -> list[str]:
        """The DELs the shim spooled for the daemon."""
        d = self.socket.parent / "pending-del"
        return sorted(n for n in os.listdir(d) if n.endswith(".json")) if d.exists() else []

    def allocations(self) -> dict:
        return AddressStore(self.data / "ipam").allocations()

    # -- pods --------------------------------------------------------------------------------

    def pod(self, key: str, labels: dict[str, str]) -> Attachment:
        """Declare a pod to the pod API and make its namespace; its attachment."""
        namespace, name = key.split("/")
        uid = str(uuid.uuid4())
        self.pods[key] = {
            "namespace": namespace, "name": name, "uid": uid, "labels": labels, "node": self.node,
        }  # fmt: skip
        write_pods(self.kube_dir, self.pods)
        ns = f"netcctest-{self.tag}-p{len(self.pods_made)}"
        sh("ip", "netns", "add", ns)
        self.pods_made.append(ns)
        args = {"IgnoreUnknown": "1", "K8S_POD_NAMESPACE": namespace, "K8S_POD_NAME": name}
        args["K8S_POD_UID"] = uid  # as containerd passes them
        return Attachment(uuid.uuid4().hex * 2, f"/run/netns/{ns}", "eth0", args)

    def conflist(self) -> dict[str, Any]:
        found = load_conflist(self.conf)
        assert found is not None, "the daemon wrote no conflist"
        return found

    def add(self, att: Attachment) -> dict[str, Any]:
        return self.runtime.add(self.conflist(), att)

    def delete(self, att: Attachment) -> None:
        self.runtime.delete(self.conflist(), att)

    def check(self, att: Attachment) -> None:
        self.runtime.check(self.conflist(), att)

    def plugin(self, command: str, conf: dict[str, Any]) -> subprocess.CompletedProcess:
        """The plugin run once by hand (GC, STATUS), as a 1.1.0 runtime runs it."""
        env = {**os.environ, "CNI_COMMAND": command, "CNI_PATH": str(self.bin)}
        return subprocess.run(
            ["nsenter", f"--net=/run/netns/{self.netns}", str(self.bin / "netcc-cni")],
            input=json.dumps(conf), env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip

    def gc(self, valid: list[Attachment]) -> subprocess.CompletedProcess:
        """CNI GC through the plugin, as a 1.1.0 runtime sends it."""
        conf = {
            **self.conflist()["plugins"][0],
            "cniVersion": "1.1.0",
            "name": self.conflist()["name"],
            "cni.dev/valid-attachments": [
                {"containerID": a.container_id, "ifname": a.ifname} for a in valid
            ],
        }
        return self.plugin("GC", conf)

    def pod_addresses(self, att: Attachment) -> list[str]:
        out = sh("nsenter", f"--net={att.netns}", "ip", "-j", "-4", "addr", "show").stdout
        return [
            a["local"] for link in json.loads(out) for a in link.get("addr_info", [])
            if link["ifname"] != "lo"
        ]  # fmt: skip

    # -- libcni --------------------------------------------------------------------------------

    def libcni(
        self,
        driver: Path,
        conflist: dict[str, Any],
        command: str,
        att: Attachment,
        bin_dirs: tuple[str, ...] = (),
    ) -> tuple[int, Any]:
        """Run `command` (add, check, del) for `att` through the real libcni
        (`tests/cni/libcni_driver`) in the node's namespace; exit code and its JSON."""
        path = self.dir / f"{conflist['name']}-libcni.conflist"
        path.write_text(json.dumps(conflist))
        args = ";".join(f"{k}={v}" for k, v in att.args.items())
        proc = sh(
            "nsenter", f"--net=/run/netns/{self.netns}", str(driver), f"-conflist={path}",
            f"-path={':'.join([str(self.bin), *bin_dirs])}", f"-cache={self.dir / 'libcni'}",
            f"-netns={att.netns}", f"-id={att.container_id}", f"-ifname={att.ifname}",
            f"-args={args}", f"-capabilities={json.dumps(att.capability_args or {})}",
            command, check=False,
        )  # fmt: skip
        out = proc.stdout.strip()
        return proc.returncode, (json.loads(out) if out else proc.stderr)


LIBCNI_SRC = Path("/usr/share/gocode/src/github.com/containernetworking/cni")
DRIVER_SRC = Path(__file__).resolve().parents[1] / "cni" / "libcni_driver"


def build_libcni_driver(dest: Path) -> Path | None:
    """tests/cni/libcni_driver built offline against Debian's libcni into `dest`; None when
    go or the library is missing."""
    if shutil.which("go") is None or not LIBCNI_SRC.is_dir():
        return None
    env = {
        **os.environ, "GO111MODULE": "off", "GOPATH": f"/usr/share/gocode:{dest}",
        "GOPROXY": "off", "GOFLAGS": "", "CGO_ENABLED": "0",
    }  # fmt: skip
    binary = dest / "libcni-driver"
    subprocess.run(
        ["go", "build", "-o", str(binary), "."],
        cwd=DRIVER_SRC, env=env, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return binary
