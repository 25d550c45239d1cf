"""Flow records: what the node daemon makes of the datapath's flow events, and how it serves them.

The node daemon (`netcc.loader.daemon.flows`) turns every flow event (`netcc.contract.events`)
into a *flow record*: both ends named from OUT and the node's CNI state, the verdict named from
the applied `verdicts.json` and phrased with the words of `netcc why`
(`netcc.contract.verdicts.phrase`). One JSON object per record:

    {"type": "flow", "time": "2024-12-07T21:50:01.123456789Z", "node": "node-2",
     "kind": "drop", "verdict": "dropped", "verdictNumber": 38, "verdictName": "DENY_38",
     "direction": "ingress", "protocol": "TCP", "tcpFlags": "SYN", "length": 60, "ifindex": 7,
     "source": {"ip": "10.244.1.33", "port": 41234, "kind": "class", "class": "shop/web",
                "namespace": "shop", "node": "node-1"},
     "destination": {"ip": "10.244.2.208", "port": 9000, "kind": "pod", "pod": "shop/api-5d8",
                     "class": "shop/api", "namespace": "shop", "node": "node-2"},
     "deny": {"pod": "shop/api", "direction": "ingress", "path": "spec.workloads[1]"},
     "reason": "default deny: shop/api is isolated for ingress and no rule matches"}

- `time`: when the datapath judged the packet, UTC, RFC 3339 with nanoseconds (always nine
  digits, so the text sorts as the time does).
- `kind`: `new` (a connection allowed), `drop` (a packet dropped), `nodeport` (a NodePort flow
  translated at the uplink); `verdict`: `forwarded` or `dropped`, as hubble says.
- `direction`: `ingress` or `egress` of the pod the packet was judged for, or `uplink` (the
  node's interface, NodePort). The pod is the destination on ingress, the source on egress.
- `source`, `destination`: `ip`, `port` (0 for protocols without ports) and what the address
  is (`kind`): `pod` (a runtime pod by name: `pod` NS/NAME, its `class`, `namespace`,
  `node`), `workload` (a pod of the spec with fixed addresses), `class` (a runtime pod of
  another node, known by its class's block: `class`, `namespace`, `node`; a reader that has
  that node's pod table names it, `complete`), `node` (a node's address, or with
  `router: true` its router address), `service` (a service address, untranslated), `world`,
  or `unknown` (0.0.0.0: a packet whose IPv4 header was not read, IPv6 or malformed).
- `service`: `{"name": NS/NAME, "ip", "port"}`, when the packet was sent to a service (a
  cluster IP, or a node's address and nodePort) and the destination is the backend it was
  translated to.
- What decided, one of: `policy` (`{"policy", "direction", "index", "path"}`: the rule that
  allowed it), `deny` (`{"pod", "direction", "path"}`: the pod's default deny), `reserved`
  (`{"name", "doc"}`: an allow or drop no rule decides); `reason` says it in `netcc why`'s
  words ("allowed by shop/api-from-web ingress[0]", "a pod may always reach itself", ...).

Events the datapath could not write (over the per-CPU budget, or the ring buffer full) and
records a slow client could not take are reported, as hubble's `EVENTS LOST`:

    {"type": "lost", "time": "...", "node": "node-1", "lostBudget": 1234, "lostRing": 0,
     "lostQueue": 0}

The daemon serves them on a unix socket (`netcc load run --flows-socket`, default
`DEFAULT_SOCKET`; mode 0600). The client writes one request line; the server answers in JSON
lines:

- `{"request": "flows", "last": N, "follow": false, "filter": {...}}`: the last N records of
  its history (`HISTORY` records, the oldest dropped first) that match the filter, oldest
  first, then `{"type": "end", "node": NODE}`. With `"follow": true`, `{"type": "live",
  "node": NODE}` after the history, then every new record that matches, until the client
  closes. A client too slow to read loses records rather than hold the reader up; the next
  record it gets is a lost record counting them (`lostQueue`).
- `{"request": "pods"}`: `{"type": "pods", "node": NODE, "pods": {IP: {"pod": NS/NAME,
  "class": NS/CLASS}}}`, the node's runtime pods, then the end line. A reader of several
  nodes names the other nodes' pods with them (`complete`).
- A request the server cannot take: `{"type": "error", "error": MESSAGE}`, then it closes.

Filters are those of `hubble observe` (`parse_filter`, `matches`): `{"node": [...], "pod":
[...], "fromPod": [...], "toPod": [...], "namespace": [...], "verdict": [...], "protocol":
[...], "port": [...]}`. A record passes when every key given has a value that matches (values
of one key: any of them; keys: all of them). `pod` matches either end, `fromPod` the source
and `toPod` the destination, by prefix of NS/NAME (`shop/` is the whole namespace; a name
without a namespace is in `default`), against the end's pod, workload or class; `namespace`
matches either end's; `port` either end's. Lost records pass every filter but `node`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from netcc.contract.constants import DIR_EGRESS, DIR_INGRESS
from netcc.contract.events import DIR_UPLINK, EVENT_KINDS
from netcc.contract.text import escape
from netcc.contract.verdicts import phrase, reason_of

DEFAULT_SOCKET = "/run/netcc/flows.sock"
SOCKET_NAME = "flows.sock"  # beside the CNI socket, and in the lab's node directories
HISTORY = 4096  # records a node daemon keeps, like hubble's ring
MAX_REQUEST_BYTES = 65536
DEFAULT_LAST = 20  # records `netcc observe` shows without --follow or --last, like hubble

DIRECTIONS = {DIR_INGRESS: "ingress", DIR_EGRESS: "egress", DIR_UPLINK: "uplink"}
PROTOCOLS = {1: "ICMP", 6: "TCP", 17: "UDP", 132: "SCTP"}
PORTED = {6, 17, 132}  # protocols whose events carry ports
TCP_FLAGS = ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR")  # bit 0 first
VERDICTS = {"forwarded": "forwarded", "allowed": "forwarded", "dropped": "dropped"}
FILTER_KEYS = ("node", "pod", "fromPod", "toPod", "namespace", "verdict", "protocol", "port")
REQUESTS = ("flows", "pods")


class FlowFormatError(ValueError):
    """A request or filter this netcc cannot take."""


# --- records -------------------------------------------------------------------------------


def rfc3339(ns: int) -> str:
    """UTC time `ns` nanoseconds after the epoch: `2024-12-07T21:50:01.123456789Z`."""
    secs, frac = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def parse_time(text: str) -> datetime:
    """The time of a record (`rfc3339`), to the microsecond."""
    whole, _, frac = text.rstrip("Z").partition(".")
    when = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return when.replace(microsecond=int((frac + "000000")[:6]))


def protocol_name(proto: int) -> str:
    return PROTOCOLS.get(proto, str(proto))


def tcp_flags(flags: int) -> str:
    """`SYN`, `SYN,ACK`, ...: the flags set in a TCP header's flag byte."""
    return ",".join(name for bit, name in enumerate(TCP_FLAGS) if flags & (1 << bit))


