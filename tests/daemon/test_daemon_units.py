"""The node daemon's pure parts: block placement, reserved offsets, misplaced pods, reading
OUT's runtime view, and refusals that happen before anything is made (no kernel)."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
from daemon_out import class_doc

from netcc.contract import classes as classes_file
from netcc.contract.lock import LOCK_NAME, make_lock
from netcc.loader.cni.errors import CniError
from netcc.loader.cni.ipam import AddressStore, Owner
from netcc.loader.cni.protocol import parse_request
from netcc.loader.daemon.handler import POD_REFUSED, Daemon, Readiness
from netcc.loader.daemon.run import conflist
from netcc.loader.daemon.view import NodeView, ViewError, block_of, misplaced, read_view
from netcc.loader.kube import NotFound, Pod

ENDPOINT = {"workload": 0, "profile": 2, "identity": 77, "flags": 3}
ENDPOINT |= {"ingress_deny": 40, "egress_deny": 41}
CLASSES = [
    class_doc(1, "shop", "web", {"app": "web"}, 16, 16, ENDPOINT),
    class_doc(2, "shop", "db", {"app": "db"}, 32, 8, ENDPOINT),
]
DIGEST = "ab" * 32


def classes(docs=CLASSES) -> classes_file.Classes:
    return classes_file.load(classes_file.dump({"shop": ["app"]}, list(docs)))


def view(docs=CLASSES, cidr: str | None = "10.244.1.0/24") -> NodeView:
    return NodeView(
        out=Path("/nonexistent"),
        node="node-1",
        digest=DIGEST,
        classes=classes(docs),
        pod_cidr=IPv4Network(cidr) if cidr else None,
        router=IPv4Address("10.244.1.1") if cidr else None,
        static=frozenset({IPv4Address("10.244.1.20")}),
    )


def test_block_of_places_aligned_blocks_inside_the_pod_cidr() -> None:
    assert block_of(IPv4Network("10.244.1.0/24"), 16, 16) == IPv4Network("10.244.1.16/28")
    assert block_of(IPv4Network("10.244.1.0/24"), 0, 256) == IPv4Network("10.244.1.0/24")
    for offset, size in ((8, 16), (256, 16), (16, 12)):
        with pytest.raises(ViewError):
            block_of(IPv4Network("10.244.1.0/24"), offset, size)


def test_reserved_offsets_cover_network_router_broadcast_and_static_pods() -> None:
    v = view()
    assert v.reserved(IPv4Network("10.244.1.16/28")) == [4]  # 10.244.1.20, a static pod
    assert v.reserved(IPv4Network("10.244.1.0/24")) == [0, 1, 20, 255]
    assert v.reserved(IPv4Network("10.244.1.32/29")) == []


def test_a_new_out_that_moves_a_block_misplaces_its_running_pods() -> None:
    running = {
        IPv4Address("10.244.1.33"): Owner("c1", "eth0", "shop", "db-1", "shop/db"),
        IPv4Address("10.244.1.17"): Owner("c2", "eth0", "shop", "web-1", "shop/web"),
        IPv4Address("10.244.1.18"): None,  # damaged: keeps its address, never judged
    }
    assert misplaced(view(), running) == []
    moved = [CLASSES[0], class_doc(2, "shop", "db", {"app": "db"}, 64, 8, ENDPOINT)]
    (problem,) = misplaced(view(moved), running)
    assert "shop/db-1 (10.244.1.33)" in problem and "10.244.1.64/29" in problem
    (gone,) = misplaced(view(CLASSES[:1]), running)
    assert "class shop/db is gone" in gone
    assert len(misplaced(view(cidr=None), running)) == 2  # no podCIDR: nothing placed


def _tree(tmp_path: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    (tmp_path / LOCK_NAME).write_bytes(make_lock(files, b"spec", "test", "clang"))
    return tmp_path


def test_read_view_takes_classes_pod_cidr_router_and_tunnel_mtu(tmp_path: Path) -> None:
    node = {"node": "node-1", "podCIDR": "10.244.1.0/24", "router": "10.244.1.1"}
    out = _tree(
        tmp_path,
        {
            "classes.json": classes_file.dump({"shop": ["app"]}, CLASSES),
            "nodes/node-1/node.json": json.dumps(node).encode(),
            "nodes/node-1/wireguard.json": json.dumps({"mtu": 1420}).encode(),
        },
    )
    v = read_view(out, "node-1")
    assert (v.pod_cidr, v.router, v.mtu) == (
        IPv4Network("10.244.1.0/24"),
        IPv4Address("10.244.1.1"),
        1420,
    )
    assert v.classes is not None and v.classes.by_key("shop/web") is not None
    with pytest.raises(ViewError, match="no node"):
        read_view(out, "node-9")
    (out / "classes.json").write_bytes(b"{}")  # tampered after the lock
    with pytest.raises(ViewError, match="refusing"):
        read_view(out, "node-1")


def test_read_view_without_classes_or_pod_cidr(tmp_path: Path) -> None:
    out = _tree(tmp_path, {"nodes/node-1/node.json": b'{"node": "node-1"}'})
    v = read_view(out, "node-1")
    assert v.classes is None and v.pod_cidr is None and v.mtu == 1500


class Pods:
    """A pod source answering from a dict."""

    def __init__(self, pods: dict[str, dict[str, str]]) -> None:
        self.pods = pods

    def get_pod(self, namespace: str, name: str) -> Pod:
        key = f"{namespace}/{name}"
        if key not in self.pods:
            raise NotFound(f'pods "{name}" not found')
        return Pod(namespace, name, "", self.pods[key])


def _add(pod: str, container: str = "c0ffee", prev: dict | None = None) -> bytes:
    ns, name = pod.split("/")
    conf = {"cniVersion": "1.1.0", "name": "netcc", "type": "netcc-cni"}
    if prev is not None:
        conf["prevResult"] = prev
    return json.dumps(
        {
            "command": "ADD",
            "containerID": container,
            "netns": "/run/netns/x",
            "ifname": "eth0",
            "args": f"K8S_POD_NAMESPACE={ns};K8S_POD_NAME={name}",
            "path": "/opt/cni/bin",
            "config": json.dumps(conf),
        }
    ).encode()


def _daemon(tmp_path: Path, v: NodeView | None, pods: dict) -> Daemon:
    def never(*args: object) -> None:
        raise AssertionError("a refused ADD must not apply")

    d = Daemon("node-1", AddressStore(tmp_path / "ipam"), Pods(pods), never)
    d.view = v
    d.readiness = Readiness(v is not None, "" if v else "not applied")
    return d


def test_refusal_names_pod_labels_and_digest_and_leaves_nothing(tmp_path: Path) -> None:
    d = _daemon(tmp_path, view(), {"shop/x-1": {"app": "cache", "pod-template-hash": "1"}})
    with pytest.raises(CniError) as e:
        d.add(parse_request(_add("shop/x-1")))
    assert e.value.code == POD_REFUSED
    for part in ("shop/x-1", "app=cache", DIGEST[:12]):
        assert part in e.value.msg
    assert "pod-template-hash" not in e.value.msg
    assert d.store.allocations() == {}
    assert not (tmp_path / "ipam").exists() or not any((tmp_path / "ipam").iterdir())


def test_refusals_of_undeclared_namespace_and_unknown_pod(tmp_path: Path) -> None:
    d = _daemon(tmp_path, view(), {"other/a": {"app": "web"}})
    with pytest.raises(CniError, match="namespace other is not declared"):
        d.add(parse_request(_add("other/a")))
    with pytest.raises(CniError, match="not found") as e:
        d.add(parse_request(_add("shop/ghost")))
    assert e.value.code == 3
    assert d.store.allocations() == {}


def test_netcc_must_be_the_first_plugin_of_its_chain(tmp_path: Path) -> None:
    d = _daemon(tmp_path, view(), {"shop/w": {"app": "web"}})
    prev = {"cniVersion": "1.1.0", "interfaces": [{"name": "lo", "sandbox": "/run/netns/x"}]}
    with pytest.raises(CniError) as e:
        d.add(parse_request(_add("shop/w", prev=prev)))
    assert e.value.code == 7
    assert "must be the first plugin" in e.value.msg and "(lo)" in e.value.msg
    assert d.store.allocations() == {}


def test_add_before_the_datapath_is_applied_is_try_again_later(tmp_path: Path) -> None:
    d = _daemon(tmp_path, None, {"shop/w": {"app": "web"}})
    with pytest.raises(CniError) as e:
        d.add(parse_request(_add("shop/w")))
    assert e.value.code == 11
    with pytest.raises(CniError) as s:
        d.status(parse_request(_add("shop/w")))
    assert s.value.code == 50


def test_conflist_names_the_plugin_and_socket() -> None:
    doc = conflist(Path("/run/netcc/cni.sock"))
    assert doc["plugins"] == [{"type": "netcc-cni", "socket": "/run/netcc/cni.sock"}]
    assert doc["cniVersion"] == "1.0.0"  # what libcni 1.1 (containerd 1.7) reads
    assert doc["cniVersions"] == ["1.0.0", "1.1.0"]  # a CNI 1.1 runtime picks 1.1.0


def test_lab_pod_labels_and_namespace_names() -> None:
    from netcc.lab.pods import PodError, parse_labels, pod_netns

    assert parse_labels("app=web,tier=,x=a=b") == {"app": "web", "tier": "", "x": "a=b"}
    assert parse_labels("") == {}
    with pytest.raises(PodError):
        parse_labels("app")
    assert pod_netns("shop/web-1") == "netcc-rpod-shop.web-1"
    long = pod_netns("shop/" + "a" * 80)
    assert long.startswith("netcc-rpod-") and len(long) <= 64


def test_lab_never_stops_a_process_its_record_does_not_name_as_its_own() -> None:
    import os

    from netcc.lab.runtime import alive, stop

    me = Path(f"/proc/{os.getpid()}/cmdline").read_bytes().decode().split("\0")
    for kind in ("daemon", "kubeapi"):
        damaged = {"kind": kind, "pid": os.getpid(), "argv": me}
        assert not alive(damaged) and stop(damaged) is None
    gone = {"kind": "daemon", "pid": 2**22 + 1, "argv": ["x", "-m", "netcc", "load", "run"]}
    assert not alive(gone)


def test_the_fast_path_records_a_pod_as_the_full_apply_does(tmp_path: Path) -> None:
    """ADD's record in state.json: the endpoint binding (runtime), both hooks of the veth
    (tcx link pins under the pin root), kept sorted; DEL takes exactly those away."""
    from netcc.loader import state
    from netcc.loader.daemon.fastpath import FastPath, NotApplied
    from netcc.loader.desired import RuntimeEndpoint
    from netcc.loader.link.hook import Mode

    paths = state.paths_for("node-1", tmp_path / "pins", tmp_path / "state")
    fp = FastPath(paths)
    with pytest.raises(NotApplied, match="nothing is applied"):
        fp.remove("10.244.1.17")
    uplink = {"ifindex": 2, "ifname": "eth0", "direction": "ingress", "mode": "tcx"}
    uplink |= {"link_pin": "/x", "role": "uplink"}
    doc = {"node": "node-1", "pin_root": str(paths.pin_root), "digest": DIGEST, "mode": "tcx"}
    doc |= {"hooks": [uplink], "endpoints": [], "clsact_created": []}
    state.save_state(paths, doc, {})
    ep = RuntimeEndpoint("10.244.1.17", {}, 9, "nc0123456789a", "shop/web-1 (shop/web)")
    hooks = [fp._hook(ep, d, Mode.TCX) for d in ("ingress", "egress")]
    fp._record(state.load_state(paths), add=(ep, hooks, False))
    got = state.load_state(paths)
    assert got["endpoints"] == [
        {"ip": "10.244.1.17", "note": ep.note, "ifindex": 9, "ifname": ep.ifname}
        | {"reason": None, "runtime": True}
    ]
    assert [(h["ifindex"], h["direction"], h["link_pin"]) for h in got["hooks"]] == [
        (2, "ingress", "/x"),
        (9, "egress", str(paths.link_pin(9, "egress"))),
        (9, "ingress", str(paths.link_pin(9, "ingress"))),
    ]
    fp._record(got, remove=("10.244.1.17", 9))
    after = state.load_state(paths)
    assert after["endpoints"] == [] and after["hooks"] == [uplink]
    assert after["digest"] == DIGEST and after["version"] == 1


def test_request_timing_records_named_steps_only_when_asked(tmp_path, monkeypatch):
    """`NETCC_DAEMON_PROFILE`: one JSON line per request with its command and steps (what
    bench/cni_churn.py --profile reads); unset, nothing is written. No timing is asserted."""
    from netcc.loader.cni import timing

    sink = tmp_path / "profile.jsonl"
    monkeypatch.delenv(timing.PROFILE_ENV, raising=False)
    monkeypatch.delenv(timing.CPROFILE_ENV, raising=False)
    with timing.request():
        timing.name("ADD")
        with timing.step("ipam.allocate"):
            pass
    with timing.step("outside"):  # no request: not recorded, no error
        pass
    assert not sink.exists()
    monkeypatch.setenv(timing.PROFILE_ENV, str(sink))
    with timing.request():
        timing.name("DEL")
        for _ in range(2):
            with timing.step("veth.delete"):
                pass
    (line,) = sink.read_text().splitlines()
    doc = json.loads(line)
    assert doc["cmd"] == "DEL" and set(doc["steps"]) == {"veth.delete"}
    assert doc["total"] >= doc["steps"]["veth.delete"] >= 0
