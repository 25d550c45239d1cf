"""The request `build/netcc-cni` forwards, and the response it prints (CNI spec 1.0.0, 1.1.0).

The shim sends one JSON object per connection:

    {"command", "containerID", "netns", "ifname", "args", "path",
     "config": "<the network configuration, as the runtime wrote it on stdin>"}

`parse_request` turns it into a `Request` (or a CniError carrying the spec's code), after
checking every CNI_* value, negotiating the CNI version and reading the configuration. The
daemon answers with `success_response` / `error_response`: `{"code", "stdout", "stderr"}`,
which the shim prints as is and exits 0 (code 0) or 1.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from netcc.loader.cni import names
from netcc.loader.cni.errors import (
    DECODE_FAILURE,
    INCOMPATIBLE_VERSION,
    INVALID_CONFIG,
    INVALID_ENVIRONMENT,
    IO_FAILURE,
    LIMITED_CONNECTIVITY,
    PLUGIN_NOT_AVAILABLE,
    TRY_AGAIN_LATER,
    UNKNOWN_CONTAINER,
    UNSUPPORTED_FIELD,
    CniError,
)
from netcc.loader.cni.results import DNS, Interface, IPConfig, Result, Route

__all__ = [
    "COMMANDS",
    "DECODE_FAILURE",
    "DNS",
    "INCOMPATIBLE_VERSION",
    "INVALID_CONFIG",
    "INVALID_ENVIRONMENT",
    "IO_FAILURE",
    "LATEST_VERSION",
    "LIMITED_CONNECTIVITY",
    "MAX_REQUEST_BYTES",
    "PLUGIN_NOT_AVAILABLE",
    "SUPPORTED_VERSIONS",
    "TRY_AGAIN_LATER",
    "UNKNOWN_CONTAINER",
    "UNSUPPORTED_FIELD",
    "VALID_ATTACHMENTS",
    "Attachment",
    "CniError",
    "IPConfig",
    "Interface",
    "NetConf",
    "PodRef",
    "Request",
    "Result",
    "Route",
    "error_response",
    "format_cni_args",
    "negotiate_version",
    "parse_cni_args",
    "parse_request",
    "success_response",
    "version_of",
    "version_result",
]

SUPPORTED_VERSIONS = ("1.0.0", "1.1.0")
LATEST_VERSION = SUPPORTED_VERSIONS[-1]
COMMANDS = ("ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION")
MAX_REQUEST_BYTES = 16 << 20
"""The largest request the daemon reads (GC lists every attachment of the node)."""

_VERSION = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")
_ARG_KEY = re.compile(r"[A-Za-z0-9_.\-]+")
_NEEDS_ATTACHMENT = ("ADD", "DEL", "CHECK")
_NEEDS_1_1 = ("GC", "STATUS")
VALID_ATTACHMENTS = "cni.dev/valid-attachments"
OLD_ATTACHMENTS = "cni.dev/attachments"  # the name some 1.1.0 runtimes used; libcni sends both


@dataclass(frozen=True, order=True)
class Attachment:
    """One attachment of a container to the network: CNI state is keyed by it."""

    container_id: str
    ifname: str


@dataclass(frozen=True)
class PodRef:
    """The Kubernetes pod of a request, from CNI_ARGS (K8S_POD_NAMESPACE, _NAME, _UID)."""

    namespace: str
    name: str
    uid: str = ""

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class NetConf:
    """The network configuration the runtime passed, with its version negotiated."""

    cni_version: str
    name: str
    type: str
    prev_result: Mapping | None = None
    valid_attachments: tuple[Attachment, ...] | None = None  # GC only
    runtime_config: Mapping = field(default_factory=dict)
    raw: Mapping = field(default_factory=dict)

    def prev(self) -> Result | None:
        """`prevResult` as a Result; CniError INVALID_CONFIG if it is malformed."""
        return None if self.prev_result is None else Result.from_json(self.prev_result)


@dataclass(frozen=True)
class Request:
    """One CNI invocation, validated. Strings that a command does not need may be empty."""

    command: str
    container_id: str
    netns: str
    ifname: str
    args: Mapping[str, str]
    path: tuple[str, ...]
    config: NetConf

    @property
    def cni_version(self) -> str:
        return self.config.cni_version

    @property
    def attachment(self) -> Attachment:
        return Attachment(self.container_id, self.ifname)

    @property
    def pod(self) -> PodRef | None:
        """The pod named in CNI_ARGS, or None when the runtime named none."""
        return _pod_ref(self.args)


def _version_key(version: str) -> tuple[int, int, int] | None:
    m = _VERSION.fullmatch(version)
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def negotiate_version(conf: Mapping) -> str:
    """The CNI version for this call: `cniVersion` when present (the runtime's choice), else
    the highest supported entry of `cniVersions`; CniError INCOMPATIBLE_VERSION otherwise."""
    supported = ", ".join(SUPPORTED_VERSIONS)
    if "cniVersion" in conf:
        version = conf["cniVersion"]
        if isinstance(version, str) and version in SUPPORTED_VERSIONS:
            return version
        raise CniError(
            INCOMPATIBLE_VERSION,
            f"cniVersion {version!r} is not supported; netcc supports {supported}",
        )
    versions = conf.get("cniVersions")
    if isinstance(versions, list):
        ok = [v for v in versions if isinstance(v, str) and v in SUPPORTED_VERSIONS]
        if ok:
            return max(ok, key=_version_key)
    raise CniError(
        INCOMPATIBLE_VERSION,
        f"none of cniVersions {versions!r} is supported; netcc supports {supported}",
    )


def parse_cni_args(text: str) -> dict[str, str]:
    """CNI_ARGS, `K=V;K=V`: keys are letters, digits, '_', '.', '-'; a value is everything
    after the first '='; empty segments are skipped; a key twice is an error (code 4)."""
    out: dict[str, str] = {}
    for segment in text.split(";"):
        if not segment:
            continue
        key, eq, value = segment.partition("=")
        if not eq or not _ARG_KEY.fullmatch(key):
            msg = f"CNI_ARGS: {segment!r} is not KEY=VALUE"
            raise CniError(INVALID_ENVIRONMENT, msg, "CNI_ARGS")
        if key in out:
            raise CniError(INVALID_ENVIRONMENT, f"CNI_ARGS: {key} appears twice", "CNI_ARGS")
        out[key] = value
    return out


def format_cni_args(args: Mapping[str, str]) -> str:
    """CNI_ARGS for `args` (the inverse of parse_cni_args), as a runtime builds it."""
    for key, value in args.items():
        if not _ARG_KEY.fullmatch(key) or ";" in value:
            raise ValueError(f"CNI_ARGS cannot carry {key!r}={value!r}")
    return ";".join(f"{k}={v}" for k, v in args.items())


def _pod_ref(args: Mapping[str, str]) -> PodRef | None:
    namespace, name = args.get("K8S_POD_NAMESPACE"), args.get("K8S_POD_NAME")
    if namespace is None and name is None:
        return None
    if namespace is None or name is None:
        raise CniError(
            INVALID_ENVIRONMENT,
            "CNI_ARGS names a pod only partly: K8S_POD_NAMESPACE and K8S_POD_NAME go together",
            "CNI_ARGS",
        )
    uid = args.get("K8S_POD_UID", "")
    for key, value, check in (
        ("K8S_POD_NAMESPACE", namespace, names.namespace_problem),
        ("K8S_POD_NAME", name, names.pod_name_problem),
        ("K8S_POD_UID", uid, names.pod_uid_problem),
    ):
        problem = check(value) if value or key != "K8S_POD_UID" else None
        if problem:
            raise CniError(INVALID_ENVIRONMENT, f"CNI_ARGS: {key} {value!r} {problem}", "CNI_ARGS")
    return PodRef(namespace, name, uid)


def _env(env: str, value: str, problem: str | None) -> None:
    if problem:
        raise CniError(INVALID_ENVIRONMENT, f"{env} {value!r} {problem}", env)


def _attachments(conf: Mapping) -> tuple[Attachment, ...]:
    """GC's list of attachments that are still valid (everything else may be removed)."""
    key = VALID_ATTACHMENTS if VALID_ATTACHMENTS in conf else OLD_ATTACHMENTS
    items = conf.get(key)
    if not isinstance(items, list):
        raise CniError(INVALID_CONFIG, f"GC needs the list {VALID_ATTACHMENTS} in its config")
    out = []
    for i, item in enumerate(items):
        cid = item.get("containerID") if isinstance(item, dict) else None
        ifname = item.get("ifname") if isinstance(item, dict) else None
        if not isinstance(cid, str) or not isinstance(ifname, str):
            raise CniError(INVALID_CONFIG, f"{key}[{i}] needs containerID and ifname strings")
        problem = names.container_id_problem(cid) or names.ifname_problem(ifname)
        if problem:
            raise CniError(INVALID_CONFIG, f"{key}[{i}] ({cid!r}, {ifname!r}): {problem}")
        out.append(Attachment(cid, ifname))
    return tuple(out)


def parse_config(text: str, command: str) -> NetConf:
    """The network configuration of a request: CniError with the spec's code when invalid."""
    try:
        conf = json.loads(text)
    except ValueError as e:
        raise CniError(DECODE_FAILURE, "network configuration is not valid JSON", str(e)) from None
    if not isinstance(conf, dict):
        raise CniError(DECODE_FAILURE, "network configuration is not a JSON object")
    if command == "VERSION":
        version = conf.get("cniVersion")
        version = version if version in SUPPORTED_VERSIONS else LATEST_VERSION
        return NetConf(version, "", "", raw=conf)
    version = negotiate_version(conf)
    if command in _NEEDS_1_1 and _version_key(version) < (1, 1, 0):
        raise CniError(INCOMPATIBLE_VERSION, f"{command} needs cniVersion 1.1.0; this is {version}")
    name, type_ = conf.get("name"), conf.get("type")
    if not isinstance(name, str) or names.network_name_problem(name):
        raise CniError(INVALID_CONFIG, f"network name {name!r} is missing or invalid")
    if not isinstance(type_, str) or not type_:
        raise CniError(INVALID_CONFIG, "network configuration has no plugin type")
    prev = conf.get("prevResult")
    if prev is not None and not isinstance(prev, dict):
        raise CniError(INVALID_CONFIG, "prevResult is not a JSON object")
    runtime_config = conf.get("runtimeConfig", {})
    if not isinstance(runtime_config, dict):
        raise CniError(INVALID_CONFIG, "runtimeConfig is not a JSON object")
    return NetConf(
        cni_version=version,
        name=name,
        type=type_,
        prev_result=prev,
        valid_attachments=_attachments(conf) if command == "GC" else None,
        runtime_config=runtime_config,
        raw=conf,
    )


def _field(doc: Mapping, key: str) -> str:
    value = doc.get(key, "")
    if not isinstance(value, str):
        raise CniError(DECODE_FAILURE, f"request field {key!r} is not a string")
    return value


def parse_request(data: bytes) -> Request:
    """One request from the shim; CniError with the spec's code when anything is invalid."""
    if len(data) > MAX_REQUEST_BYTES:
        raise CniError(DECODE_FAILURE, f"request larger than {MAX_REQUEST_BYTES} bytes")
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise CniError(DECODE_FAILURE, "request is not valid JSON", str(e)) from None
    if not isinstance(doc, dict):
        raise CniError(DECODE_FAILURE, "request is not a JSON object")
    command = _field(doc, "command")
    if command not in COMMANDS:
        raise CniError(INVALID_ENVIRONMENT, f"CNI_COMMAND {command!r} is unknown", "CNI_COMMAND")
    container_id, netns, ifname = (_field(doc, k) for k in ("containerID", "netns", "ifname"))
    if command in _NEEDS_ATTACHMENT:
        _env("CNI_CONTAINERID", container_id, names.container_id_problem(container_id))
        _env("CNI_IFNAME", ifname, names.ifname_problem(ifname))
        if netns or command != "DEL":  # DEL runs when the netns is gone, too
            _env("CNI_NETNS", netns, names.netns_problem(netns))
    config = parse_config(_field(doc, "config"), command)
    args = parse_cni_args(_field(doc, "args"))
    request = Request(
        command=command,
        container_id=container_id,
        netns=netns,
        ifname=ifname,
        args=args,
        path=tuple(p for p in _field(doc, "path").split(":") if p),
        config=config,
    )
    _pod_ref(args)  # a malformed pod reference fails here, not in the handler
    return request


def version_of(data: bytes) -> str:
    """The CNI version to report a failed request's error in: the request's when it is one
    netcc supports, else the latest (never raises)."""
    try:
        conf = json.loads(json.loads(data)["config"])
        return negotiate_version(conf)
    except Exception:  # any failure means: no usable version in it
        return LATEST_VERSION


def version_result(cni_version: str) -> dict:
    """The result of VERSION."""
    return {"cniVersion": cni_version, "supportedVersions": list(SUPPORTED_VERSIONS)}


def _envelope(code: int, stdout: str, stderr: str) -> bytes:
    return json.dumps({"code": code, "stdout": stdout, "stderr": stderr}).encode()


def success_response(result: Mapping | None = None) -> bytes:
    """The shim's response for a success: the result (ADD, VERSION) on stdout, or nothing."""
    stdout = "" if result is None else json.dumps(result, sort_keys=True) + "\n"
    return _envelope(0, stdout, "")


def error_response(err: CniError, cni_version: str) -> bytes:
    """The shim's response for a failure: the CNI error object on stdout, exit status 1."""
    return _envelope(err.code, json.dumps(err.to_json(cni_version)) + "\n", "")
