"""netcc.loader.cni.ipam: the node's address allocations on disk."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from netcc.loader.cni.ipam import AddressStore, BlockFull, DamagedRecord, Owner, block_dirname
from netcc.loader.cni.protocol import Attachment

CHILD = Path(__file__).with_name("ipam_child.py")
BLOCK = IPv4Network("10.244.1.16/28")
A = IPv4Network("10.244.1.0/24")


def owner(i: int, ifname: str = "eth0") -> Owner:
    return Owner(f"c{i}", ifname, "shop", f"cart-{i}", "shop/cart")


@pytest.fixture
def store(tmp_path: Path) -> AddressStore:
    return AddressStore(tmp_path / "ipam")


def check_invariants(store: AddressStore) -> dict[IPv4Address, Owner]:
    """No damaged record, no owner twice, no temporary file left behind."""
    allocations = store.allocations()
    assert None not in allocations.values(), allocations
    keys = Counter(o.key for o in allocations.values())
    assert [k for k, n in keys.items() if n > 1] == []
    for block in store.blocks():
        names = os.listdir(store.root / block_dirname(block))
        assert not [n for n in names if n.startswith(".tmp-")]
    return allocations


def test_allocate_is_idempotent_and_durable_on_disk(store):
    ip = store.allocate(BLOCK, owner(1))
    assert ip in BLOCK
    assert store.allocate(BLOCK, owner(1)) == ip  # a retried ADD
    assert store.allocate(BLOCK, Owner("c1", "eth0")) == ip  # the key is (containerID, ifname)
    assert store.allocate(BLOCK, owner(1, "net1")) != ip
    record = store.root / "10.244.1.16_28" / str(ip)
    assert json.loads(record.read_text()) == {
        "class": "shop/cart",
        "containerID": "c1",
        "ifname": "eth0",
        "name": "cart-1",
        "namespace": "shop",
    }
    assert oct(record.stat().st_mode & 0o777) == "0o600"
    assert AddressStore(store.root).owner_of(ip) == owner(1)  # a restarted daemon sees it
    assert store.owner_of(IPv4Address("10.244.1.30")) is None


def test_reserved_offsets_are_skipped_and_full_blocks_say_so(store):
    block = IPv4Network("10.244.1.0/29")
    got = [store.allocate(block, owner(i), reserved={0, 1, 7}) for i in range(5)]
    assert sorted(int(ip) - int(block.network_address) for ip in got) == [2, 3, 4, 5, 6]
    with pytest.raises(BlockFull, match=r"10\.244\.1\.0/29 is full: 5 of 5 addresses in use"):
        store.allocate(block, owner(9), reserved={0, 1, 7})
    assert store.allocate(block, owner(3), reserved={0, 1, 7}) == got[3]  # still idempotent
    with pytest.raises(ValueError, match="outside"):
        store.allocate(block, owner(9), reserved={8})


def test_release_then_round_robin_reuse(store):
    a, b = store.allocate(BLOCK, owner(1)), store.allocate(BLOCK, owner(2))
    assert store.release(Attachment("c1", "eth0")) == [a]
    assert store.release(owner(1)) == []
    c = store.allocate(BLOCK, owner(3))
    assert c not in (a, b)  # the next search starts after the last allocation
    assert store.in_use(BLOCK) == 2


def test_gc_frees_what_is_not_valid(store):
    for i in range(4):
        store.allocate(BLOCK, owner(i))
    store.allocate(A, owner(9))
    freed = store.gc([Attachment("c1", "eth0"), owner(3)])
    assert sorted(a.owner.container_id for a in freed) == ["c0", "c2", "c9"]
    assert sorted(o.container_id for o in store.allocations().values()) == ["c1", "c3"]


def test_damaged_records_stay_in_use(store):
    store.allocate(BLOCK, owner(1))
    blockdir = store.root / "10.244.1.16_28"
    (blockdir / "10.244.1.17").write_text('{"containerID": "c7", "ifn')  # damaged from outside
    (blockdir / ".tmp-999-dead").write_text("half")  # a writer that died
    got = [store.allocate(BLOCK, owner(i), reserved={0}) for i in range(2, 5)]
    assert IPv4Address("10.244.1.17") not in got
    assert store.allocations()[IPv4Address("10.244.1.17")] is None
    with pytest.raises(DamagedRecord):
        store.owner_of(IPv4Address("10.244.1.17"))
    assert store.gc([]) and IPv4Address("10.244.1.17") in store.allocations()
    assert not (blockdir / ".tmp-999-dead").exists()


def test_invalid_owners_and_blocks(store):
    with pytest.raises(ValueError, match="containerID"):
        store.allocate(BLOCK, Owner("../x", "eth0"))
    with pytest.raises(ValueError, match="ifname"):
        store.allocate(BLOCK, Owner("c1", "a/b"))
    with pytest.raises(TypeError):
        store.allocate("10.0.0.0/24", owner(1))  # type: ignore[arg-type]


def test_threads_never_share_an_address(store):
    got: list[IPv4Address] = []
    lock = threading.Lock()

    def work(part: int) -> None:
        for i in range(part, 60, 4):
            ip = store.allocate(A, owner(i))
            with lock:
                got.append(ip)

    threads = [threading.Thread(target=work, args=(p,)) for p in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == len(got) == 60
    assert len(check_invariants(store)) == 60


def test_processes_never_share_an_address(store):
    """4 processes x 2 threads x 25 owners race for the 126 addresses of a /25."""
    block = IPv4Network("10.244.1.128/25")
    procs = [
        subprocess.Popen(
            [sys.executable, str(CHILD), "race", str(store.root), str(block), f"p{p}", "50"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for p in range(4)
    ]
    results: dict[str, str | None] = {}
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        results.update(json.loads(out))
    given = [ip for ip in results.values() if ip is not None]
    assert len(results) == 200
    assert len(given) == 126 and len(set(given)) == 126  # every address once, none twice
    on_disk = check_invariants(store)
    assert {str(ip): o.container_id for ip, o in on_disk.items()} == {
        ip: cid for cid, ip in results.items() if ip is not None
    }


def test_sigkill_at_every_step_of_allocate(store):
    """Kill a process at its k-th file-system call, for every k, then check the store and
    that the owners retry idempotently."""
    k, completed = 1, False
    while not completed:
        p = subprocess.run(
            [sys.executable, str(CHILD), "crash", str(store.root), str(A), str(k)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        completed = p.returncode == 0
        assert completed or p.returncode == -9, p.stderr
        before = check_invariants(store)
        for ip, held in before.items():  # a retried ADD gets what the killed one took
            assert store.allocate(A, held, (0, 255)) == ip
        k += 1
    assert k > 30  # it really was killed at every step of several allocations
    final = check_invariants(store)
    assert sorted(o.container_id for o in final.values()) == ["o0", "o1", "o2"]


def test_sigkill_at_random_times(store):
    rng = random.Random(13)
    for _ in range(8):
        p = subprocess.Popen(
            [sys.executable, str(CHILD), "churn", str(store.root), str(A)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert p.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0.0, 0.15))
        p.kill()
        p.wait()
        check_invariants(store)
    assert store.allocations()
