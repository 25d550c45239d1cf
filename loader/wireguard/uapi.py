"""The userspace backend: wireguard-go (or boringtun) through the cross-platform UAPI socket.

The daemon for device IFNAME listens on the unix socket `/var/run/wireguard/IFNAME.sock` and
speaks a line protocol (https://www.wireguard.com/xplatform/): `get=1` returns `key=value`
lines (keys in hex), `set=1` applies lines in order and answers `errno=0`. A `set` is not atomic,
so `configure` checks every value before it sends anything (`values.check_change`).

`create` starts `wireguard-go IFNAME` in the calling thread's network namespace; it forks its
daemon and returns once the device and socket exist. `/var/run/wireguard` is one directory for
the whole machine, while devices live in network namespaces: in a named namespace (`ip netns`;
the lab: one per node, each with its own `netcc-wg0`) the daemon runs in a private mount
namespace where `/var/run/wireguard` is bound to `/run/netcc/wireguard/net-<netns inode>`, so
each namespace has its own socket directory and `wg show` run beside the daemon
(`wg_command`) sees only its own device. `delete` removes the socket, on which the daemon
exits and its device goes (killing the daemon if it does not).
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from netcc.contract.wgkey import encode_key, public_key_bytes
from netcc.loader.wireguard.backend import BackendError, DeviceChange, DeviceState, PeerState
from netcc.loader.wireguard.values import check_change, check_ifname

STANDARD_SOCKET_DIR = Path("/var/run/wireguard")
NETNS_SOCKET_BASE = Path("/run/netcc/wireguard")
NETNS_DIR = "/run/netns"
DAEMON = "wireguard-go"
TIMEOUT = 5.0
_ENV = {"WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1"}  # wireguard-go refuses otherwise


def _netns_inode() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def named_netns() -> str | None:
    """The `ip netns` name of the calling thread's network namespace, if it has one."""
    here = _netns_inode()
    try:
        names = sorted(os.listdir(NETNS_DIR))
    except OSError:
        return None
    for name in names:
        try:
            if os.stat(os.path.join(NETNS_DIR, name)).st_ino == here:
                return name
        except OSError:
            continue
    return None


def socket_dir() -> Path:
    """Where this namespace's UAPI sockets are: the standard directory, except in a named
    namespace (`ip netns`), which shares the machine's /var/run with every other one."""
    if named_netns() is None:
        return STANDARD_SOCKET_DIR
    return netns_socket_dir(_netns_inode())


def netns_socket_dir(inode: int) -> Path:
    """The UAPI socket directory of the named namespace whose inode is `inode`."""
    return NETNS_SOCKET_BASE / f"net-{inode}"


def _b64_to_hex(key: str) -> str:
    return base64.b64decode(key).hex()


def _hex_to_b64(text: str) -> str:
    return base64.b64encode(bytes.fromhex(text)).decode()


def daemon_pids(ifname: str) -> list[int]:
    """wireguard-go processes serving `ifname` in the calling thread's network namespace."""
    here = _netns_inode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            if os.path.basename(argv[0]) != DAEMON.encode() or ifname.encode() not in argv[1:]:
                continue
            if os.stat(f"/proc/{entry}/ns/net").st_ino == here:
                found.append(int(entry))
        except OSError:
            continue
    return found


def wg_command(ifname: str, *args: str) -> list[str]:
    """`wg ARGS` as run beside the daemon (its network and mount namespaces)."""
    pids = daemon_pids(ifname)
    if not pids:
        raise BackendError(f"{ifname}: no {DAEMON} runs for it here")
    return ["nsenter", f"--target={pids[0]}", "--net", "--mount", "wg", *args]


