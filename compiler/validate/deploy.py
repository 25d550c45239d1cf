"""spec.deploy: the loader's image, and where the loader pod mounts each node's WireGuard key."""

from __future__ import annotations

import re
from typing import Any

from netcc.diagnostics import join_key
from netcc.emit.k8s.constants import RESERVED_PATHS
from netcc.validate.access import mapping, quote, text
from netcc.validate.context import Context
from netcc.validate.wireguard import key_file_problems as wireguard_key_file_problems

DEPLOY_PATH = "spec.deploy"
NAME_MAX = 255  # distribution/reference: NameTotalLengthMax

# distribution/reference's grammar, with sha256 as the only digest.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_NAME = re.compile(rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
_EXPECTED = "expected name[:tag][@sha256:<64 hex digits>], e.g. ghcr.io/netcc/netcc:0.1.0"


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """(name, tag, digest) of `name[:tag][@digest]`; a colon followed by a slash belongs to
    the registry's port, not to a tag."""
    rest, _, digest = image.partition("@")
    name, tag = rest, None
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        name, tag = rest[:colon], rest[colon + 1 :]
    return name, tag, digest if "@" in image else None


def image_problems(image: str) -> list[str]:
    """Why `image` is not `name[:tag][@sha256:<64 hex>]` (empty when it is)."""
    name, tag, digest = split_image(image)
    problems = []
    if not _NAME.fullmatch(name):
        if name.lower() != name and _NAME.fullmatch(_lower_path(name)):
            problems.append("the repository name must be lowercase")
        else:
            problems.append("invalid repository name")
    elif len(name) > NAME_MAX:
        problems.append(f"the repository name must be no more than {NAME_MAX} characters")
    if tag is not None and not _TAG.fullmatch(tag):
        problems.append("a tag is 1 to 128 of A-Z a-z 0-9 _ . -, and starts with none of . -")
    if digest is not None and not _DIGEST.fullmatch(digest):
        problems.append("the digest must be sha256: and 64 lowercase hex digits")
    return problems


def _lower_path(name: str) -> str:
    """`name` with its path (not its registry host, which may have capitals) lowercased."""
    host, slash, path = name.partition("/")
    if slash and ("." in host or ":" in host or host == "localhost"):
        return f"{host}/{path.lower()}"
    return name.lower()


def key_file_problems(path: str) -> list[str]:
    """Why the loader pod cannot mount a WireGuard key at `path` (empty when it can)."""
    if problems := wireguard_key_file_problems(path):
        return problems
    for reserved in RESERVED_PATHS:
        if path == reserved or path.startswith(reserved + "/") or reserved.startswith(path + "/"):
            return [
                f"privateKeyFile must not be at, in or above {reserved}, which the loader pod "
                "uses itself (the pod mounts the node's key at privateKeyFile)"
            ]
    return []


def check_deploy(ctx: Context, spec: dict[str, Any]) -> None:
    """spec.deploy.image; with WireGuard enabled, key paths the loader pod can mount keys at."""
    image = text(mapping(spec.get("deploy")).get("image"))
    if image is not None and (problems := image_problems(image)):
        ctx.error(
            join_key(DEPLOY_PATH, "image"),
            f"invalid image {quote(image)}: {'; '.join(problems)} ({_EXPECTED})",
        )
    wireguard = mapping(mapping(spec.get("encryption")).get("wireguard"))
    if wireguard.get("enabled") is True:  # else no key is mounted
        _check_key_mounts(ctx, mapping(wireguard.get("nodes")))


def _check_key_mounts(ctx: Context, nodes: dict[str, Any]) -> None:
    """Each key path is a file the loader pod mounts: clear of the pod's own paths, and none
    inside another (a file cannot hold a mount)."""
    nodes_path = "spec.encryption.wireguard.nodes"
    mounted: dict[str, str] = {}
    for node, entry in nodes.items():
        key_file = text(mapping(entry).get("privateKeyFile"))
        if key_file is None or wireguard_key_file_problems(key_file):
            continue  # reported by the WireGuard checks
        path = join_key(join_key(nodes_path, node), "privateKeyFile")
        if problems := key_file_problems(key_file):
            ctx.error(path, problems[0])
            continue
        for other, other_node in mounted.items():
            if key_file.startswith(other + "/") or other.startswith(key_file + "/"):
                ctx.error(
                    path,
                    f"privateKeyFile {quote(key_file)} is inside or above {quote(other)} of "
                    f"node {quote(other_node)}: the loader pod mounts a key file at each",
                )
                break
        mounted.setdefault(key_file, node)
