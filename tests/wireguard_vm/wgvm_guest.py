"""The WireGuard kernel-backend scenario, run inside a throwaway QEMU VM (test_wgvm_kernel.py).

Not a test module: the outer test boots a Debian kernel that has wireguard.ko and runs
`python3 wgvm_guest.py REPORT.json` in it. Two network namespaces joined by a veth each get a
WireGuard device configured through `KernelBackend`; the script checks traffic through the
tunnel, what `read()` reports, an in-place peer update (same ifindex, no new handshake), a key
rotation, a peer removal, input validation, and then the same through the reconciler
(`netcc.loader.wireguard.apply.reconcile`). Every check is written to the JSON report, which the
outer test asserts on; a crash is reported as a failed check with its traceback.

It refuses to run outside a virtme-ng guest: it creates namespaces and loads a module.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

from netcc.keys import generate_private_key, public_key
from netcc.loader.netns import enter_netns
from netcc.loader.wireguard.backend import BackendError, DeviceChange, PeerConfig
from netcc.loader.wireguard.netlink import KernelBackend

NS = ("wgvm-a", "wgvm-b")
UNDERLAY = ("192.168.77.1", "192.168.77.2")
TUNNEL = ("10.77.0.1", "10.77.0.2")
PORT = 51820
IFNAME = "wg0"
ECHO_PORT = 7777

checks: list[dict[str, Any]] = []
facts: dict[str, Any] = {}


def check(name: str, ok: bool, detail: Any = "") -> bool:
    checks.append({"name": name, "ok": bool(ok), "detail": str(detail)})
    print(f"wgvm: {'ok  ' if ok else 'FAIL'} {name} {detail}", flush=True)
    return bool(ok)


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, text=True)


def in_ns(ns: str, *cmd: str) -> None:
    sh("ip", "-n", ns, *cmd)


# --- traffic ---------------------------------------------------------------------------------


def echo_server(ns: str, ready: threading.Event, stop: threading.Event) -> None:
    """A TCP echo server in `ns` (this thread enters it), until `stop`."""
    with enter_netns(ns):
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with srv:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("0.0.0.0", ECHO_PORT))
        srv.listen(8)
        srv.settimeout(0.2)
        ready.set()
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(10)
                try:
                    while data := conn.recv(65536):
                        conn.sendall(data)
                except OSError:
                    pass


def tcp_echo(ns: str, dst: str, size: int = 32 * 1024, timeout: float = 15.0) -> str | None:
    """Send `size` bytes to the echo server at `dst` from `ns`; None if all came back, else
    why not."""
    payload = os.urandom(size)
    with enter_netns(ns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((dst, ECHO_PORT))
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        got = b""
        while len(got) < size and (data := sock.recv(65536)):
            got += data
        return None if got == payload else f"echoed {len(got)} of {size} bytes"
    except OSError as e:
        return f"{type(e).__name__}: {e}"
    finally:
        sock.close()


# --- the scenario through the backend -----------------------------------------------------------


def setup_namespaces() -> None:
    for ns in NS:
        sh("ip", "netns", "add", ns)
        in_ns(ns, "link", "set", "lo", "up")
    sh(
        "ip",
        "link",
        "add",
        "wgvm-va",
        "netns",
        NS[0],
        "type",
        "veth",
        "peer",
        "wgvm-vb",
        "netns",
        NS[1],
    )
    for ns, dev, addr in ((NS[0], "wgvm-va", UNDERLAY[0]), (NS[1], "wgvm-vb", UNDERLAY[1])):
        in_ns(ns, "addr", "add", f"{addr}/24", "dev", dev)
        in_ns(ns, "link", "set", dev, "up")


def cleanup() -> None:
    for ns in NS:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def peer(key: str, side: int, allowed: tuple[str, ...], keepalive: int = 0, port: int = PORT):
    return PeerConfig(key, f"{UNDERLAY[side]}:{port}", allowed, keepalive)


def state(backend: KernelBackend, ns: str, ifname: str = IFNAME):
    with enter_netns(ns):
        return backend.read(ifname)


def ifindex(ns: str, ifname: str) -> int:
    from pyroute2 import IPRoute

    with enter_netns(ns), IPRoute() as ipr:
        return ipr.link_lookup(ifname=ifname)[0]


def backend_scenario(wg: KernelBackend) -> None:
    keys = [generate_private_key() for _ in NS]
    pubs = [public_key(k) for k in keys]

    for i, ns in enumerate(NS):
        with enter_netns(ns):
            check(f"{ns}: no device before create", not wg.exists(IFNAME))
            wg.create(IFNAME)
            check(f"{ns}: device exists after create", wg.exists(IFNAME))
            blank = wg.read(IFNAME)
            check(
                f"{ns}: a new device has no key and no peers",
                blank.public_key is None and not blank.peers,
                blank,
            )
            other = 1 - i
            wg.configure(
                IFNAME,
                DeviceChange(
                    private_key=keys[i],
                    listen_port=PORT,
                    upsert=(peer(pubs[other], other, (f"{TUNNEL[other]}/32",)),),
                ),
            )
        in_ns(ns, "addr", "add", f"{TUNNEL[i]}/24", "dev", IFNAME)
        in_ns(ns, "link", "set", IFNAME, "up")

    a = state(wg, NS[0])
    check("read: own public key, listen port", a.public_key == pubs[0] and a.listen_port == PORT, a)
    check(
        "read: the peer as configured",
        len(a.peers) == 1
        and a.peers[0].public_key == pubs[1]
        and a.peers[0].endpoint == f"{UNDERLAY[1]}:{PORT}"
        and a.peers[0].allowed_ips == (f"{TUNNEL[1]}/32",)
        and a.peers[0].persistent_keepalive == 0
        and a.peers[0].last_handshake_ns == 0,
        a.peers,
    )

    t = time.monotonic()
    why = tcp_echo(NS[0], TUNNEL[1])
    facts["first_echo_s"] = round(time.monotonic() - t, 2)
    check("TCP through the tunnel", why is None, why)
    a = state(wg, NS[0])
    p = a.peers[0]
    check("read: a handshake after traffic", p.last_handshake_ns > 0, p)
    check("read: rx and tx byte counters", p.rx_bytes > 32 * 1024 and p.tx_bytes > 32 * 1024, p)
    handshake, index = p.last_handshake_ns, ifindex(NS[0], IFNAME)

    # Update the peer in place: more allowed IPs and a keepalive.
    wider = (f"{TUNNEL[1]}/32", "10.78.0.0/24")
    with enter_netns(NS[0]):
        wg.configure(IFNAME, DeviceChange(upsert=(peer(pubs[1], 1, wider, keepalive=5),)))
    p = state(wg, NS[0]).peers[0]
    check(
        "update in place: allowed IPs replaced, keepalive set",
        p.allowed_ips == tuple(sorted(wider)) and p.persistent_keepalive == 5,
        p,
    )
    with enter_netns(NS[0]):
        wg.configure(IFNAME, DeviceChange(upsert=(peer(pubs[1], 1, (f"{TUNNEL[1]}/32",), 5),)))
    p = state(wg, NS[0]).peers[0]
    check("update in place: allowed IPs narrowed again", p.allowed_ips == (f"{TUNNEL[1]}/32",), p)
    why = tcp_echo(NS[0], TUNNEL[1])
    p = state(wg, NS[0]).peers[0]
    check("update in place: traffic still flows", why is None, why)
    check("update in place: same interface index", ifindex(NS[0], IFNAME) == index)
    check(
        "update in place: no new handshake forced",
        p.last_handshake_ns == handshake,
        f"{handshake} -> {p.last_handshake_ns}",
    )

    # Validation: a bad value anywhere, and nothing is sent.
    before = state(wg, NS[0])
    bad = DeviceChange(
        listen_port=PORT + 1,
        upsert=(peer(pubs[1], 1, (f"{TUNNEL[1]}/32",), 7), peer(pubs[0], 0, ("10.0.0.1/8",))),
    )
    try:
        with enter_netns(NS[0]):
            wg.configure(IFNAME, bad)
        refused = "accepted"
    except BackendError as e:
        refused = str(e)
    check("validation: host bits in a CIDR are refused", "10.0.0.1/8" in refused, refused)
    check("validation: nothing of a refused change applied", state(wg, NS[0]) == before)

    # Rotate b's key: b sets its new private key, a swaps the peer in one request.
    new_b = generate_private_key()
    new_pub_b = public_key(new_b)
    with enter_netns(NS[1]):
        wg.configure(IFNAME, DeviceChange(private_key=new_b))
    with enter_netns(NS[0]):
        wg.configure(
            IFNAME,
            DeviceChange(upsert=(peer(new_pub_b, 1, (f"{TUNNEL[1]}/32",), 5),), remove=(pubs[1],)),
        )
    t = time.monotonic()
    why = tcp_echo(NS[0], TUNNEL[1])
    facts["rotation_echo_s"] = round(time.monotonic() - t, 2)
    check("key rotation: traffic resumes", why is None, why)
    a, b = state(wg, NS[0]), state(wg, NS[1])
    check("key rotation: b reports its new public key", b.public_key == new_pub_b, b.public_key)
    check(
        "key rotation: a's only peer is b's new key, with a handshake",
        [p.public_key for p in a.peers] == [new_pub_b] and a.peers[0].last_handshake_ns > 0,
        a.peers,
    )
    check("key rotation: same interface index", ifindex(NS[0], IFNAME) == index)

    # Remove the peer: no more traffic to it.
    with enter_netns(NS[0]):
        wg.configure(IFNAME, DeviceChange(remove=(new_pub_b,)))
    a = state(wg, NS[0])
    check("remove: no peers left", a.peers == (), a.peers)
    why = tcp_echo(NS[0], TUNNEL[1], timeout=2.0)
    check("remove: no traffic through the tunnel", why is not None, why)

    for ns in NS:
        with enter_netns(ns):
            wg.delete(IFNAME)
            check(f"{ns}: device gone after delete", not wg.exists(IFNAME))
            wg.delete(IFNAME)  # idempotent


# --- the same through the reconciler --------------------------------------------------------------


def reconciler_scenario(wg: KernelBackend, workdir: Path) -> None:
    from netcc.contract.tunnel import TunnelPlan, TunnelRoute
    from netcc.loader.wireguard.apply import reconcile

    ifname, port, tunnel = "wgvm1", PORT + 10, ("10.79.0.1", "10.79.0.2")
    keys = [generate_private_key() for _ in NS]
    pubs = [public_key(k) for k in keys]
    plans = []
    for i, name in enumerate(("a", "b")):
        key_file = workdir / f"{name}.key"
        key_file.write_text(keys[i] + "\n")
        key_file.chmod(0o600)
        other = 1 - i
        plans.append(
            TunnelPlan(
                node=name,
                ifname=ifname,
                listen_port=port,
                private_key_file=str(key_file),
                mtu=1420,
                address=tunnel[i],
                peers=(peer(pubs[other], other, (f"{tunnel[other]}/32",), port=port),),
                routes=(TunnelRoute(f"{tunnel[other]}/32", "ab"[other]),),
                public_key=pubs[i],
            )
        )

    def run(i: int, plan: TunnelPlan):
        with enter_netns(NS[i]):
            return reconcile(plan, wg)

    reports = [run(i, plan) for i, plan in enumerate(plans)]
    check("reconcile: devices created", [r.status for r in reports] == ["created"] * 2, reports)
    check("reconcile: backend is kernel", {r.backend for r in reports} == {"kernel"}, reports)
    why = tcp_echo(NS[0], tunnel[1])
    check("reconcile: TCP through the tunnel", why is None, why)
    index = ifindex(NS[0], ifname)
    handshake = state(wg, NS[0], ifname).peers[0].last_handshake_ns
    again = run(0, plans[0])
    check("reconcile: idempotent", again.status == "unchanged" and not again.changes, again)

    keepalive = replace(plans[0], peers=(replace(plans[0].peers[0], persistent_keepalive=3),))
    updated = run(0, keepalive)
    check(
        "reconcile: peer updated in place",
        updated.status == "configured" and any("updated" in c for c in updated.changes),
        updated,
    )
    p = state(wg, NS[0], ifname).peers[0]
    check("reconcile: keepalive applied", p.persistent_keepalive == 3, p)
    why = tcp_echo(NS[0], tunnel[1])
    p = state(wg, NS[0], ifname).peers[0]
    check(
        "reconcile: update kept the device and the session",
        why is None and ifindex(NS[0], ifname) == index and p.last_handshake_ns == handshake,
        f"{why} {handshake} -> {p.last_handshake_ns}",
    )

    alone = replace(keepalive, peers=(), routes=())
    removed = run(0, alone)
    check(
        "reconcile: peer of a removed node removed",
        any("removed" in c for c in removed.changes) and state(wg, NS[0], ifname).peers == (),
        removed,
    )


def main(report_path: str) -> int:
    if "virtme" not in Path("/proc/cmdline").read_text() and os.environ.get("WGVM_HERE") != "1":
        print("wgvm_guest: not inside a virtme-ng VM; refusing (set WGVM_HERE=1 to force)")
        return 2
    started = time.monotonic()
    facts["kernel"] = os.uname().release
    wg = KernelBackend()
    workdir = Path("/tmp/wgvm")
    workdir.mkdir(mode=0o700, exist_ok=True)
    try:
        reason = wg.available()
        if check("kernel backend available", reason is None, reason):
            setup_namespaces()
            server_stop, ready = threading.Event(), threading.Event()
            threading.Thread(target=echo_server, args=(NS[1], ready, server_stop)).start()
            check("echo server listening in the far namespace", ready.wait(10))
            try:
                backend_scenario(wg)
                reconciler_scenario(wg, workdir)
            finally:
                server_stop.set()
    except Exception:
        check("scenario ran to the end", False, traceback.format_exc())
    finally:
        cleanup()
        facts["scenario_s"] = round(time.monotonic() - started, 2)
        Path(report_path).write_text(json.dumps({"checks": checks, "facts": facts}, indent=1))
    return 0 if all(c["ok"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
