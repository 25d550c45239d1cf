"""Every semantic check: one mutation of the valid shop spec, exactly the expected error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from frontend_helpers import errors, shop

from netcc.validate.secrets import PRIVATE_KEY_MESSAGE

KEY1 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
PRIVATE = "AgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fICE="
START_END = "and must start and end with an alphanumeric character"
SUBDOMAIN = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    f"or '.', {START_END}"
)
LABEL_1123 = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    + START_END
)
DNS1035 = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character"
)
NAME_PART = f"name part must consist of alphanumeric characters, '-', '_' or '.', {START_END}"
QUALIFIED = (
    f"a qualified name must consist of alphanumeric characters, '-', '_' or '.', {START_END} "
    "with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
)
LABEL_VALUE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    f"'.', {START_END}"
)
PORT_CHARS = "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"
NODE2_CIDR = 'podCIDR 10.244.2.0/24 of node "node-2"'

Mutation = Callable[[dict[str, Any]], Any]


def spec(d: dict[str, Any]) -> dict[str, Any]:
    return d["spec"]


def node(d, i):
    return d["spec"]["nodes"][i]


def workload(d, i):
    return d["spec"]["workloads"][i]


def service(d, i):
    return d["spec"]["services"][i]


def policy(d, i):
    return d["spec"]["policies"][i]["spec"]


def wg(d):
    return d["spec"]["encryption"]["wireguard"]


def backend_peer(d, i):
    return policy(d, 1)["ingress"][0]["from"][i]


def ip_block(d):
    return policy(d, 1)["egress"][0]["to"][0]["ipBlock"]


def egress_port(d):
    return policy(d, 1)["egress"][0]["ports"][0]


def add_node(d, name="node-3", address="192.168.77.13", cidr="10.244.3.0/24"):
    spec(d)["nodes"].append({"name": name, "address": address, "podCIDR": cidr})
    wg(d)["nodes"][name] = {
        "publicKey": "AwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISI=",
        "privateKeyFile": "/k",
    }


CASES: list[tuple[str, Mutation, list[tuple[str, str]]]] = [
    # names
    (
        "cluster name",
        lambda d: d["metadata"].update(name="Shop!"),
        [("metadata.name", f'invalid cluster name "Shop!": {SUBDOMAIN}')],
    ),
    (
        "node name",
        lambda d: add_node(d, name="node_3"),
        [("spec.nodes[2].name", f'invalid node name "node_3": {SUBDOMAIN}')],
    ),
    (
        "node name too long",
        lambda d: add_node(d, name="n" * 254),
        [
            (
                "spec.nodes[2].name",
                f'invalid node name "{"n" * 77}...": must be no more than 253 characters',
            )
        ],
    ),
    (
        "namespace name",
        lambda d: spec(d)["namespaces"].append({"name": "a.b"}),
        [
            (
                "spec.namespaces[2].name",
                f'invalid namespace name "a.b": {LABEL_1123}',
            )
        ],
    ),
    (
        "workload name",
        lambda d: workload(d, 2).update(name="Prometheus"),
        [("spec.workloads[2].name", f'invalid workload name "Prometheus": {SUBDOMAIN}')],
    ),
    (
        "service name",
        lambda d: service(d, 0).update(name="web.svc"),
        [
            (
                "spec.services[0].name",
                f'invalid service name "web.svc": {DNS1035}',
            )
        ],
    ),
    (
        "policy name",
        lambda d: d["spec"]["policies"][0]["metadata"].update(name="-x"),
        [("spec.policies[0].metadata.name", f'invalid policy name "-x": {SUBDOMAIN}')],
    ),
    # labels
    (
        "label key",
        lambda d: workload(d, 0)["labels"].update({"a/b/c": "x"}),
        [
            (
                'spec.workloads[0].labels["a/b/c"]',
                f'invalid label key "a/b/c": {QUALIFIED}',
            )
        ],
    ),
    (
        "label key name too long",
        lambda d: workload(d, 0)["labels"].update({"k" * 64: "x"}),
        [
            (
                f"spec.workloads[0].labels.{'k' * 64}",
                f'invalid label key "{"k" * 64}": name part must be no more than 63 characters',
            )
        ],
    ),
    (
        "label value",
        lambda d: spec(d)["namespaces"][0]["labels"].update(team="a b"),
        [
            (
                "spec.namespaces[0].labels.team",
                f'invalid label value "a b": {LABEL_VALUE}',
            )
        ],
    ),
    ("empty label value is fine", lambda d: workload(d, 0)["labels"].update(tier=""), []),
    (
        "service selector label",
        lambda d: service(d, 0)["selector"].update({"-x": "y"}),
        [
            (
                'spec.services[0].selector["-x"]',
                f'invalid label key "-x": {NAME_PART}',
            )
        ],
    ),
    (
        "namespace metadata.name label",
        lambda d: spec(d)["namespaces"][1].update(labels={"kubernetes.io/metadata.name": "mon"}),
        [
            (
                'spec.namespaces[1].labels["kubernetes.io/metadata.name"]',
                "label kubernetes.io/metadata.name must be the namespace name "
                '"monitoring", not "mon"',
            )
        ],
    ),
    (
        "namespace metadata.name label may repeat the name",
        lambda d: spec(d)["namespaces"][1].update(
            labels={"kubernetes.io/metadata.name": "monitoring"}
        ),
        [],
    ),
    # cluster CIDRs
    (
        "pod CIDR host bits",
        lambda d: spec(d).update(podCIDR="10.244.1.0/16"),
        [("spec.podCIDR", 'CIDR "10.244.1.0/16" has host bits set; did you mean "10.244.0.0/16"?')],
    ),
    (
        "pod CIDR syntax",
        lambda d: spec(d).update(podCIDR="10.244.0.0/x"),
        [("spec.podCIDR", 'invalid CIDR "10.244.0.0/x"')],
    ),
    (
        "pod CIDR IPv6",
        lambda d: spec(d).update(podCIDR="fd00::/48"),
        [("spec.podCIDR", 'IPv6 pod CIDR "fd00::/48" is not supported yet (IPv4 only)')],
    ),
    (
        "service CIDR IPv6 with host bits",
        lambda d: spec(d).update(serviceCIDR="fd00::1/112"),
        [("spec.serviceCIDR", 'IPv6 service CIDR "fd00::1/112" is not supported yet (IPv4 only)')],
    ),
    (
        "service CIDR overlaps",
        lambda d: spec(d).update(serviceCIDR="10.0.0.0/8"),
        [("spec.serviceCIDR", "serviceCIDR 10.0.0.0/8 overlaps podCIDR 10.244.0.0/16")],
    ),
    # nodes
    (
        "node CIDR outside",
        lambda d: add_node(d, cidr="10.245.3.0/24"),
        [
            (
                "spec.nodes[2].podCIDR",
                "node podCIDR 10.245.3.0/24 is not inside the cluster podCIDR 10.244.0.0/16",
            )
        ],
    ),
    (
        "node CIDRs overlap",
        lambda d: add_node(d, cidr="10.244.2.128/25"),
        [
            (
                "spec.nodes[2].podCIDR",
                "node podCIDR 10.244.2.128/25 overlaps 10.244.2.0/24 of spec.nodes[1]",
            )
        ],
    ),
    (
        "node CIDR too small",
        lambda d: add_node(d, cidr="10.244.3.0/32"),
        [
            (
                "spec.nodes[2].podCIDR",
                "node podCIDR 10.244.3.0/32 is too small: a node needs at least a /30",
            )
        ],
    ),
    (
        "node name unique",
        lambda d: add_node(d, name="node-2"),
        [("spec.nodes[2].name", 'node name "node-2" is already used by spec.nodes[1]')],
    ),
    (
        "node address unique",
        lambda d: add_node(d, address="192.168.77.11"),
        [("spec.nodes[2].address", "node address 192.168.77.11 is already used by spec.nodes[0]")],
    ),
    (
        "node address in service CIDR",
        lambda d: add_node(d, address="10.96.5.5"),
        [
            (
                "spec.nodes[2].address",
                "node address 10.96.5.5 is inside the cluster serviceCIDR 10.96.0.0/16",
            )
        ],
    ),
    (
        "node address in pod CIDR",
        lambda d: add_node(d, address="10.244.3.1"),
        [
            (
                "spec.nodes[2].address",
                "node address 10.244.3.1 is inside the cluster podCIDR 10.244.0.0/16",
            )
        ],
    ),
    (
        "node address IPv6",
        lambda d: node(d, 0).update(address="fe80::1"),
        [("spec.nodes[0].address", 'IPv6 node address "fe80::1" is not supported yet (IPv4 only)')],
    ),
    (
        "node podCIDR IPv6",
        lambda d: node(d, 0).update(podCIDR="fd00:1::/64"),
        [
            (
                "spec.nodes[0].podCIDR",
                'IPv6 node podCIDR "fd00:1::/64" is not supported yet (IPv4 only)',
            )
        ],
    ),
    # namespaces and references
    (
        "namespace unique",
        lambda d: spec(d)["namespaces"].append({"name": "monitoring"}),
        [
            (
                "spec.namespaces[2].name",
                'namespace "monitoring" is already declared by spec.namespaces[1]',
            )
        ],
    ),
    (
        "workload node reference",
        lambda d: workload(d, 1).update(node="node-9"),
        [("spec.workloads[1].node", 'node "node-9" is not declared in spec.nodes')],
    ),
    (
        "workload namespace reference",
        lambda d: workload(d, 1).update(namespace="default"),
        [("spec.workloads[1].namespace", 'namespace "default" is not declared in spec.namespaces')],
    ),
    (
        "service namespace reference",
        lambda d: service(d, 1).update(namespace="default"),
        [("spec.services[1].namespace", 'namespace "default" is not declared in spec.namespaces')],
    ),
    (
        "policy namespace reference",
        lambda d: d["spec"]["policies"][0]["metadata"].update(namespace="default"),
        [
            (
                "spec.policies[0].metadata.namespace",
                'namespace "default" is not declared in spec.namespaces',
            )
        ],
    ),
    (
        "no namespaces at all",
        lambda d: [spec(d).pop(k) for k in ("namespaces", "policies")],
        [
            (f"spec.{kind}[{i}].namespace", f'namespace "{ns}" is not declared in spec.namespaces')
            for kind, i, ns in [
                ("workloads", 0, "shop"),
                ("workloads", 1, "shop"),
                ("workloads", 2, "monitoring"),
                ("services", 0, "shop"),
                ("services", 1, "shop"),
            ]
        ],
    ),
    # workloads
    (
        "workload unique per namespace",
        lambda d: workload(d, 2).update(name="backend", namespace="shop"),
        [
            (
                "spec.workloads[2].name",
                "workload shop/backend is already declared by spec.workloads[1]",
            )
        ],
    ),
    (
        "same workload name in another namespace",
        lambda d: workload(d, 2).update(name="backend"),
        [],
    ),
    (
        "workload IP unique",
        lambda d: workload(d, 2)["ips"].append("10.244.2.20"),
        [
            (
                "spec.workloads[2].ips[1]",
                "IP 10.244.2.20 is already used by spec.workloads[1].ips[0]",
            )
        ],
    ),
    (
        "workload IP outside node",
        lambda d: workload(d, 2).update(ips=["10.244.1.30"]),
        [
            (
                "spec.workloads[2].ips[0]",
                'IP 10.244.1.30 is outside the podCIDR 10.244.2.0/24 of node "node-2"',
            )
        ],
    ),
    (
        "workload IP network address",
        lambda d: workload(d, 2).update(ips=["10.244.2.0"]),
        [
            (
                "spec.workloads[2].ips[0]",
                f"IP 10.244.2.0 is the network address of the {NODE2_CIDR}",
            )
        ],
    ),
    (
        "workload IP broadcast",
        lambda d: workload(d, 2).update(ips=["10.244.2.255"]),
        [
            (
                "spec.workloads[2].ips[0]",
                f"IP 10.244.2.255 is the broadcast address of the {NODE2_CIDR}",
            )
        ],
    ),
    (
        "workload IP router",
        lambda d: workload(d, 2).update(ips=["10.244.2.1"]),
        [
            (
                "spec.workloads[2].ips[0]",
                'IP 10.244.2.1 is the router address of node "node-2" '
                "(first host of 10.244.2.0/24)",
            )
        ],
    ),
    (
        "workload IP IPv6",
        lambda d: workload(d, 2).update(ips=["fd00::2"]),
        [
            (
                "spec.workloads[2].ips[0]",
                'IPv6 pod address "fd00::2" is not supported yet (IPv4 only)',
            )
        ],
    ),
    (
        "workload IP syntax",
        lambda d: workload(d, 2).update(ips=["10.244.2"]),
        [("spec.workloads[2].ips[0]", 'invalid IP address "10.244.2"')],
    ),
    # container ports
    (
        "container port name",
        lambda d: workload(d, 0)["ports"][0].update(name="http_alt"),
        [
            (
                "spec.workloads[0].ports[0].name",
                f'invalid port name "http_alt": {PORT_CHARS}',
            )
        ],
    ),
    (
        "container port name unique",
        lambda d: workload(d, 0)["ports"].append({"name": "http", "port": 8443}),
        [
            (
                "spec.workloads[0].ports[1].name",
                'port name "http" is already used by spec.workloads[0].ports[0]',
            )
        ],
    ),
    (
        "container port unique",
        lambda d: workload(d, 0)["ports"].append({"port": 8080}),
        [
            (
                "spec.workloads[0].ports[1].port",
                "port 8080/TCP is already declared by spec.workloads[0].ports[0]",
            )
        ],
    ),
    (
        "same port other protocol",
        lambda d: workload(d, 0)["ports"].append({"port": 8080, "protocol": "UDP"}),
        [],
    ),
    (
        "container port range",
        lambda d: workload(d, 0)["ports"][0].update(port=0),
        [("spec.workloads[0].ports[0].port", "must be between 1 and 65535, got 0")],
    ),
    # selectors
    (
        "In without values",
        lambda d: policy(d, 1)["podSelector"]["matchExpressions"][0].pop("values"),
        [
            (
                "spec.policies[1].spec.podSelector.matchExpressions[0].values",
                "operator In needs a non-empty list of values",
            )
        ],
    ),
    (
        "NotIn with empty values",
        lambda d: policy(d, 1)["podSelector"]["matchExpressions"][0].update(
            operator="NotIn", values=[]
        ),
        [
            (
                "spec.policies[1].spec.podSelector.matchExpressions[0].values",
                "operator NotIn needs a non-empty list of values",
            )
        ],
    ),
    (
        "DoesNotExist with values",
        lambda d: policy(d, 1)["podSelector"]["matchExpressions"][0].update(
            operator="DoesNotExist"
        ),
        [
            (
                "spec.policies[1].spec.podSelector.matchExpressions[0].values",
                "operator DoesNotExist takes no values",
            )
        ],
    ),
    (
        "Exists with empty values is fine",
        lambda d: policy(d, 1)["podSelector"]["matchExpressions"][0].update(
            operator="Exists", values=[]
        ),
        [],
    ),
    (
        "expression key",
        lambda d: policy(d, 1)["podSelector"]["matchExpressions"][0].update(key="a b"),
        [
            (
                "spec.policies[1].spec.podSelector.matchExpressions[0].key",
                f'invalid label key "a b": {NAME_PART}',
            )
        ],
    ),
    (
        "expression value",
        lambda d: policy(d, 1)["podSelector"]["matchExpressions"][0].update(values=["ok", "n o"]),
        [
            (
                "spec.policies[1].spec.podSelector.matchExpressions[0].values[1]",
                f'invalid label value "n o": {LABEL_VALUE}',
            )
        ],
    ),
    # policies
    (
        "policy unique per namespace",
        lambda d: d["spec"]["policies"][1]["metadata"].update(name="web-ingress"),
        [
            (
                "spec.policies[1].metadata.name",
                "policy shop/web-ingress is already declared by spec.policies[0]",
            )
        ],
    ),
    (
        "policy kind",
        lambda d: d["spec"]["policies"][0].update(kind="NetworkPolicyList"),
        [("spec.policies[0].kind", 'expected "NetworkPolicy", got "NetworkPolicyList"')],
    ),
    (
        "policy apiVersion",
        lambda d: d["spec"]["policies"][0].update(apiVersion="extensions/v1beta1"),
        [
            (
                "spec.policies[0].apiVersion",
                'expected "networking.k8s.io/v1", got "extensions/v1beta1"',
            )
        ],
    ),
    (
        "policyTypes duplicate",
        lambda d: policy(d, 1).update(policyTypes=["Egress", "Ingress", "Egress"]),
        [("spec.policies[1].spec.policyTypes[2]", 'duplicate policyType "Egress"')],
    ),
    (
        "empty peer",
        lambda d: backend_peer(d, 0).clear(),
        [
            (
                "spec.policies[1].spec.ingress[0].from[0]",
                "a peer must set at least one of podSelector, namespaceSelector or ipBlock",
            )
        ],
    ),
    (
        "ipBlock with namespaceSelector",
        lambda d: policy(d, 1)["egress"][0]["to"][0].update(namespaceSelector={}),
        [
            (
                "spec.policies[1].spec.egress[0].to[0].ipBlock",
                "ipBlock cannot be combined with podSelector or namespaceSelector",
            )
        ],
    ),
    (
        "ipBlock host bits",
        lambda d: ip_block(d).update(cidr="10.0.0.1/8"),
        [
            (
                "spec.policies[1].spec.egress[0].to[0].ipBlock.cidr",
                'CIDR "10.0.0.1/8" has host bits set; did you mean "10.0.0.0/8"?',
            )
        ],
    ),
    (
        "ipBlock IPv6 is fine",
        lambda d: ip_block(d).update(cidr="fd00::/8", **{"except": ["fd00:1::/32"]}),
        [],
    ),
    (
        "except outside",
        lambda d: ip_block(d).update(**{"except": ["11.0.0.0/16"]}),
        [
            (
                "spec.policies[1].spec.egress[0].to[0].ipBlock.except[0]",
                "except 11.0.0.0/16 is not inside cidr 10.0.0.0/8",
            )
        ],
    ),
    (
        "except equal",
        lambda d: ip_block(d).update(**{"except": ["10.0.0.0/8"]}),
        [
            (
                "spec.policies[1].spec.egress[0].to[0].ipBlock.except[0]",
                "except 10.0.0.0/8 must be strictly inside cidr 10.0.0.0/8, not equal to it",
            )
        ],
    ),
    (
        "except family",
        lambda d: ip_block(d).update(**{"except": ["::/0"]}),
        [
            (
                "spec.policies[1].spec.egress[0].to[0].ipBlock.except[0]",
                "except ::/0 is IPv6 but cidr 10.0.0.0/8 is IPv4",
            )
        ],
    ),
    (
        "except host bits",
        lambda d: ip_block(d).update(**{"except": ["10.1.0.1/16"]}),
        [
            (
                "spec.policies[1].spec.egress[0].to[0].ipBlock.except[0]",
                'CIDR "10.1.0.1/16" has host bits set; did you mean "10.1.0.0/16"?',
            )
        ],
    ),
    (
        "named port",
        lambda d: egress_port(d).update(port="postgres-"),
        [
            (
                "spec.policies[1].spec.egress[0].ports[0].port",
                'invalid named port "postgres-": must not begin or end with a hyphen',
            ),
            ("spec.policies[1].spec.egress[0].ports[0].endPort", "endPort requires a numeric port"),
        ],
    ),
    (
        "policy port range",
        lambda d: egress_port(d).update(port=0),
        [("spec.policies[1].spec.egress[0].ports[0].port", "must be between 1 and 65535, got 0")],
    ),
    (
        "policy protocol",
        lambda d: egress_port(d).update(protocol="ICMP"),
        [
            (
                "spec.policies[1].spec.egress[0].ports[0].protocol",
                'expected one of "TCP", "UDP", "SCTP", got "ICMP"',
            )
        ],
    ),
    (
        "endPort below port",
        lambda d: egress_port(d).update(endPort=5431),
        [
            (
                "spec.policies[1].spec.egress[0].ports[0].endPort",
                "endPort 5431 is less than port 5432",
            )
        ],
    ),
    ("endPort equal port is fine", lambda d: egress_port(d).update(endPort=5432), []),
    (
        "endPort without port",
        lambda d: egress_port(d).pop("port"),
        [("spec.policies[1].spec.egress[0].ports[0].endPort", "endPort requires a numeric port")],
    ),
    (
        "endPort too big",
        lambda d: egress_port(d).update(endPort=65536),
        [
            (
                "spec.policies[1].spec.egress[0].ports[0].endPort",
                "must be between 1 and 65535, got 65536",
            )
        ],
    ),
    # services
    (
        "clusterIP outside",
        lambda d: service(d, 0).update(clusterIP="10.244.9.9"),
        [
            (
                "spec.services[0].clusterIP",
                "clusterIP 10.244.9.9 is outside the serviceCIDR 10.96.0.0/16",
            )
        ],
    ),
    (
        "clusterIP network address",
        lambda d: service(d, 0).update(clusterIP="10.96.0.0"),
        [
            (
                "spec.services[0].clusterIP",
                "clusterIP 10.96.0.0 is the network address of the serviceCIDR 10.96.0.0/16",
            )
        ],
    ),
    (
        "clusterIP unique",
        lambda d: service(d, 1).update(clusterIP="10.96.0.10"),
        [
            (
                "spec.services[1].clusterIP",
                "clusterIP 10.96.0.10 is already used by spec.services[0].clusterIP",
            )
        ],
    ),
    (
        "clusterIP IPv6",
        lambda d: service(d, 1).update(clusterIP="fd00::10"),
        [
            (
                "spec.services[1].clusterIP",
                'IPv6 cluster IP "fd00::10" is not supported yet (IPv4 only)',
            )
        ],
    ),
    (
        "service unique per namespace",
        lambda d: service(d, 1).update(name="web"),
        [("spec.services[1].name", "service shop/web is already declared by spec.services[0]")],
    ),
    (
        "service port unique",
        lambda d: service(d, 1)["ports"][1].update(port=9000, protocol="TCP"),
        [
            (
                "spec.services[1].ports[1].port",
                "port 9000/TCP is already used by spec.services[1].ports[0]",
            )
        ],
    ),
    (
        "service port names unique",
        lambda d: service(d, 1)["ports"][1].update(name="api"),
        [
            (
                "spec.services[1].ports[1].name",
                'port name "api" is already used by spec.services[1].ports[0]',
            )
        ],
    ),
    (
        "service port name required",
        lambda d: service(d, 1)["ports"][0].pop("name"),
        [("spec.services[1].ports[0]", "ports need a name when a service has more than one port")],
    ),
    ("single port needs no name", lambda d: service(d, 0)["ports"][0].pop("name"), []),
    (
        "service port name syntax",
        lambda d: service(d, 0)["ports"][0].update(name="9000"),
        [
            (
                "spec.services[0].ports[0].name",
                'invalid port name "9000": must contain at least one letter (a-z)',
            )
        ],
    ),
    (
        "targetPort name",
        lambda d: service(d, 0)["ports"][0].update(targetPort="HTTP"),
        [
            (
                "spec.services[0].ports[0].targetPort",
                f'invalid targetPort name "HTTP": {PORT_CHARS}; '
                "must contain at least one letter (a-z)",
            )
        ],
    ),
    (
        "targetPort range",
        lambda d: service(d, 0)["ports"][0].update(targetPort=65536),
        [("spec.services[0].ports[0].targetPort", "must be between 1 and 65535, got 65536")],
    ),
    (
        "nodePort on ClusterIP",
        lambda d: service(d, 0)["ports"][0].update(nodePort=30001),
        [
            (
                "spec.services[0].ports[0].nodePort",
                "nodePort is only allowed for services of type NodePort",
            )
        ],
    ),
    (
        "nodePort unique",
        lambda d: (
            service(d, 0).update(type="NodePort"),
            service(d, 0)["ports"][0].update(nodePort=30900),
        ),
        [
            (
                "spec.services[1].ports[0].nodePort",
                "nodePort 30900/TCP is already used by spec.services[0].ports[0]",
            )
        ],
    ),
    (
        "nodePort other protocol is fine",
        lambda d: service(d, 1)["ports"][1].update(nodePort=30900),
        [],
    ),
    (
        "externalTrafficPolicy on ClusterIP",
        lambda d: service(d, 0).update(externalTrafficPolicy="Cluster"),
        [
            (
                "spec.services[0].externalTrafficPolicy",
                "externalTrafficPolicy is only allowed for services of type NodePort",
            )
        ],
    ),
    (
        "affinity config without ClientIP",
        lambda d: service(d, 1).update(sessionAffinity="None"),
        [
            (
                "spec.services[1].sessionAffinityConfig",
                "sessionAffinityConfig is only allowed with sessionAffinity: ClientIP",
            )
        ],
    ),
    (
        "affinity timeout",
        lambda d: service(d, 1)["sessionAffinityConfig"]["clientIP"].update(timeoutSeconds=0),
        [
            (
                "spec.services[1].sessionAffinityConfig.clientIP.timeoutSeconds",
                "must be between 1 and 86400, got 0",
            )
        ],
    ),
    (
        "headless",
        lambda d: service(d, 0).update(clusterIP="None"),
        [("spec.services[0].clusterIP", 'headless services (clusterIP: "None") are not supported')],
    ),
    # wireguard and secrets
    (
        "public key not base64",
        lambda d: wg(d)["nodes"]["node-1"].update(publicKey="abc"),
        [
            (
                'spec.encryption.wireguard.nodes["node-1"].publicKey',
                "invalid publicKey: expected base64 of 32 bytes (wg pubkey output)",
            )
        ],
    ),
    (
        "public key wrong length",
        lambda d: wg(d)["nodes"]["node-1"].update(
            publicKey="AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg=="
        ),
        [
            (
                'spec.encryption.wireguard.nodes["node-1"].publicKey',
                "invalid publicKey: expected base64 of 32 bytes (wg pubkey output)",
            )
        ],
    ),
    (
        "public key unique",
        lambda d: wg(d)["nodes"]["node-2"].update(publicKey=KEY1),
        [
            (
                'spec.encryption.wireguard.nodes["node-2"].publicKey',
                'publicKey is already used by node "node-1"',
            )
        ],
    ),
    (
        "private key file relative",
        lambda d: wg(d)["nodes"]["node-2"].update(privateKeyFile="key"),
        [
            (
                'spec.encryption.wireguard.nodes["node-2"].privateKeyFile',
                "privateKeyFile must be an absolute path",
            )
        ],
    ),
    (
        "private key pasted",
        lambda d: wg(d)["nodes"]["node-2"].update(privateKeyFile=PRIVATE),
        [('spec.encryption.wireguard.nodes["node-2"].privateKeyFile', PRIVATE_KEY_MESSAGE)],
    ),
    (
        "private key pasted starting with a slash",
        lambda d: wg(d)["nodes"]["node-2"].update(privateKeyFile="/" + PRIVATE[1:]),
        [('spec.encryption.wireguard.nodes["node-2"].privateKeyFile', PRIVATE_KEY_MESSAGE)],
    ),
    (
        "privateKey field",
        lambda d: wg(d)["nodes"]["node-2"].update(privateKey=PRIVATE),
        [('spec.encryption.wireguard.nodes["node-2"].privateKey', PRIVATE_KEY_MESSAGE)],
    ),
    (
        "private_key field elsewhere",
        lambda d: node(d, 0).update(private_key="x"),
        [("spec.nodes[0].private_key", PRIVATE_KEY_MESSAGE)],
    ),
    (
        "privateKey field inside a bad value",
        lambda d: wg(d).update(privateKey={"bad": [PRIVATE]}),
        [("spec.encryption.wireguard.privateKey", PRIVATE_KEY_MESSAGE)],
    ),
    (
        "wireguard unknown node",
        lambda d: wg(d)["nodes"].update({"node-7": wg(d)["nodes"].pop("node-2")}),
        [
            (
                'spec.encryption.wireguard.nodes["node-7"]',
                'node "node-7" is not declared in spec.nodes',
            ),
            (
                "spec.encryption.wireguard.nodes",
                'node "node-2" has no WireGuard entry (required when enabled)',
            ),
        ],
    ),
    (
        "wireguard missing node",
        lambda d: wg(d)["nodes"].pop("node-1"),
        [
            (
                "spec.encryption.wireguard.nodes",
                'node "node-1" has no WireGuard entry (required when enabled)',
            )
        ],
    ),
    ("wireguard disabled needs no entries", lambda d: wg(d).update(enabled=False, nodes={}), []),
    (
        "wireguard enabled required",
        lambda d: wg(d).pop("enabled"),
        [("spec.encryption.wireguard.enabled", 'missing required field "enabled"')],
    ),
]


@pytest.mark.parametrize(("mutate", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_check(mutate: Mutation, expected: list[tuple[str, str]]) -> None:
    d = shop()
    mutate(d)
    assert sorted(errors(d)) == sorted(expected)


def test_baseline_is_valid() -> None:
    assert errors(shop()) == []


def test_private_key_never_echoed() -> None:
    d = shop()
    d["spec"]["namespaces"][0]["labels"]["privateKey"] = PRIVATE
    d["spec"]["encryption"]["wireguard"]["nodes"]["node-1"]["privateKeyFile"] = PRIVATE
    d["spec"]["encryption"]["wireguard"]["nodes"]["node-2"]["privateKey"] = {"k": PRIVATE}
    found = errors(d)
    assert [m for _, m in found] == [PRIVATE_KEY_MESSAGE] * 3
    assert all(PRIVATE not in m and PRIVATE[:20] not in p for p, m in found)


def test_semantic_checks_run_despite_schema_errors() -> None:
    d = shop()
    d["spec"]["nodes"][0]["extra"] = 1  # schema error
    d["spec"]["workloads"] = "not a list"  # schema error, unreadable section
    d["spec"]["services"][0]["clusterIP"] = "10.97.0.1"  # semantic error
    assert sorted(errors(d)) == [
        ("spec.nodes[0].extra", 'unknown field "extra"'),
        (
            "spec.services[0].clusterIP",
            "clusterIP 10.97.0.1 is outside the serviceCIDR 10.96.0.0/16",
        ),
        ("spec.workloads", "expected list, got string"),
    ]


def test_unreadable_nodes_do_not_cascade() -> None:
    d = shop()
    d["spec"]["nodes"][1] = "node-2"
    assert errors(d) == [("spec.nodes[1]", "expected mapping, got string")]
