"""The container runtime's side of CNI, as containerd and CRI-O drive it through libcni.

For a network config list, ADD runs every plugin in order, each with the previous plugin's
result as `prevResult`; the last result is cached per attachment (network name, container id,
interface) so that CHECK and DEL get it as `prevResult`, as libcni does. DEL runs the plugins
in reverse order and removes the cache; it goes on past a failing plugin and reports the
first failure. An ADD that fails is undone with a DEL of the whole list, as the runtimes do.
Plugins run as executables found in `bin_dirs`, with the CNI environment and the network
config on stdin, inside the node's network namespace (`nsenter --net`, which, unlike
`ip netns exec`, does not remount /sys).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PLUGIN_TIMEOUT = 180.0  # seconds; a plugin that hangs longer is killed
SUPPORTED_VERSIONS = ("0.4.0", "1.0.0", "1.1.0")  # what this runtime speaks, oldest first


def list_version(conflist: Mapping[str, Any]) -> str:
    """The version the list is run with: as libcni 1.2+, the highest of `cniVersions` this
    runtime speaks, else `cniVersion`."""
    offered = [v for v in conflist.get("cniVersions") or () if v in SUPPORTED_VERSIONS]
    if offered:
        return max(offered, key=SUPPORTED_VERSIONS.index)
    return conflist["cniVersion"]


class CniRuntimeError(Exception):
    """A plugin failed: its CNI error code and message, and which plugin and command."""

    def __init__(self, plugin: str, command: str, code: int, msg: str, details: str = "") -> None:
        text = f"{plugin} {command} failed: CNI error {code}: {msg}"
        super().__init__(text + (f" ({details})" if details else ""))
        self.plugin, self.command, self.code, self.msg, self.details = (
            plugin,
            command,
            code,
            msg,
            details,
        )


@dataclass(frozen=True)
class Attachment:
    """One container's interface on one network, with what the runtime passes every plugin."""

    container_id: str
    netns: str  # path of the container's network namespace
    ifname: str
    args: Mapping[str, str]  # CNI_ARGS (K8S_POD_NAMESPACE, K8S_POD_NAME, ...)
    capability_args: Mapping[str, Any] | None = None  # runtimeConfig (portMappings, ...)