class UserspaceBackend:
    """WireGuard in a userspace daemon (wireguard-go), configured over its UAPI socket."""

    name = "userspace"

    def __init__(self, daemon: str = DAEMON) -> None:
        self.daemon = daemon

    # --- the socket ---------------------------------------------------------------------------

    def socket_path(self, ifname: str) -> Path:
        return socket_dir() / f"{check_ifname(ifname)}.sock"

    def _request(self, ifname: str, request: str) -> list[tuple[str, str]]:
        """Send one request; the `key=value` lines of the answer, errno checked."""
        path = self.socket_path(ifname)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(TIMEOUT)
                s.connect(str(path))
                s.sendall(request.encode())
                data = b""
                while not data.endswith(b"\n\n"):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        except OSError as e:
            raise BackendError(f"{ifname}: UAPI socket {path}: {e.strerror or e}") from None
        lines = [tuple(line.split("=", 1)) for line in data.decode().splitlines() if line]
        if any(len(pair) != 2 for pair in lines) or not lines or lines[-1][0] != "errno":
            raise BackendError(f"{ifname}: malformed UAPI answer")
        try:
            errno = abs(int(lines[-1][1]))  # wireguard-go answers -EINVAL as errno=-22
        except ValueError:
            raise BackendError(f"{ifname}: malformed UAPI answer (errno={lines[-1][1]})") from None
        if errno:
            raise BackendError(
                f"{ifname}: {self.daemon} refused the request (errno {errno}: {os.strerror(errno)})"
            )
        return [(k, v) for k, v in lines[:-1]]  # type: ignore[misc]

    # --- Backend ------------------------------------------------------------------------------

    def available(self) -> str | None:
        if shutil.which(self.daemon) is None:
            return f"{self.daemon} is not installed (apt-get install wireguard-go)"
        if not os.path.exists("/dev/net/tun"):
            return "no /dev/net/tun (the tun driver) for a userspace WireGuard device"
        if socket_dir() != STANDARD_SOCKET_DIR and shutil.which("unshare") is None:
            return "unshare (util-linux) is needed to run it in a named network namespace"
        return None

    def exists(self, ifname: str) -> bool:
        if not self.socket_path(ifname).exists():
            return False
        try:
            self._request(ifname, "get=1\n\n")
        except BackendError:
            return False
        return True

    def create(self, ifname: str) -> None:
        check_ifname(ifname)
        if reason := self.available():
            raise BackendError(reason)
        path = self.socket_path(ifname)
        if path.exists():  # a dead daemon's socket: a new one could not bind next to it
            if self.exists(ifname):
                raise BackendError(f"{ifname}: a {self.daemon} already serves it")
            path.unlink()
        directory = path.parent
        STANDARD_SOCKET_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        cmd = [self.daemon, ifname]
        if directory != STANDARD_SOCKET_DIR:
            script = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
            cmd = [
                "unshare",
                "--mount",
                "--propagation=private",
                "sh",
                "-c",
                script,
                "sh",
                str(directory),
                str(STANDARD_SOCKET_DIR),
                *cmd,
            ]
        before = set(daemon_pids(ifname))
        try:
            run = subprocess.run(
                cmd,
                env={**os.environ, **_ENV},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=TIMEOUT * 2,
                start_new_session=True,  # the daemon outlives this process and its signals
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            self._abandon(ifname, before)
            raise BackendError(f"{ifname}: starting {self.daemon}: {e}") from None
        if run.returncode != 0:
            self._abandon(ifname, before)
            tail = (run.stderr or run.stdout).strip().splitlines()[-3:]
            raise BackendError(f"{ifname}: {self.daemon} failed: {' / '.join(tail)}")
        deadline = time.monotonic() + TIMEOUT
        while not self.exists(ifname):
            if time.monotonic() > deadline:
                self._abandon(ifname, before)
                raise BackendError(f"{ifname}: {self.daemon} started but {path} does not answer")
            time.sleep(0.02)

    def _abandon(self, ifname: str, before: set[int]) -> None:
        """After a failed `create`: stop the daemons it started (not those in `before`; the
        daemon runs in its own session, so nothing else would) and remove their socket."""
        with contextlib.suppress(OSError):
            self.socket_path(ifname).unlink()
        stop_daemons([p for p in daemon_pids(ifname) if p not in before], grace=0.0)

    def read(self, ifname: str) -> DeviceState:
        device: dict[str, str] = {}
        peers: list[dict[str, object]] = []
        for key, value in self._request(ifname, "get=1\n\n"):
            if key == "public_key":
                peers.append({"public_key": _hex_to_b64(value), "allowed_ips": []})
            elif not peers:
                device[key] = value
            elif key == "allowed_ip":
                peers[-1]["allowed_ips"].append(value)  # type: ignore[union-attr]
            else:
                peers[-1][key] = value
        private = device.pop("private_key", None)  # never kept, never returned
        public = encode_key(public_key_bytes(bytes.fromhex(private))) if private else None
        del private
        return DeviceState(
            public_key=public,
            listen_port=int(device.get("listen_port", 0)),
            fwmark=int(device.get("fwmark", 0)),
            peers=tuple(_peer_state(p) for p in peers),
        )

    def configure(self, ifname: str, change: DeviceChange) -> None:
        if change.empty:
            return
        check_change(change)
        lines = ["set=1"]
        if change.private_key is not None:
            lines.append(f"private_key={_b64_to_hex(change.private_key)}")
        if change.listen_port is not None:
            lines.append(f"listen_port={change.listen_port}")
        for key in change.remove:
            lines += [f"public_key={_b64_to_hex(key)}", "remove=true"]
        for peer in change.upsert:
            lines += [
                f"public_key={_b64_to_hex(peer.public_key)}",
                f"endpoint={peer.endpoint}",
                f"persistent_keepalive_interval={peer.persistent_keepalive}",
                "replace_allowed_ips=true",
                *(f"allowed_ip={cidr}" for cidr in peer.allowed_ips),
            ]
        self._request(ifname, "\n".join(lines) + "\n\n")

    def delete(self, ifname: str) -> None:
        """Remove the socket (the daemon exits and its device goes); kill it if it lingers."""
        path = self.socket_path(ifname)
        pids = daemon_pids(ifname)
        if path.exists():
            path.unlink()
        stop_daemons(pids, grace=TIMEOUT)
        if path.parent != STANDARD_SOCKET_DIR:
            with contextlib.suppress(OSError):
                path.parent.rmdir()
                NETNS_SOCKET_BASE.rmdir()  # when no other namespace has a daemon


def stop_daemons(pids: list[int], grace: float) -> None:
    """Wait `grace` seconds for `pids` to exit, then SIGTERM, then SIGKILL the rest."""
    for sig, wait in ((None, grace), (signal.SIGTERM, 1.0), (signal.SIGKILL, 1.0)):
        for pid in pids if sig else ():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if process_alive(p)]
            time.sleep(0.02)
        if not pids:
            return


def process_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, not yet reaped, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _peer_state(p: dict[str, object]) -> PeerState:
    seconds = int(str(p.get("last_handshake_time_sec", 0)))
    nanos = int(str(p.get("last_handshake_time_nsec", 0)))
    return PeerState(
        public_key=str(p["public_key"]),
        endpoint=str(p.get("endpoint", "")),
        allowed_ips=tuple(sorted(p["allowed_ips"])),  # type: ignore[arg-type]
        persistent_keepalive=int(str(p.get("persistent_keepalive_interval", 0))),
        last_handshake_ns=seconds * 1_000_000_000 + nanos,
        rx_bytes=int(str(p.get("rx_bytes", 0))),
        tx_bytes=int(str(p.get("tx_bytes", 0))),
    )
