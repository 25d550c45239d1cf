"""A process that allocates addresses, for the IPAM tests (run as a script, not collected).

ipam_child.py race ROOT BLOCK PREFIX COUNT   allocate COUNT owners on 2 threads; print
                                             {"owner": ip or null (block full)} as JSON
ipam_child.py crash ROOT BLOCK KILL_AT       allocate owners o0..o2, SIGKILL itself at the
                                             KILL_AT-th file-system call
ipam_child.py churn ROOT BLOCK               print "ready", then allocate and release
                                             forever (the parent kills it at random)
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from ipaddress import IPv4Network
from pathlib import Path

from netcc.loader.cni.ipam import AddressStore, BlockFull, Owner


def reserved(block: IPv4Network) -> tuple[int, int]:
    """The block's first and last address, as a podCIDR's network and broadcast would be."""
    return (0, block.num_addresses - 1)


def race(store: AddressStore, block: IPv4Network, prefix: str, count: int) -> None:
    got: dict[str, str | None] = {}

    def work(part: int) -> None:
        for i in range(part, count, 2):
            owner = Owner(f"{prefix}-{i}", "eth0", "shop", f"pod-{i}", "shop/cart")
            try:
                got[owner.container_id] = str(store.allocate(block, owner, reserved(block)))
            except BlockFull:
                got[owner.container_id] = None

    threads = [threading.Thread(target=work, args=(p,)) for p in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(got))


def crash(store: AddressStore, block: IPv4Network, kill_at: int) -> None:
    calls = 0

    def counted(fn):
        def wrapper(*args, **kwargs):
            nonlocal calls
            calls += 1
            if calls == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(*args, **kwargs)

        return wrapper

    for name in ("open", "write", "fsync", "link", "unlink", "mkdir", "close"):
        setattr(os, name, counted(getattr(os, name)))
    for i in range(3):
        store.allocate(block, Owner(f"o{i}", "eth0"), reserved(block))
    print(json.dumps({"calls": calls}))


def churn(store: AddressStore, block: IPv4Network) -> None:
    print("ready", flush=True)
    i = 0
    while True:
        owner = Owner(f"o{i % 40}", "eth0")
        store.allocate(block, owner, reserved(block))
        if i % 3 == 0:
            store.release(Owner(f"o{(i * 7) % 40}", "eth0"))
        i += 1


def main() -> None:
    mode, root, block = sys.argv[1], Path(sys.argv[2]), IPv4Network(sys.argv[3])
    store = AddressStore(root)
    if mode == "race":
        race(store, block, sys.argv[4], int(sys.argv[5]))
    elif mode == "crash":
        crash(store, block, int(sys.argv[4]))
    else:
        churn(store, block)


if __name__ == "__main__":
    main()
