"""spec.deploy: the image reference (validated, defaulted) and the key paths the loader pod
mounts WireGuard keys at."""

from __future__ import annotations

import pytest
from k8s_kube import container, manifests
from k8s_specs import SHOP, TRICKY, compiled

from netcc import __version__
from netcc.diagnostics import SpecError
from netcc.frontend import parse_spec
from netcc.validate.deploy import image_problems, key_file_problems

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    "image",
    ["netcc", "netcc:1", "ghcr.io/netcc/netcc:0.1.0", f"ghcr.io/netcc/netcc@{DIGEST}",
     f"ghcr.io/netcc/netcc:0.1.0@{DIGEST}", "localhost:5000/a/b_c__d-e.f:v1.2-rc_3",
     "Registry.Example.com:443/team/netcc:latest", "[::1]:5000/netcc:x"],
)  # fmt: skip
def test_k8s_image_references_accepted(image: str) -> None:
    assert image_problems(image) == []


@pytest.mark.parametrize(
    "image, problem",
    [
        ("", "invalid repository name"),
        ("Netcc:1", "lowercase"),
        ("ghcr.io/Netcc/netcc", "lowercase"),
        ("netcc:", "a tag is"),
        ("netcc:.x", "a tag is"),
        ("netcc:" + "x" * 129, "a tag is"),
        ("netcc@sha256:abc", "digest"),
        ("netcc@sha512:" + "a" * 128, "digest"),
        ("netcc@" + DIGEST.upper(), "digest"),
        ("a//b", "invalid repository name"),
        ("netcc loader", "invalid repository name"),
        ("-netcc", "invalid repository name"),
        ("a" * 256, "no more than 255"),
    ],
)
def test_k8s_image_references_refused(image: str, problem: str) -> None:
    assert any(problem in p for p in image_problems(image)), image_problems(image)


def test_k8s_default_image_is_this_netcc() -> None:
    cluster, _ = parse_spec(SHOP.read_bytes(), "shop.yaml")
    assert cluster.deploy.image == f"ghcr.io/netcc/netcc:{__version__}"
    docs = manifests(compiled(SHOP.read_text(), "shop.yaml"))
    for name in ("assemble", "loader"):
        assert container(docs, name)["image"] == cluster.deploy.image


def test_k8s_spec_image_is_used() -> None:
    cluster, _ = parse_spec(TRICKY.encode(), "tricky.yaml")
    assert cluster.deploy.image.startswith("registry.example.com:5000/team/netcc:v0.1.0@sha256:")
    assert cluster.deploy.path == "spec.deploy"
    docs = manifests(compiled(TRICKY))
    for name in ("assemble", "loader"):
        assert container(docs, name)["image"] == cluster.deploy.image


@pytest.mark.parametrize(
    "path, ok",
    [("/etc/netcc/wg/private.key", True), ("/etc/wireguard/wg0.key", True),
     ("/run/netcc/key", True), ("/netcc/state/k", False), ("/netcc", False), ("/tmp/k", False),
     ("/sys/k", False), ("/proc", False), ("/netcc/compiled/k", False), ("/dev/k", False),
     ("/etc/netcc/./k", False), ("/etc//k", False), ("/etc/k/", False), ("/", False)],
)  # fmt: skip
def test_k8s_key_file_paths(path: str, ok: bool) -> None:
    assert (key_file_problems(path) == []) is ok


def test_k8s_key_file_paths_checked_only_when_keys_are_mounted() -> None:
    disabled = TRICKY.replace("enabled: true", "enabled: false").replace(
        "/etc/wireguard/node.key", "/netcc/node.key"
    )
    parse_spec(disabled.encode(), "disabled.yaml")
    with pytest.raises(SpecError, match="must not be at, in or above /netcc"):
        parse_spec(disabled.replace("enabled: false", "enabled: true").encode(), "on.yaml")
