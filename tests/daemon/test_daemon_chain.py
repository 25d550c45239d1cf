"""netcc chained with the reference plugins (Debian's containernetworking-plugins in
/usr/lib/cni: portmap, bandwidth, tuning) after it, against a real daemon in namespaces:
through the lab's libcni-like runtime and through the real libcni (the library containerd
and CRI-O use), ADD, CHECK and DEL. ADD gives each plugin netcc's result as `prevResult`; DEL
runs the list in reverse and must leave nothing: no veth, no ifb, no address, no endpoint, no
port-mapping rule. Verdicts are states, never durations."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_node import DaemonNode, build_libcni_driver, sh

from netcc.lab.cniruntime import Attachment, CniRuntimeError, Runtime

REFERENCE = Path("/usr/lib/cni")
PLUGINS = ("portmap", "bandwidth", "tuning")
POD_MTU = 1400  # set by tuning inside the pod
SYSCTL = "net.ipv4.conf.eth0.arp_ignore"  # set by tuning inside the pod
CAPS = {
    "portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}],
    "bandwidth": {
        "ingressRate": 8_000_000,
        "ingressBurst": 1_000_000,
        "egressRate": 8_000_000,
        "egressBurst": 1_000_000,
    },
}


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    built = build_libcni_driver(tmp_path_factory.mktemp("libcni"))
    if built is None:
        pytest.skip("go or golang-github-appc-cni-dev is missing (`make test-packages`)")
    return built


@pytest.fixture
def chain(node: DaemonNode) -> Iterator[dict[str, Any]]:
    """netcc's config list with the reference plugins after it. cniVersion 1.0.0: the
    reference plugins of Debian 12 speak up to 1.0.0."""
    missing = [p for p in PLUGINS if not (REFERENCE / p).exists()]
    if missing:
        pytest.skip(f"{', '.join(missing)} missing in {REFERENCE} (containernetworking-plugins)")
    netcc = node.conflist()["plugins"][0]
    yield {
        "cniVersion": "1.0.0",
        "name": "netcc-chain",
        "plugins": [
            netcc,
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
            {"type": "bandwidth", "capabilities": {"bandwidth": True}},
            {"type": "tuning", "mtu": POD_MTU, "sysctl": {SYSCTL: "1"}},
        ],
    }


def _checkable(chain: dict[str, Any]) -> dict[str, Any]:
    """The list CHECK runs through: without portmap, whose CHECK in plugins 1.1.1 fails on a
    node with ip6tables but only IPv4 mappings ("could not check ipv6 dnat",
    containernetworking/plugins#819, fixed after 1.1.1). Same name: the same cached result."""
    return {**chain, "plugins": [p for p in chain["plugins"] if p["type"] != "portmap"]}


def _in(netns: str, *cmd: str) -> str:
    return sh("nsenter", f"--net={netns}", *cmd).stdout


def _pod_side(att: Attachment) -> tuple[int, str]:
    (link,) = json.loads(_in(att.netns, "ip", "-j", "link", "show", att.ifname))
    sysctl = _in(att.netns, "sysctl", "-n", SYSCTL).strip()
    return link["mtu"], sysctl


def _node_leftovers(node: DaemonNode, att: Attachment) -> list[str]:
    """What of the pod the node still holds: veths, ifb devices, addresses, endpoints,
    port-mapping rules naming the container."""
    found = [f"link {n}" for n in node.host_links()]
    ns = f"/run/netns/{node.netns}"
    links = json.loads(_in(ns, "ip", "-j", "link", "show"))
    found += [f"link {x['ifname']}" for x in links if x["ifname"].startswith("bwp")]
    found += [f"address {ip}" for ip in node.allocations()]
    _, doc = node.status()
    found += [
        f"endpoint {p['ip']}" for i in doc["nodes"][0]["interfaces"] for p in i.get("pods", [])
    ]
    rules = _in(ns, "iptables-save", "-t", "nat")
    found += [f"rule {r}" for r in rules.splitlines() if att.container_id[:12] in r]
    found += [f"rule {r}" for r in rules.splitlines() if "18080" in r]
    return found


def _check_added(node: DaemonNode, att: Attachment, result: dict[str, Any]) -> None:
    (ip,) = result["ips"]
    host, pod = result["interfaces"][0], result["interfaces"][1]
    assert pod["name"] == att.ifname and pod["sandbox"] == att.netns
    assert _pod_side(att) == (POD_MTU, "1")  # tuning ran inside the pod, after netcc
    ns = f"/run/netns/{node.netns}"
    qdiscs = json.loads(_in(ns, "tc", "-j", "qdisc", "show", "dev", host["name"]))
    assert any(q["kind"] == "tbf" for q in qdiscs), qdiscs  # bandwidth shaped the host veth
    rules = _in(ns, "iptables-save", "-t", "nat")
    assert "18080" in rules, rules  # portmap's DNAT for the pod
    assert ip["address"].split("/")[0] in json.dumps(node.report()["pods"])


def test_reference_plugins_after_netcc_through_the_lab_runtime(node, chain) -> None:
    runtime = Runtime([str(node.bin), str(REFERENCE)], node.dir / "cache", node.runtime.host_netns)
    att = dataclasses.replace(node.pod("shop/web-1", {"app": "web"}), capability_args=CAPS)
    result = runtime.add(chain, att)
    assert result["cniVersion"] == "1.0.0"
    _check_added(node, att, result)
    runtime.check(_checkable(chain), att)
    runtime.delete(chain, att)
    assert _node_leftovers(node, att) == []
    runtime.delete(chain, att)  # DEL again: every plugin succeeds on nothing


def test_reference_plugins_after_netcc_through_libcni(node, chain, driver) -> None:
    att = dataclasses.replace(node.pod("shop/db-1", {"app": "db"}), capability_args=CAPS)
    code, result = node.libcni(driver, chain, "add", att, (str(REFERENCE),))
    assert code == 0, result
    _check_added(node, att, result)
    assert node.libcni(driver, _checkable(chain), "check", att, (str(REFERENCE),)) == (0, "")
    assert node.libcni(driver, chain, "del", att, (str(REFERENCE),)) == (0, "")
    assert _node_leftovers(node, att) == []


def test_the_daemon_through_libcni_add_check_del(node, driver) -> None:
    """netcc's own config list (as the daemon writes it) through libcni: ADD, CHECK, DEL;
    a refused pod's error reaches libcni with its code."""
    conf = node.conflist()
    att = node.pod("shop/web-1", {"app": "web"})
    code, result = node.libcni(driver, conf, "add", att)
    assert code == 0, result
    (ip,) = result["ips"]
    assert ip["gateway"] == "10.244.1.1" and node.pod_addresses(att) == [
        ip["address"].split("/")[0]
    ]
    assert node.libcni(driver, conf, "check", att) == (0, "")
    assert node.libcni(driver, conf, "del", att) == (0, "")
    assert _node_leftovers(node, att) == []
    stray = node.pod("shop/stray", {"app": "cache"})
    code, out = node.libcni(driver, conf, "add", stray)
    assert code == 1 and out["error"]["code"] == 100 and "shop/stray" in out["error"]["msg"]
    assert node.host_links() == [] and node.allocations() == {}


def test_netcc_after_another_interface_maker_is_refused(node, chain) -> None:
    """netcc is the first plugin or none: placed after a plugin whose result has an
    interface (loopback's `lo`), its ADD fails with error 7 saying so, and the runtime's
    DEL of the list leaves nothing behind."""
    runtime = Runtime([str(node.bin), str(REFERENCE)], node.dir / "cache", node.runtime.host_netns)
    late = {**chain, "plugins": [{"type": "loopback"}, chain["plugins"][0]]}
    att = node.pod("shop/web-2", {"app": "web"})
    with pytest.raises(CniRuntimeError) as e:
        runtime.add(late, att)
    assert (e.value.plugin, e.value.code) == ("netcc-cni", 7)
    assert "first plugin" in e.value.msg and "lo" in e.value.msg
    assert _node_leftovers(node, att) == [] and node.pod_addresses(att) == []
