"""The NETLINK_XFRM client against this machine's kernel, in a throwaway network namespace.

This kernel has XFRM and its netlink interface built in but no ESP (no esp4, no gcm): policies
are added, updated in place, dumped and deleted for real; a state either works too (where ESP
is there) or is refused with the kernel's reason and leaves nothing behind, and the
reconciler then fails with that reason, having changed nothing. States, traffic and rotation
are proven in the QEMU VM (tests/ipsec_vm). A kernel test (tests/conftest.py): root only.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator

import pytest
from xfrmfake import keys_block, shop_plans, write_keys

from netcc.lab import netns as lab_netns
from netcc.loader.ipsec import xfrm as x
from netcc.loader.ipsec.apply import IPsecError, Record, read_keys, reconcile
from netcc.loader.netns import enter_netns

REQID = 0x6E63


@pytest.fixture
def ns() -> Iterator[str]:
    name = f"ncxfrm-{os.getpid()}-{threading.get_ident() % 10000}"
    lab_netns.create(name)
    try:
        yield name
    finally:
        lab_netns.remove(name)


def out_policy(spi: int) -> x.XfrmPolicy:
    return x.XfrmPolicy(
        x.XFRM_POLICY_OUT,
        x.Selector("10.244.1.0/24", "10.244.2.0/24"),
        REQID,
        (x.Template("192.168.77.11", "192.168.77.12", spi, REQID),),
    )


def test_policies_add_update_dump_delete(ns):
    with enter_netns(ns), x.XfrmSocket() as xs:
        assert xs.policies() == []
        p = out_policy(0x01000100)
        xs.add_policy(p)
        with pytest.raises(x.XfrmError) as e:
            xs.add_policy(p)
        assert e.value.errno == errno.EEXIST
        fwd = x.XfrmPolicy(
            x.XFRM_POLICY_FWD,
            x.Selector("10.244.2.0/24", "10.244.1.0/24"),
            REQID,
            (x.Template("192.168.77.12", "192.168.77.11", 0, REQID, optional=1),),
        )
        xs.add_policy(fwd)
        (got_out,) = [q for q in xs.policies() if q.dir == x.XFRM_POLICY_OUT]
        assert got_out == p and got_out.index
        # the switch to another key: one update, the same policy (its index kept)
        xs.add_policy(out_policy(0x02000100), update=True)
        (now,) = [q for q in xs.policies() if q.dir == x.XFRM_POLICY_OUT]
        assert now.templates[0].spi == 0x02000100 and now.index == got_out.index
        assert [q for q in xs.policies() if q.dir == x.XFRM_POLICY_FWD] == [fwd]
        for q in xs.policies():
            xs.delete_policy(q)
        assert xs.policies() == []
        with pytest.raises(x.XfrmError) as e:
            xs.delete_policy(now)
        assert e.value.errno == errno.ENOENT
        assert "XfrmInNoStates" in x.xfrm_stats()
    with x.XfrmSocket() as home:  # nothing leaked into the test's own namespace
        assert not [q for q in home.policies() if q.templates and q.templates[0].reqid == REQID]


def test_states_work_or_are_refused_cleanly(ns):
    key = bytes(range(20))
    s = x.XfrmState(
        "192.168.77.11",
        "192.168.77.12",
        0x01000100,
        REQID,
        x.Selector("10.244.1.0/24", "10.244.2.0/24"),
        x.AeadAlgo("rfc4106(gcm(aes))", 128, key),
        1024,
    )
    with enter_netns(ns), x.XfrmSocket() as xs:
        try:
            xs.add_state(s)
        except x.XfrmError as e:
            # no gcm or no esp4 here: the kernel's reason, no key, nothing installed
            assert e.errno in (errno.ENOSYS, errno.EPROTONOSUPPORT, errno.ENOENT), e
            assert key.hex() not in str(e) and "spi 0x01000100" in str(e)
            assert xs.states() == []
            return
        (got,) = xs.states()
        assert got == s and got.counters is not None and got.counters.packets == 0
        xs.delete_state(got)
        assert xs.states() == []


def test_reconcile_on_this_kernel(ns, tmp_path):
    """The reconciler in a namespace: installs everything where ESP works; where it does not,
    fails on the first state with the kernel's reason, leaving the namespace as it was."""
    write_keys(tmp_path / "keys", 1)
    plan = shop_plans(keys_block(tmp_path / "keys", [(1, "send")]))["node-1"]
    keys = read_keys(plan, {})
    with enter_netns(ns), x.XfrmSocket() as xs:
        unrelated = x.XfrmPolicy(
            x.XFRM_POLICY_OUT,
            x.Selector("10.9.0.0/16", "10.8.0.0/16"),
            7,
            (x.Template("192.168.77.11", "198.51.100.1", 0x5000, 7),),
        )
        xs.add_policy(unrelated)
        try:
            report = reconcile(plan, keys, xs, Record(plan.node, plan.address))
        except (IPsecError, x.XfrmError) as e:
            assert "spi 0x01000200" in str(e)  # the first `in` state
            assert xs.states() == [] and xs.policies() == [unrelated]
            return
        assert report.status == "installed"
        again = reconcile(plan, keys, xs, Record(plan.node, plan.address))
        assert again.status == "unchanged"
        assert unrelated in xs.policies()


def test_a_policy_does_not_expire(ns):
    """The lifetime has no time limit: the kernel's timer (a second after the add) keeps it.
    (A time limit of XFRM_INF would read as -1 s and expire it at once.)"""
    import time

    with enter_netns(ns), x.XfrmSocket() as xs:
        xs.add_policy(out_policy(0x01000100))
        time.sleep(1.6)
        assert [q.templates[0].spi for q in xs.policies()] == [0x01000100]