def endpoint(ip: str, port: int, kind: str, klass: str = "", **names: Any) -> dict[str, Any]:
    """One end of a flow: its address and port, what the address is and its names (those
    given and not empty; `klass` is the `class`)."""
    names["class"] = klass
    return {"ip": ip, "port": port, "kind": kind, **{k: v for k, v in names.items() if v}}


def flow_record(
    time_ns: int,
    node: str,
    event: Mapping[str, Any],
    source: dict[str, Any],
    destination: dict[str, Any],
    verdict: Mapping[str, Any] | None,
    service: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The record of one decoded `flow_event` (`event`, by field name) judged on `node`, its
    ends named (`endpoint`), `verdict` its `verdicts.json` entry (None when the table does
    not have it), `service` the service it was sent to."""
    number = int(event["verdict"])
    name = str(verdict.get("name", "")) if verdict is not None else ""
    direction = DIRECTIONS.get(int(event["dir"]), str(event["dir"]))
    kind = EVENT_KINDS.get(int(event["kind"]), str(event["kind"]))
    record: dict[str, Any] = {
        "type": "flow",
        "time": rfc3339(time_ns),
        "node": node,
        "kind": kind,
        "verdict": "dropped" if kind == "drop" else "forwarded",
        "verdictNumber": number,
        "direction": direction,
        "protocol": "IPv6" if name == "DROP_IPV6" else protocol_name(int(event["proto"])),
        "length": int(event["len"]),
        "ifindex": int(event["ifindex"]),
        "source": source,
        "destination": destination,
    }
    if int(event["proto"]) == 6:
        record["tcpFlags"] = tcp_flags(int(event["tcp_flags"]))
    if service:
        record["service"] = service
    if verdict is None:
        record["reason"] = f"verdict {number}, which the applied verdicts.json does not list"
        return record
    record["verdictName"] = name
    reason = reason_of(verdict)
    if reason == "rule":
        record["policy"] = {k: verdict[k] for k in ("policy", "direction", "index", "path")}
    elif reason == "default-deny":
        record["deny"] = {k: verdict.get(k, "") for k in ("pod", "direction", "path")}
    else:
        record["reserved"] = {"name": verdict.get("name", ""), "doc": verdict.get("doc", "")}
    judged = destination if direction == "ingress" else source
    record["reason"] = phrase(verdict, judged_pod(judged))
    return record


def judged_pod(end: Mapping[str, Any]) -> str:
    """The pod a verdict judged, as `netcc why` names it: its workload, or its class."""
    return str(end.get("workload") or end.get("class") or end.get("pod") or "")


def lost_record(
    time_ns: int, node: str, budget: int = 0, ring: int = 0, queue: int = 0
) -> dict[str, Any]:
    """Events not written (over the budget, ring full) or records not passed on (queue)."""
    return {
        "type": "lost",
        "time": rfc3339(time_ns),
        "node": node,
        "lostBudget": budget,
        "lostRing": ring,
        "lostQueue": queue,
    }


def complete(record: dict[str, Any], pods: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The record with ends known only by their class named after a node's pod table
    (IP -> {"pod", "class", "node"}, the tables of `{"request": "pods"}` merged), where the
    table's pod is of that class on that node."""
    for side in ("source", "destination"):
        end = record.get(side)
        if not isinstance(end, dict) or end.get("kind") != "class":
            continue
        known = pods.get(end.get("ip", ""))
        if known is None or known.get("class") != end.get("class"):
            continue
        if known.get("node") and end.get("node") and known["node"] != end["node"]:
            continue
        record[side] = {**end, "kind": "pod", "pod": known["pod"]}
    return record


def dumps(record: Mapping[str, Any]) -> str:
    """One record as its JSON line (without the newline)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


# --- filters -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filter:
    """Checked filter values (`parse_filter`); an empty tuple: no condition."""

    node: tuple[str, ...] = ()
    pod: tuple[str, ...] = ()
    from_pod: tuple[str, ...] = ()
    to_pod: tuple[str, ...] = ()
    namespace: tuple[str, ...] = ()
    verdict: tuple[str, ...] = ()
    protocol: tuple[str, ...] = ()
    port: tuple[int, ...] = ()

    def to_json(self) -> dict[str, list[Any]]:
        names = dict(zip(FILTER_KEYS, vars(self), strict=True))
        return {k: list(getattr(self, a)) for k, a in names.items() if getattr(self, a)}


def _pod_value(v: str) -> str:
    return v if "/" in v else f"default/{v}"


def _protocol_value(v: str) -> str:
    if v.isascii() and v.isdigit() and int(v) <= 255:
        return protocol_name(int(v))
    if v.isascii() and v.upper() in PROTOCOLS.values():
        return v.upper()
    raise FlowFormatError(f"unknown protocol {escape(v)!r}: TCP, UDP, SCTP, ICMP or 0-255")


def _verdict_value(v: str) -> str:
    found = VERDICTS.get(v.lower()) if v.isascii() else None
    if found is None:
        raise FlowFormatError(f"unknown verdict {escape(v)!r}: forwarded, allowed or dropped")
    return found


def _port_value(v: Any) -> int:
    text = str(v)
    if isinstance(v, bool) or not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise FlowFormatError(f"{escape(text)!r} is not a port (0-65535)")
    return int(text)


def parse_filter(doc: Any) -> Filter:
    """A filter document (see the module's doc) checked and normalized: protocols by name,
    `allowed` as `forwarded`, pods with their namespace. FlowFormatError when it is not one."""
    if doc is None:
        return Filter()
    if not isinstance(doc, Mapping):
        raise FlowFormatError("a filter is an object of lists")
    unknown = sorted(set(doc) - set(FILTER_KEYS))
    if unknown:
        raise FlowFormatError(f"unknown filter {escape(str(unknown[0]))!r}")
    got: dict[str, list[Any]] = {}
    for key in FILTER_KEYS:
        values = doc.get(key) or []
        if isinstance(values, str | int):
            values = [values]
        if not isinstance(values, list) or not all(isinstance(v, str | int) for v in values):
            raise FlowFormatError(f"filter {key}: a list of values")
        got[key] = values
    text = {k: [str(v) for v in vs] for k, vs in got.items()}
    return Filter(
        node=tuple(text["node"]),
        pod=tuple(_pod_value(v) for v in text["pod"]),
        from_pod=tuple(_pod_value(v) for v in text["fromPod"]),
        to_pod=tuple(_pod_value(v) for v in text["toPod"]),
        namespace=tuple(text["namespace"]),
        verdict=tuple(dict.fromkeys(_verdict_value(v) for v in text["verdict"])),
        protocol=tuple(_protocol_value(v) for v in text["protocol"]),
        port=tuple(_port_value(v) for v in got["port"]),
    )


def _names(end: Mapping[str, Any]) -> list[str]:
    return [str(end[k]) for k in ("pod", "workload", "class") if end.get(k)]


def _pod_matches(end: Any, prefixes: tuple[str, ...]) -> bool:
    if not isinstance(end, Mapping):
        return False
    return any(n.startswith(p) for n in _names(end) for p in prefixes)


def matches(record: Mapping[str, Any], f: Filter) -> bool:
    """Whether `record` passes the filter (lost and other records: only `node` applies)."""
    if f.node and record.get("node") not in f.node:
        return False
    if record.get("type") != "flow":
        return True
    src, dst = record.get("source") or {}, record.get("destination") or {}
    if f.pod and not (_pod_matches(src, f.pod) or _pod_matches(dst, f.pod)):
        return False
    if f.from_pod and not _pod_matches(src, f.from_pod):
        return False
    if f.to_pod and not _pod_matches(dst, f.to_pod):
        return False
    if f.namespace and not ({src.get("namespace"), dst.get("namespace")} & set(f.namespace)):
        return False
    if f.verdict and record.get("verdict") not in f.verdict:
        return False
    if f.protocol and record.get("protocol") not in f.protocol:
        return False
    return not (f.port and not ({src.get("port"), dst.get("port")} & set(f.port)))


# --- requests ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """What a client of the flows socket asked for."""

    request: str = "flows"  # flows | pods
    last: int = 0
    follow: bool = False
    filter: Filter = field(default_factory=Filter)

    def to_json(self) -> dict[str, Any]:
        if self.request == "pods":
            return {"request": "pods"}
        doc: dict[str, Any] = {"request": "flows", "last": self.last, "follow": self.follow}
        return doc | ({"filter": self.filter.to_json()} if self.filter.to_json() else {})


def parse_request(line: bytes | str) -> Request:
    """The client's request line; FlowFormatError when it is not one."""
    try:
        doc = json.loads(line)
    except ValueError as e:
        raise FlowFormatError(f"the request is not JSON ({e})") from None
    if not isinstance(doc, dict):
        raise FlowFormatError("the request is a JSON object")
    kind = doc.get("request", "flows")
    if kind not in REQUESTS:
        raise FlowFormatError(f"unknown request {escape(str(kind))!r}: flows or pods")
    last, follow = doc.get("last", 0), doc.get("follow", False)
    if isinstance(last, bool) or not isinstance(last, int) or last < 0:
        raise FlowFormatError("last: a number of records, 0 or more")
    if not isinstance(follow, bool):
        raise FlowFormatError("follow: true or false")
    return Request(kind, min(last, HISTORY), follow, parse_filter(doc.get("filter")))


# --- text ----------------------------------------------------------------------------------


def _name(end: Mapping[str, Any]) -> str:
    kind = end.get("kind")
    if kind == "pod":
        who = str(end.get("pod"))
    elif kind == "workload":
        who = str(end.get("workload"))
    elif kind == "class":
        who = f"{end.get('class')}@{end.get('node')}" if end.get("node") else str(end["class"])
    elif kind == "node":
        who = f"node {end.get('node')}" + (" router" if end.get("router") else "")
    elif kind == "service":
        who = f"service {end.get('service')}"
    else:
        who = "world"
    return escape(who)


def _end(end: Mapping[str, Any], ported: bool) -> str:
    if end.get("kind") == "unknown":
        return "?"
    port = f":{end.get('port')}" if ported else ""
    return f"{_name(end)} ({end.get('ip')}){port}"


def _clock(text: str, tz: tzinfo | None) -> str:
    when = parse_time(text).astimezone(tz)
    return f"{when:%b} {when.day:2d} {when:%H:%M:%S}.{when.microsecond // 1000:03d}"


def format_line(record: Mapping[str, Any], tz: tzinfo | None = None) -> str:
    """One record as `netcc observe` prints it (hubble's line, with the reason in `netcc
    why`'s words and the rule's spec path); times in `tz` (None: the local time zone)."""
    if record.get("type") == "lost":
        line = (
            f"EVENTS LOST: {escape(str(record.get('node')))} budget {record.get('lostBudget', 0)}"
            f" ring {record.get('lostRing', 0)}"
        )
        queue = record.get("lostQueue", 0)
        return line + (f" queue {queue}" if queue else "")
    proto = str(record.get("protocol"))
    ported = proto in (PROTOCOLS[p] for p in PORTED)
    svc = record.get("service")
    via = f" via {escape(str(svc['name']))} ({svc['ip']}):{svc['port']}" if svc else ""
    reason = escape(str(record.get("reason", "")))
    if record.get("policy"):
        reason += f" at {escape(str(record['policy'].get('path', '')))}"
    return (
        f"{_clock(str(record['time']), tz)}: {_end(record['source'], ported)} -> "
        f"{_end(record['destination'], ported)}{via} {proto} {record.get('direction')} "
        f"{str(record.get('verdict')).upper()} ({reason}) {escape(str(record.get('node')))}"
    )
