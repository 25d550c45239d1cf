"""The node daemon's CNI commands: ADD, DEL, CHECK, STATUS and GC on this node.

State on disk is the truth: the address store (`netcc.loader.cni.ipam`, one O_EXCL file per
allocation, naming its attachment, pod and class) says which pods run here; each pod's host
interface is found again from its container id (`podnet.host_name`). The runtime endpoints the
loader applies (`runtime_endpoints`) are derived from both every time, so a restarted daemon
re-adopts its pods and a pod half-made by a crash (an address without its interface) is never
given an endpoint; DEL or GC completes it.

ADD, in order (each step undone when a later one fails, so a refused or failed ADD leaves
nothing behind): the pod's labels (`PodSource`, the Kubernetes API or the lab's) -> its class
(closed world: no class, no network) -> an address of the class's block on this node, on disk
before anything else -> the veth pair, addresses, routes, MTU -> the pod's endpoint entry and
hooks on the applied datapath (`fastpath`: one map key, two hooks, the state file's record;
the full apply when the applied version is not the served one) -> the CNI result. The result
is returned only after that, so the pod never has an address without its endpoint and policy.
DEL takes the pod off the datapath the same way, then removes its veth and address.

netcc creates the pod's interface, so it must be the first plugin of a chain: an ADD whose
`prevResult` already lists interfaces is refused (CNI error 7; this and the other checks made
before anything is built, and the Kubernetes errors' mapping, are in `admission`). Plugins
after it (portmap, bandwidth, tuning, ...) get netcc's result as their `prevResult`.

Everything that changes the node's pods or datapath runs under one lock (`Daemon.lock`), and
the datapath changes under the node's state lock too (the full apply's). The steps are
named for `netcc.loader.cni.timing` (`NETCC_DAEMON_PROFILE`: where a request's time goes).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any, Protocol

from pyroute2.netlink.exceptions import NetlinkError

from netcc.contract.classes import ClassInfo
from netcc.loader.cni.errors import (
    INVALID_ENVIRONMENT,
    IO_FAILURE,
    PLUGIN_NOT_AVAILABLE,
    TRY_AGAIN_LATER,
    UNKNOWN_CONTAINER,
    CniError,
)
from netcc.loader.cni.ipam import AddressStore, BlockFull, IpamError, Owner
from netcc.loader.cni.protocol import IPConfig, PodRef, Request, Result, Route
from netcc.loader.cni.results import Interface
from netcc.loader.cni.timing import step
from netcc.loader.daemon import podnet
from netcc.loader.daemon.admission import (
    BLOCK_FULL,
    POD_REFUSED,
    classify,
    first_in_chain,
    kube_cni_error,
    pod_of,
)
from netcc.loader.daemon.fastpath import FastPath, NotApplied
from netcc.loader.daemon.view import NodeView, ViewError
from netcc.loader.desired import RuntimeEndpoint
from netcc.loader.kube import KubeError, Pod

log = logging.getLogger("netcc.daemon")

FAULT_ENV = "NETCC_DAEMON_FAULT"
"""Test hook: `after-allocate`, `after-veth` or `after-datapath` kills the daemon (SIGKILL)
at that ADD step."""


class PodSource(Protocol):
    """Where pod labels come from: `netcc.loader.kube.KubeClient` (or the lab's API)."""

    def get_pod(self, namespace: str, name: str) -> Pod: ...


Applier = Callable[[NodeView, list[RuntimeEndpoint]], Any]


@dataclass
class Readiness:
    """Whether the datapath is applied (ADD is served only then), and why not."""

    ready: bool = False
    reason: str = "the datapath is not applied yet"


def _fault(step: str) -> None:
    if os.environ.get(FAULT_ENV) == step:
        log.error("fault injection: killed at %s", step)
        os.kill(os.getpid(), signal.SIGKILL)


def pod_label(owner: Owner) -> str:
    """`namespace/name` of an allocation's pod, or its container id when unnamed."""
    return f"{owner.namespace}/{owner.name}" if owner.name else owner.container_id[:12]


class Daemon:
    """The CNI handler of one node (`netcc.loader.cni.server.Handler`)."""

    def __init__(
        self,
        node: str,
        store: AddressStore,
        pods: PodSource,
        applier: Applier,
        fast: FastPath | None = None,
    ) -> None:
        self.node = node
        self.store = store
        self.pods = pods
        self.applier = applier
        self.fast = fast  # None: every pod change takes the full apply
        self.lock = threading.RLock()
        self.view: NodeView | None = None
        self.readiness = Readiness()
        self.last_applied: Any = None
        self.applies = 0  # full applies that succeeded (reported, for tests and operators)
        self.on_change: Callable[[], None] | None = None  # after pods came or went

    # -- the datapath ------------------------------------------------------------------------

    def runtime_endpoints(self, view: NodeView | None = None) -> list[RuntimeEndpoint]:
        """Every pod of the store whose class `view` knows and whose host interface exists,
        as the loader's runtime endpoints."""
        view = view or self.view
        if view is None or view.classes is None or view.router is None:
            return []
        interfaces = podnet.host_interfaces()
        out = []
        for ip, owner in self.store.allocations().items():
            klass = view.classes.by_key(owner.klass) if owner else None
            name = podnet.host_name(owner.container_id) if owner else ""
            if owner is None or klass is None or name not in interfaces:
                continue
            value = {**klass.endpoint, "router": str(view.router)}
            note = f"{pod_label(owner)} ({klass.key})"
            out.append(RuntimeEndpoint(str(ip), value, interfaces[name], name, note))
        return out

    def apply_now(self) -> Any:
        """Apply the accepted OUT with the node's runtime endpoints; the loader's result.
        Raises what the loader raises (nothing changed then, or rolled back)."""
        with self.lock:
            if self.view is None:
                raise ViewError(self.readiness.reason)
            result = self.applier(self.view, self.runtime_endpoints())
            self.last_applied = result
            self.applies += 1
            self.readiness = Readiness(True, "")
            return result

    def _datapath_add(self, view: NodeView, ep: RuntimeEndpoint) -> None:
        """The pod's endpoint entry and hooks, incrementally where the applied version is
        the one served, else by the full apply (which takes every runtime endpoint)."""
        if self.fast is not None:
            try:
                self.fast.add(view.digest, ep)
                return
            except NotApplied as e:
                log.info("ADD %s: full apply (%s)", ep.ip, e)
        self.apply_now()

    def _datapath_remove(self, ips: list[str]) -> bool:
        """Take the addresses off the datapath incrementally; False when that could not be
        done, and the caller re-applies in full once the pod's veth and address are gone."""
        if self.fast is None:
            return False
        try:
            for ip in ips:
                self.fast.remove(ip)
            return True
        except NotApplied:
            return False
        except Exception as e:
            log.error("taking %s off the datapath failed (a full apply follows): %s", ips, e)
            return False

    def _require_ready(self) -> NodeView:
        if not self.readiness.ready or self.view is None:
            raise CniError(
                TRY_AGAIN_LATER,
                f"node {self.node}: the netcc datapath is not applied yet "
                f"({self.readiness.reason}); try again later",
            )
        return self.view

    # -- ADD ---------------------------------------------------------------------------------

    def add(self, req: Request) -> Result:
        first_in_chain(req)
        pod_ref = pod_of(req)
        self._require_ready()
        with step("labels"):
            pod = self._get_pod(pod_ref)
        with self.lock:
            view = self._require_ready()
            klass = classify(view, pod_ref, pod.labels)
            return self._add_locked(req, view, pod_ref, klass)

    def _add_locked(self, req: Request, view: NodeView, pod: PodRef, klass: ClassInfo) -> Result:
        assert view.router is not None
        try:
            block = view.block(klass)
        except ViewError as e:
            raise CniError(POD_REFUSED, f"pod {pod}: {e}") from None
        owner = Owner(req.container_id, req.ifname, pod.namespace, pod.name, klass.key)
        with step("ipam.scan"):
            other = [
                o.ifname
                for o in self.store.allocations().values()
                if o and o.container_id == req.container_id and o.ifname != req.ifname
            ]
        if other:  # the host side is named after the container: one interface each
            raise CniError(
                INVALID_ENVIRONMENT,
                f"pod {pod}: container {req.container_id[:12]} has a netcc interface already "
                f"({other[0]}); netcc gives a container one interface",
                "CNI_IFNAME",
            )
        try:
            with step("ipam.allocate"):
                ip = self.store.allocate(block, owner, view.reserved(block))
        except BlockFull as e:
            raise CniError(
                BLOCK_FULL,
                f"pod {pod}: the block of class {klass.key} on node {self.node} is full "
                f"({e.in_use} of {e.capacity} addresses in use; raise its perNode)",
            ) from None
        _fault("after-allocate")
        try:
            with step("veth.create"):  # replaces what an earlier, unfinished ADD left
                iface = podnet.create(
                    req.netns, req.ifname, req.container_id, ip, view.router, view.mtu
                )
            _fault("after-veth")
            value = {**klass.endpoint, "router": str(view.router)}
            note = f"{pod} ({klass.key})"
            ep = RuntimeEndpoint(str(ip), value, iface.host_index, iface.host_name, note)
            with step("datapath"):
                self._datapath_add(view, ep)
            _fault("after-datapath")
        except BaseException as e:
            self._undo_add(req, owner)
            if isinstance(e, podnet.PodNetError | NetlinkError):
                raise CniError(IO_FAILURE, f"pod {pod}: {e}") from None
            raise
        log.info("ADD %s: %s %s on %s", pod, klass.key, ip, iface.host_name)
        with step("report"):
            self._changed()
        return _result(req, iface, ip, view.router)

    def _undo_add(self, req: Request, owner: Owner) -> None:
        try:
            held = [
                str(ip) for ip, o in self.store.allocations().items() if o and o.key == owner.key
            ]
            if held:  # the periodic apply repairs what this could not undo
                self._datapath_remove(held)
            podnet.delete(req.container_id)
        finally:
            self.store.release(owner)

    def _get_pod(self, ref: PodRef) -> Pod:
        try:
            pod = self.pods.get_pod(ref.namespace, ref.name)
        except KubeError as e:
            raise kube_cni_error(ref, e) from None
        if ref.uid and pod.uid and ref.uid != pod.uid:
            raise CniError(
                TRY_AGAIN_LATER, f"pod {ref}: the API has uid {pod.uid}, the runtime {ref.uid}"
            )
        return pod

    # -- DEL, CHECK, STATUS, GC --------------------------------------------------------------

    def delete(self, req: Request) -> None:
        """Remove what exists of the attachment; never fails for what is already gone."""
        with self.lock:
            with step("ipam.scan"):
                records = self.store.allocations().items()
            held = [ip for ip, o in records if o and o.key == _key(req)]
            # The veth is named after the container: keep it when another of its interfaces
            # holds it (an ADD of a second interface was refused, and this is its DEL).
            cid = req.container_id
            theirs = any(o and o.container_id == cid and o.key != _key(req) for _, o in records)
            with step("datapath"):
                done = bool(held) and self._datapath_remove([str(ip) for ip in held])
            with step("veth.delete"):
                removed = podnet.delete(cid) if cid and not theirs else False
            with step("ipam.release"):
                freed = self.store.release(req.attachment)
            if (held or removed) and not done and self.readiness.ready:
                self._reapply_quietly("DEL")
        if held or removed or freed:
            log.info("DEL %s/%s: freed %s", req.container_id, req.ifname, freed)
            with step("report"):
                self._changed()

    def check(self, req: Request) -> None:
        view = self._require_ready()
        held = [ip for ip, o in self.store.allocations().items() if o and o.key == _key(req)]
        if not held:
            raise CniError(
                UNKNOWN_CONTAINER, f"no address is recorded for {req.container_id}/{req.ifname}"
            )
        problems = podnet.problems(req.netns, req.ifname, req.container_id, held[0])
        index = podnet.host_index(req.container_id)
        bound = {e.ip: e.ifindex for e in self.runtime_endpoints(view)}
        if index is not None and bound.get(str(held[0])) != index:
            problems.append(f"{held[0]} has no endpoint on {podnet.host_name(req.container_id)}")
        if problems:
            raise CniError(IO_FAILURE, "; ".join(problems))

    def status(self, req: Request) -> None:
        if not self.readiness.ready:
            raise CniError(PLUGIN_NOT_AVAILABLE, f"node {self.node}: {self.readiness.reason}")

    def gc(self, req: Request) -> None:
        valid = req.config.valid_attachments or ()
        with self.lock:
            freed = self.store.gc(valid)
            keep = {
                podnet.host_name(o.container_id) for o in self.store.allocations().values() if o
            }
            gone = [name for name in podnet.host_interfaces() if name not in keep]
            for name in gone:
                podnet.delete_host(name)
            if (freed or gone) and self.readiness.ready:
                self._reapply_quietly("GC")
        if freed or gone:
            log.info("GC: freed %s, removed interfaces %s", [str(a.ip) for a in freed], gone)
            self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:
                log.exception("reporting the node's pods failed")

    def _reapply_quietly(self, why: str) -> None:
        """After a removal: the pod is gone whatever the apply says; a failure is logged and
        the next periodic apply repairs it."""
        try:
            self.apply_now()
        except Exception as e:
            log.error("re-apply after %s failed (the periodic apply retries): %s", why, e)

    # -- for status --------------------------------------------------------------------------

    def pods_report(self, records: Mapping[IPv4Address, Owner | None]) -> list[dict[str, Any]]:
        """Every allocation of `records` (the store's): address, pod, class, attachment and
        host interface."""
        interfaces = podnet.host_interfaces()
        out = []
        for ip, owner in records.items():
            if owner is None:
                out.append({"ip": str(ip), "damaged": True})
                continue
            name = podnet.host_name(owner.container_id)
            out.append(
                {
                    "ip": str(ip),
                    "pod": pod_label(owner),
                    "class": owner.klass,
                    "containerID": owner.container_id,
                    "ifname": owner.ifname,
                    "hostIfname": name,
                    "ifindex": interfaces.get(name),
                }
            )
        return out

    def blocks_report(self, records: Mapping[IPv4Address, Owner | None]) -> list[dict[str, Any]]:
        """Per class: its block on this node, addresses in use (of `records`, the store's
        allocations, damaged ones included) and capacity."""
        view = self.view
        if view is None or view.classes is None or view.pod_cidr is None:
            return []
        out = []
        for klass in view.classes.classes:
            block = view.block(klass)
            capacity = block.num_addresses - len(view.reserved(block))
            used = sum(1 for ip in records if ip in block)
            out.append(
                {"class": klass.key, "block": str(block), "inUse": used, "capacity": capacity}
            )
        return out


def _key(req: Request) -> tuple[str, str]:
    return (req.container_id, req.ifname)


def _result(
    req: Request, iface: podnet.PodInterface, ip: IPv4Address, router: IPv4Address
) -> Result:
    return Result(
        interfaces=(
            Interface(iface.host_name, mac=iface.host_mac, mtu=iface.mtu),
            Interface(req.ifname, mac=iface.pod_mac, sandbox=req.netns, mtu=iface.mtu),
        ),
        ips=(IPConfig(IPv4Interface(f"{ip}/32"), gateway=router, interface=1),),
        routes=(
            Route(IPv4Network(f"{router}/32"), scope=podnet.SCOPE_LINK),
            Route(IPv4Network("0.0.0.0/0"), gw=router),
        ),
    )


__all__ = ["BLOCK_FULL", "POD_REFUSED", "Daemon", "IpamError", "PodSource", "Readiness"]