@dataclass(frozen=True)
class Runtime:
    """Where plugins and the result cache are, and the namespace plugins run in."""

    bin_dirs: Sequence[str]
    cache_dir: Path
    host_netns: str | None = None  # path: plugins run in it (the node's); None: here

    def add(self, conflist: Mapping[str, Any], att: Attachment) -> dict[str, Any]:
        """ADD through the whole list; the final result. On failure the list is DELeted."""
        prev: dict[str, Any] | None = None
        try:
            for plugin in conflist["plugins"]:
                prev = self._exec("ADD", conflist, plugin, att, prev)
        except CniRuntimeError:
            with contextlib.suppress(CniRuntimeError):
                self.delete(conflist, att, prev)
            raise
        result = prev or {"cniVersion": list_version(conflist)}
        self._cache(conflist, att).parent.mkdir(parents=True, exist_ok=True)
        self._cache(conflist, att).write_text(json.dumps(result))
        return result

    def check(self, conflist: Mapping[str, Any], att: Attachment) -> None:
        """CHECK through the whole list with the cached result."""
        if conflist.get("disableCheck"):
            return
        prev = self.cached(conflist, att)
        for plugin in conflist["plugins"]:
            self._exec("CHECK", conflist, plugin, att, prev)

    def delete(
        self, conflist: Mapping[str, Any], att: Attachment, prev: dict[str, Any] | None = None
    ) -> None:
        """DEL through the list in reverse; raises the first failure after trying them all."""
        prev = prev if prev is not None else self.cached(conflist, att)
        failure: CniRuntimeError | None = None
        for plugin in reversed(conflist["plugins"]):
            try:
                self._exec("DEL", conflist, plugin, att, prev)
            except CniRuntimeError as e:
                failure = failure or e
        if failure is not None:
            raise failure
        with contextlib.suppress(FileNotFoundError):
            self._cache(conflist, att).unlink()

    def cached(self, conflist: Mapping[str, Any], att: Attachment) -> dict[str, Any] | None:
        """The result of the attachment's last ADD, if cached."""
        try:
            return json.loads(self._cache(conflist, att).read_text())
        except (FileNotFoundError, ValueError):
            return None

    def _cache(self, conflist: Mapping[str, Any], att: Attachment) -> Path:
        return self.cache_dir / f"{conflist['name']}-{att.container_id}-{att.ifname}"

    def _exec(
        self,
        command: str,
        conflist: Mapping[str, Any],
        plugin: Mapping[str, Any],
        att: Attachment,
        prev: dict[str, Any] | None,
    ) -> dict[str, Any] | None:
        """Run one plugin; its result (ADD), or None."""
        conf = _plugin_conf(conflist, plugin, att, prev)
        exe = self._find(plugin["type"])
        env = {  # the runtime's own environment and the CNI variables, as libcni passes them
            **os.environ,
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": att.container_id,
            "CNI_NETNS": att.netns,
            "CNI_IFNAME": att.ifname,
            "CNI_ARGS": ";".join(f"{k}={v}" for k, v in att.args.items()),
            "CNI_PATH": ":".join(self.bin_dirs),
        }
        argv = [exe] if self.host_netns is None else ["nsenter", f"--net={self.host_netns}", exe]
        proc = subprocess.run(
            argv,
            input=json.dumps(conf).encode(),
            env=env,
            capture_output=True,
            timeout=PLUGIN_TIMEOUT,
            check=False,
        )
        out = proc.stdout.decode(errors="replace").strip()
        if proc.returncode != 0:
            error = _error(out)
            raise CniRuntimeError(
                plugin["type"],
                command,
                int(error.get("code", 999)),
                str(error.get("msg") or proc.stderr.decode(errors="replace").strip()),
                str(error.get("details", "")),
            )
        if command != "ADD":
            return None
        try:
            return json.loads(out) if out else prev
        except ValueError:
            raise CniRuntimeError(plugin["type"], command, 999, "result is not JSON") from None

    def _find(self, plugin_type: str) -> str:
        if "/" in plugin_type or plugin_type in ("", ".", ".."):
            raise CniRuntimeError(plugin_type, "exec", 7, "invalid plugin type")
        for d in self.bin_dirs:
            exe = os.path.join(d, plugin_type)
            if os.access(exe, os.X_OK):
                return exe
        raise CniRuntimeError(
            plugin_type, "exec", 7, f"plugin not found in {':'.join(self.bin_dirs)}"
        )


def _plugin_conf(
    conflist: Mapping[str, Any],
    plugin: Mapping[str, Any],
    att: Attachment,
    prev: dict[str, Any] | None,
) -> dict[str, Any]:
    """A plugin's stdin: its config, the list's version and name, prevResult, runtimeConfig
    for the capabilities it declares (as libcni injects them)."""
    conf = dict(plugin)
    conf["cniVersion"] = list_version(conflist)
    conf["name"] = conflist["name"]
    if prev is not None:
        conf["prevResult"] = prev
    caps = {k for k, on in (plugin.get("capabilities") or {}).items() if on}
    given = {k: v for k, v in (att.capability_args or {}).items() if k in caps}
    if given:
        conf["runtimeConfig"] = {**conf.get("runtimeConfig", {}), **given}
    return conf


def _error(out: str) -> dict[str, Any]:
    try:
        doc = json.loads(out)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def load_conflist(conf_dir: str | Path) -> dict[str, Any] | None:
    """The first network config list of `conf_dir` in lexical order, as runtimes pick it;
    None when there is none yet (the node's network is not ready)."""
    try:
        names = sorted(n for n in os.listdir(conf_dir) if n.endswith(".conflist"))
    except FileNotFoundError:
        return None
    for name in names:
        try:
            doc = json.loads(Path(conf_dir, name).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("plugins"):
            return doc
    return None
