"""Values that are well-formed but wrong where netcc puts them: special addresses as underlay
or pod addresses, policy metadata the API server would refuse, key file paths a DaemonSet
cannot mount. Each mutation of the valid shop spec gives exactly the expected errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from frontend_helpers import errors, shop

from netcc.validate.wireguard import COLON

Mutation = Callable[[dict[str, Any]], Any]
START_END = "and must start and end with an alphanumeric character"
LABEL_VALUE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    f"'.', {START_END}"
)
NAME_PART = f"name part must consist of alphanumeric characters, '-', '_' or '.', {START_END}"
KEY_FILE = 'spec.encryption.wireguard.nodes["node-2"].privateKeyFile'


def node_address(address: str) -> Mutation:
    return lambda d: d["spec"]["nodes"][1].update(address=address)


def policy_metadata(**fields: Any) -> Mutation:
    return lambda d: d["spec"]["policies"][0]["metadata"].update(fields)


def key_file(path: str) -> Mutation:
    return lambda d: d["spec"]["encryption"]["wireguard"]["nodes"]["node-2"].update(
        privateKeyFile=path
    )


SPECIAL = [
    ("0.0.0.0", 'an unspecified or "this network" address (0.0.0.0/8)'),
    ("0.1.2.3", 'an unspecified or "this network" address (0.0.0.0/8)'),
    ("127.0.0.1", "a loopback address (127.0.0.0/8)"),
    ("127.255.0.9", "a loopback address (127.0.0.0/8)"),
    ("169.254.169.254", "a link-local address (169.254.0.0/16)"),
    ("224.0.0.251", "a multicast address (224.0.0.0/4)"),
    ("239.255.255.250", "a multicast address (224.0.0.0/4)"),
    ("240.0.0.1", "a reserved or broadcast address (240.0.0.0/4)"),
    ("255.255.255.255", "a reserved or broadcast address (240.0.0.0/4)"),
]


@pytest.mark.parametrize(("address", "what"), SPECIAL, ids=[a for a, _ in SPECIAL])
def test_node_address_must_be_a_host_address(address: str, what: str) -> None:
    d = shop()
    node_address(address)(d)
    message = f"node address {address} is {what}, not the node's underlay address"
    assert errors(d) == [("spec.nodes[1].address", message)]


@pytest.mark.parametrize("address", ["100.64.0.1", "192.0.2.10", "172.31.255.254", "8.8.8.8"])
def test_ordinary_underlay_addresses_are_fine(address: str) -> None:
    d = shop()
    node_address(address)(d)
    assert errors(d) == []


def test_cluster_cidrs_must_avoid_special_ranges() -> None:
    d = shop()
    d["spec"]["serviceCIDR"] = "224.0.0.0/16"
    for s in d["spec"]["services"]:
        s["clusterIP"] = s["clusterIP"].replace("10.96.", "224.0.")
    d["spec"]["policies"][1]["spec"]["egress"][0]["to"][0]["ipBlock"]["except"].pop()
    message = (
        "serviceCIDR 224.0.0.0/16 overlaps a multicast address (224.0.0.0/4): pods and services "
        "cannot use it"
    )
    assert errors(d) == [("spec.serviceCIDR", message)]
    d = shop()
    d["spec"]["podCIDR"] = "0.0.0.0/0"
    message = (
        'podCIDR 0.0.0.0/0 overlaps an unspecified or "this network" address (0.0.0.0/8): pods '
        "and services cannot use it"
    )
    assert errors(d) == [("spec.podCIDR", message)]


CASES: list[tuple[str, Mutation, list[tuple[str, str]]]] = [
    (
        "policy label value",
        policy_metadata(labels={"owner": "shop team"}),
        [
            (
                "spec.policies[0].metadata.labels.owner",
                f'invalid label value "shop team": {LABEL_VALUE}',
            )
        ],
    ),
    (
        "policy label value too long",
        policy_metadata(labels={"owner": "x" * 64}),
        [
            (
                "spec.policies[0].metadata.labels.owner",
                f'invalid label value "{"x" * 64}": must be no more than 63 characters',
            )
        ],
    ),
    (
        "policy label key",
        policy_metadata(labels={"-owner": "shop"}),
        [
            (
                'spec.policies[0].metadata.labels["-owner"]',
                f'invalid label key "-owner": {NAME_PART}',
            )
        ],
    ),
    (
        "policy annotation key",
        policy_metadata(annotations={"example.com/": "x"}),
        [
            (
                'spec.policies[0].metadata.annotations["example.com/"]',
                'invalid annotation key "example.com/": name part must be non-empty',
            )
        ],
    ),
    (
        "policy annotation keys may have capitals, as in Kubernetes",
        policy_metadata(annotations={"Example.COM/Owner": "x", "note": "any text at all\n"}),
        [],
    ),
    (
        "policy annotation value type",
        policy_metadata(annotations={"replicas": 3}),
        [
            (
                "spec.policies[0].metadata.annotations.replicas",
                "expected string, got integer (quote it to make it a string)",
            )
        ],
    ),
    (
        "policy annotations too large",
        policy_metadata(annotations={"a": "x" * (256 << 10)}),
        [
            (
                "spec.policies[0].metadata.annotations",
                f"annotations must be no more than {256 << 10} bytes, got {(256 << 10) + 1}",
            )
        ],
    ),
    (
        "cluster label value",
        lambda d: d["metadata"].update(labels={"env": "prod!"}),
        [("metadata.labels.env", f'invalid label value "prod!": {LABEL_VALUE}')],
    ),
    (
        "cluster annotation key",
        lambda d: d["metadata"].update(annotations={"a/b/c": "x"}),
        [
            (
                'metadata.annotations["a/b/c"]',
                'invalid annotation key "a/b/c": a qualified name must consist of alphanumeric '
                f"characters, '-', '_' or '.', {START_END} with an optional DNS subdomain prefix "
                "and '/' (e.g. 'example.com/MyName')",
            )
        ],
    ),
    (
        "key file with a control character",
        key_file("/etc/netcc/wg/\x1b[31mprivate.key"),
        [(KEY_FILE, "privateKeyFile must hold only printable characters (no control characters)")],
    ),
    (
        "key file with a newline",
        key_file("/etc/netcc/wg/private.key\n"),
        [(KEY_FILE, "privateKeyFile must hold only printable characters (no control characters)")],
    ),
    (
        "key file with a bidi override",
        key_file("/etc/netcc/wg/\u202eyek.etavirp"),
        [(KEY_FILE, "privateKeyFile must hold only printable characters (no control characters)")],
    ),
    (
        "key file with a colon",
        key_file("/etc/netcc/wg:private.key"),
        [(KEY_FILE, COLON)],
    ),
    (
        "key file going up",
        key_file("/etc/netcc/../private.key"),
        [
            (
                KEY_FILE,
                "privateKeyFile must be a normalized file path (no '.', '..', '//' or trailing /)",
            )
        ],
    ),
    (
        "key file too long",
        key_file("/etc/" + "k" * 1100),
        [(KEY_FILE, "privateKeyFile must be no more than 1024 characters")],
    ),
    (
        "key file component too long",
        key_file("/etc/" + "k" * 256),
        [(KEY_FILE, "privateKeyFile components must be no more than 255 bytes")],
    ),
    (
        "key file checked even when WireGuard is off",
        lambda d: (
            d["spec"]["encryption"]["wireguard"].update(enabled=False),
            key_file("/etc/\x07")(d),
        ),
        [(KEY_FILE, "privateKeyFile must hold only printable characters (no control characters)")],
    ),
    (
        "key files inside one another",
        key_file("/etc/netcc/wg/private.key/node-2"),
        [
            (
                KEY_FILE,
                'privateKeyFile "/etc/netcc/wg/private.key/node-2" is inside or above '
                '"/etc/netcc/wg/private.key" of node "node-1": the loader pod mounts a key file '
                "at each",
            )
        ],
    ),
    ("key files side by side", key_file("/etc/netcc/wg/node-2.key"), []),
]


@pytest.mark.parametrize(("mutate", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_check(mutate: Mutation, expected: list[tuple[str, str]]) -> None:
    d = shop()
    mutate(d)
    assert sorted(errors(d)) == sorted(expected)
