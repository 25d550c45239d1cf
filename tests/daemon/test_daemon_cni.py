"""`netcc load run` serving CNI through the real shim, driven as containerd drives plugins:
addresses in class blocks with their endpoint entries, refusals that leave nothing, a daemon
killed mid-ADD, DELs spooled while it is down, restarts, and a new OUT that would misplace
running pods. Every verdict is a state, never a duration."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
from ipaddress import IPv4Address, IPv4Network

import pytest
from daemon_node import DaemonNode, sh

from netcc.lab.cniruntime import CniRuntimeError, list_version
from netcc.loader.daemon.run import conflist

WEB_BLOCK = IPv4Network("10.244.1.16/28")
DB_BLOCK = IPv4Network("10.244.1.32/29")


def _ip(result: dict) -> IPv4Address:
    (ip,) = result["ips"]
    return IPv4Address(ip["address"].split("/")[0])


def _bound(node: DaemonNode) -> dict[str, str]:
    """pod address -> host interface, as `netcc load status` finds them bound."""
    code, doc = node.status()
    (n,) = doc["nodes"]
    assert code == 0, n["problems"]
    return {p["ip"]: i["ifname"] for i in n["interfaces"] for p in i["pods"]}


def test_add_check_del_through_the_shim(node: DaemonNode) -> None:
    att = node.pod("shop/web-1", {"app": "web", "pod-template-hash": "abc"})
    result = node.add(att)
    ip = _ip(result)
    assert ip in WEB_BLOCK
    assert result["ips"][0]["gateway"] == "10.244.1.1"
    assert node.pod_addresses(att) == [str(ip)]
    host = result["interfaces"][0]["name"]
    assert _bound(node)[str(ip)] == host  # endpoint entry and hooks, before ADD returned
    node.check(att)
    (pod,) = node.report()["pods"]
    assert (pod["pod"], pod["class"], pod["ip"]) == ("shop/web-1", "shop/web", str(ip))
    node.delete(att)
    assert node.host_links() == [] and node.allocations() == {}
    assert str(ip) not in _bound(node)
    node.delete(att)  # DEL again: nothing left, still a success


def _next_apply(node: DaemonNode) -> dict:
    """The report of the second full apply after now (the first may have begun before)."""
    seen = (node.report().get("lastApply") or {}).get("count", 0)
    return node.wait(lambda r: (r.get("lastApply") or {}).get("count", 0) >= seen + 2, "applied")


def test_incremental_add_and_del_leave_the_full_apply_nothing_to_do(node: DaemonNode) -> None:
    """ADD and DEL change one endpoint entry and one veth's hooks, recorded as the full
    apply records them: the periodic re-apply that follows finds everything in place."""
    first = node.pod("shop/web-1", {"app": "web"})
    second = node.pod("shop/db-1", {"app": "db"})
    ip1, ip2 = _ip(node.add(first)), _ip(node.add(second))
    assert set(_bound(node)) == {str(ip1), str(ip2)}
    assert _next_apply(node)["lastApply"]["status"] == "unchanged"
    assert set(_bound(node)) == {str(ip1), str(ip2)}  # the re-apply kept the runtime pods
    node.delete(first)
    assert set(_bound(node)) == {str(ip2)}
    assert _next_apply(node)["lastApply"]["status"] == "unchanged"
    node.delete(second)
    assert _bound(node) == {} and node.host_links() == [] and node.allocations() == {}
    assert _next_apply(node)["lastApply"]["status"] == "unchanged"


def test_unmatched_pod_is_refused_and_leaves_nothing(node: DaemonNode) -> None:
    att = node.pod("shop/stray", {"app": "cache"})
    with pytest.raises(CniRuntimeError) as e:
        node.add(att)
    assert e.value.code == 100
    digest = node.report()["accepted"]["digest"]
    for part in ("shop/stray", "app=cache", digest[:12]):
        assert part in e.value.msg
    assert node.host_links() == [] and node.allocations() == {}
    assert node.pod_addresses(att) == []


@pytest.mark.parametrize("fault", ["after-allocate", "after-veth", "after-datapath"])
def test_daemon_killed_mid_add_loses_nothing(node: DaemonNode, fault: str) -> None:
    first = node.pod("shop/web-1", {"app": "web"})
    ip1 = _ip(node.add(first))
    node.stop()
    node.start(fault=fault)
    victim = node.pod("shop/web-2", {"app": "web"})
    with pytest.raises(CniRuntimeError):
        node.add(victim)  # the daemon dies; the runtime's DEL of the failed ADD is spooled
    node.daemon.wait(60)
    node.start()  # finishes the spooled DEL
    node.wait(lambda r: len(r.get("pods", [])) == 1, "the half-made pod removed")
    assert [str(ip) for ip in node.allocations()] == [str(ip1)]
    assert len(node.host_links()) == 1
    again = _ip(node.add(victim))
    assert again in WEB_BLOCK and again != ip1
    assert set(_bound(node)) == {str(ip1), str(again)}
    node.delete(victim)
    node.delete(first)
    assert node.host_links() == [] and node.allocations() == {}


def test_del_while_the_daemon_is_down_completes_at_restart(node: DaemonNode) -> None:
    att = node.pod("shop/db-1", {"app": "db"})
    ip = _ip(node.add(att))
    assert ip in DB_BLOCK
    node.stop()
    node.delete(att)  # spooled by the shim, a success for the runtime
    assert list(node.spool()) != []
    node.start()
    assert node.host_links() == [] and node.allocations() == {}
    assert str(ip) not in _bound(node)


def test_restart_readopts_running_pods(node: DaemonNode) -> None:
    att = node.pod("shop/web-1", {"app": "web"})
    ip = _ip(node.add(att))
    node.stop(signal.SIGKILL)
    node.start()
    assert str(ip) in _bound(node)
    node.check(att)
    node.delete(att)


def test_many_cycles_leave_nothing_behind(node: DaemonNode) -> None:
    seen = set()
    for i in range(12):
        att = node.pod(f"shop/web-{i}", {"app": "web" if i % 2 else "db"})
        ip = _ip(node.add(att))
        seen.add(ip)
        node.delete(att)
    assert len(seen) > 1  # round robin: addresses are not reused at once
    assert node.host_links() == [] and node.allocations() == {}
    code, doc = node.status()
    assert code == 0 and all(not i["pods"] for i in doc["nodes"][0]["interfaces"])


def test_new_out_misplacing_a_pod_is_refused_until_it_is_gone(node: DaemonNode, outs) -> None:
    att = node.pod("shop/db-1", {"app": "db"})
    ip = _ip(node.add(att))
    v1 = node.report()["accepted"]["digest"]
    tmp = node.out.with_name("out.new")
    tmp.symlink_to(outs["v2"])
    os.replace(tmp, node.out)
    r = node.wait(lambda r: r.get("refused"), "the new OUT refused")
    assert "misplaced pods" in r["refused"]["reason"] and str(ip) in r["refused"]["reason"]
    assert r["accepted"]["digest"] == v1
    code, doc = node.status()
    assert code == 1 and any("misplaced pods" in p for p in doc["nodes"][0]["problems"])
    node.delete(att)
    r = node.wait(lambda r: r.get("accepted", {}).get("digest") != v1, "the new OUT accepted")
    assert r["refused"] is None
    again = _ip(node.add(node.pod("shop/db-2", {"app": "db"})))
    assert again in IPv4Network("10.244.1.64/29")


def test_gc_removes_what_no_valid_attachment_holds(node: DaemonNode) -> None:
    keep = node.pod("shop/web-1", {"app": "web"})
    drop = node.pod("shop/web-2", {"app": "web"})
    kept, dropped = _ip(node.add(keep)), _ip(node.add(drop))
    gc = node.gc([keep])
    assert gc.returncode == 0, gc.stdout + gc.stderr
    assert [str(ip) for ip in node.allocations()] == [str(kept)]
    assert len(node.host_links()) == 1
    assert set(_bound(node)) == {str(kept)} and str(dropped) not in _bound(node)
    node.delete(keep)


def test_not_ready_until_applied_then_the_conflist_appears(outs: dict, shim, tmp_path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(outs["v1"], bad)
    (bad / "classes.json").write_text("{}")  # not what the lock says
    link = tmp_path / "out"
    link.symlink_to(bad)
    n = DaemonNode(link, shim)
    try:
        n.create(wait_ready=False)
        r = n.wait(lambda r: r.get("refused"), "the tampered OUT refused")
        assert r["ready"] is False and "refusing" in r["reason"]
        assert not (n.conf / "10-netcc.conflist").exists()
        listed = conflist(n.socket)
        # as a CNI 1.1 runtime runs it: the highest of `cniVersions` (STATUS is 1.1.0's)
        conf = {**listed, **listed["plugins"][0], "cniVersion": list_version(listed)}
        status = n.plugin("STATUS", conf)
        assert status.returncode == 1 and json.loads(status.stdout)["code"] == 50
        tmp = tmp_path / "out.new"
        tmp.symlink_to(outs["v1"])
        os.replace(tmp, link)
        n.wait(lambda r: r.get("ready"), "ready once OUT is good")
        assert n.conflist()["plugins"][0]["socket"] == str(n.socket)
        assert n.plugin("STATUS", conf).returncode == 0
    finally:
        print(n.logs())
        n.remove()


def test_a_full_block_is_a_clear_error_and_shows_in_status(node: DaemonNode) -> None:
    pods = [node.pod(f"shop/db-{i}", {"app": "db"}) for i in range(DB_BLOCK.num_addresses + 1)]
    ips = {_ip(node.add(att)) for att in pods[:-1]}
    assert ips == set(DB_BLOCK)  # every address once, none twice
    with pytest.raises(CniRuntimeError) as e:
        node.add(pods[-1])
    assert e.value.code == 101 and "shop/db" in e.value.msg and "full" in e.value.msg
    _, doc = node.status()
    (db,) = [b for b in doc["nodes"][0]["daemon"]["blocks"] if b["class"] == "shop/db"]
    assert (db["inUse"], db["capacity"]) == (8, 8)
    for att in pods:
        node.delete(att)
    assert node.host_links() == [] and node.allocations() == {}


def test_a_second_interface_of_a_container_is_refused_and_its_del_spares_the_first(
    node: DaemonNode,
) -> None:
    first = node.pod("shop/web-1", {"app": "web"})
    ip = _ip(node.add(first))
    second = dataclasses.replace(first, ifname="eth1")
    with pytest.raises(CniRuntimeError) as e:
        node.add(second)  # the runtime DELs eth1 after the failure
    assert e.value.code == 4 and "one interface" in e.value.msg
    node.check(first)
    assert [str(a) for a in node.allocations()] == [str(ip)] and len(node.host_links()) == 1
    node.delete(first)


def test_del_succeeds_when_the_netns_or_the_pod_state_is_gone(node: DaemonNode) -> None:
    """As after a node reboot or a sandbox the runtime removed first: the pod's network
    namespace is gone (its veth with it) when DEL comes; DEL still succeeds and releases the
    address and the endpoint. A DEL for a container the daemon never saw succeeds too."""
    att = node.pod("shop/web-1", {"app": "web"})
    ip = _ip(node.add(att))
    netns = att.netns.rsplit("/", 1)[1]
    sh("ip", "netns", "del", netns)  # the namespace goes, and the pod's veth end with it
    node.pods_made.remove(netns)
    node.delete(att)
    assert node.allocations() == {} and node.host_links() == []
    assert str(ip) not in _bound(node)
    stranger = dataclasses.replace(att, container_id="f" * 64, netns="/run/netns/never-made")
    node.delete(stranger)  # no state, no namespace: nothing to do, and a success


def test_a_new_out_is_taken_while_pods_run_and_they_keep_their_network(
    node: DaemonNode, outs
) -> None:
    """v2 moves only the db block: with a web pod running (its block the same in both), the
    daemon takes v2 on its own, and the pod keeps its address, endpoint entry and hooks."""
    att = node.pod("shop/web-1", {"app": "web"})
    ip = _ip(node.add(att))
    host = _bound(node)[str(ip)]
    v1 = node.report()["accepted"]["digest"]
    tmp = node.out.with_name("out.new")
    tmp.symlink_to(outs["v2"])
    os.replace(tmp, node.out)
    r = node.wait(lambda r: r.get("accepted", {}).get("digest") != v1, "the new OUT accepted")
    assert r["refused"] is None
    node.wait(lambda r: r.get("ready"), "applied")
    assert _bound(node)[str(ip)] == host  # the same pod, still bound after the swap
    node.check(att)
    assert _ip(node.add(node.pod("shop/db-1", {"app": "db"}))) in IPv4Network("10.244.1.64/29")
    node.delete(att)
