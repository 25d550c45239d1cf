"""Raw validated document -> `netcc.model.types.Cluster`.

Only called on documents that passed validation, so it trusts types and references; defaults are
applied here, the way Kubernetes applies them.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, ip_network
from typing import Any

from netcc.diagnostics import join_key, join_path
from netcc.model.types import (
    DEFAULT_NAMESPACE,
    DEFAULT_PER_NODE,
    NAMESPACE_NAME_LABEL,
    Cluster,
    ContainerPort,
    Deploy,
    IPBlock,
    IPsec,
    IPsecKey,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Node,
    Observability,
    Peer,
    PolicyPort,
    Requirement,
    Rule,
    Service,
    ServicePort,
    WireGuard,
    WireGuardNode,
    Workload,
    WorkloadClass,
    labels_of,
)

DEFAULT_AFFINITY_TIMEOUT = 10800
DEFAULT_WIREGUARD_PORT = 51871
DEFAULT_UNDERLAY_MTU = 1500
DEFAULT_KEEPALIVE = 25


def build_cluster(document: dict[str, Any]) -> Cluster:
    """The model of a validated document; objects keep their spec order and path."""
    spec = document["spec"]
    default_namespace = spec.get("defaultNamespace", DEFAULT_NAMESPACE)
    return Cluster(
        name=document["metadata"]["name"],
        pod_cidr=IPv4Network(spec["podCIDR"]),
        service_cidr=IPv4Network(spec["serviceCIDR"]),
        nodes=tuple(_node(n, f"spec.nodes[{i}]") for i, n in enumerate(spec["nodes"])),
        namespaces=tuple(
            _namespace(n, f"spec.namespaces[{i}]") for i, n in enumerate(spec.get("namespaces", []))
        ),
        workloads=tuple(
            _workload(w, f"spec.workloads[{i}]")
            for i, w in enumerate(spec.get("workloads", []))
            if not is_class(w)
        ),
        classes=tuple(
            _class(w, f"spec.workloads[{i}]")
            for i, w in enumerate(spec.get("workloads", []))
            if is_class(w)
        ),
        services=tuple(
            _service(s, f"spec.services[{i}]") for i, s in enumerate(spec.get("services", []))
        ),
        policies=tuple(
            _policy(p, f"spec.policies[{i}]", default_namespace)
            for i, p in enumerate(spec.get("policies", []))
        ),
        wireguard=_wireguard(spec.get("encryption", {}).get("wireguard")),
        ipsec=_ipsec(spec.get("encryption", {}).get("ipsec")),
        deploy=_deploy(spec.get("deploy")),
        observability=_observability(spec.get("observability", {}).get("flowEvents", {})),
        default_namespace=default_namespace,
    )


def _node(node: dict[str, Any], path: str) -> Node:
    return Node(
        name=node["name"],
        address=IPv4Address(node["address"]),
        pod_cidr=IPv4Network(node["podCIDR"]),
        path=path,
    )


def _namespace(namespace: dict[str, Any], path: str) -> Namespace:
    labels = {**namespace.get("labels", {}), NAMESPACE_NAME_LABEL: namespace["name"]}
    return Namespace(name=namespace["name"], labels=labels_of(labels), path=path)


def is_class(workload: dict[str, Any]) -> bool:
    """A workload without `ips` and `node` is a class (pods scheduled at runtime)."""
    return "ips" not in workload and "node" not in workload


def _ports(workload: dict[str, Any]) -> tuple[ContainerPort, ...]:
    return tuple(
        ContainerPort(port=p["port"], protocol=p.get("protocol", "TCP"), name=p.get("name"))
        for p in workload.get("ports", [])
    )


def _workload(workload: dict[str, Any], path: str) -> Workload:
    return Workload(
        name=workload["name"],
        namespace=workload["namespace"],
        node=workload["node"],
        labels=labels_of(workload.get("labels", {})),
        ips=tuple(IPv4Address(ip) for ip in workload["ips"]),
        ports=_ports(workload),
        path=path,
    )


def _class(workload: dict[str, Any], path: str) -> WorkloadClass:
    return WorkloadClass(
        name=workload["name"],
        namespace=workload["namespace"],
        labels=labels_of(workload.get("labels", {})),
        ports=_ports(workload),
        per_node=workload.get("perNode", DEFAULT_PER_NODE),
        path=path,
    )


def _service(service: dict[str, Any], path: str) -> Service:
    client_ip = service.get("sessionAffinityConfig", {}).get("clientIP", {})
    return Service(
        name=service["name"],
        namespace=service["namespace"],
        type=service.get("type", "ClusterIP"),
        cluster_ip=IPv4Address(service["clusterIP"]),
        selector=labels_of(service.get("selector", {})),
        ports=tuple(
            ServicePort(
                port=p["port"],
                target_port=p.get("targetPort", p["port"]),
                protocol=p.get("protocol", "TCP"),
                name=p.get("name"),
                node_port=p.get("nodePort"),
            )
            for p in service["ports"]
        ),
        session_affinity=service.get("sessionAffinity", "None"),
        session_affinity_timeout=client_ip.get("timeoutSeconds", DEFAULT_AFFINITY_TIMEOUT),
        external_traffic_policy=service.get("externalTrafficPolicy", "Cluster"),
        internal_traffic_policy=service.get("internalTrafficPolicy", "Cluster"),
        path=path,
    )


def _wireguard(wireguard: dict[str, Any] | None) -> WireGuard | None:
    if wireguard is None:
        return None
    path = "spec.encryption.wireguard"
    nodes_path = join_key(path, "nodes")
    return WireGuard(
        enabled=wireguard["enabled"],
        listen_port=wireguard.get("listenPort", DEFAULT_WIREGUARD_PORT),
        nodes=tuple(
            WireGuardNode(
                node=name,
                public_key=entry["publicKey"],
                private_key_file=entry["privateKeyFile"],
                path=join_key(nodes_path, name),
            )
            for name, entry in wireguard.get("nodes", {}).items()
        ),
        underlay_mtu=wireguard.get("underlayMTU", DEFAULT_UNDERLAY_MTU),
        persistent_keepalive=wireguard.get("persistentKeepalive", DEFAULT_KEEPALIVE),
        path=path,
    )


def _ipsec(ipsec: dict[str, Any] | None) -> IPsec | None:
    """spec.encryption.ipsec, defaults filled in (see `IPsec`)."""
    if ipsec is None:
        return None
    path = "spec.encryption.ipsec"
    default = IPsec()
    keys = ipsec.get("keys")
    return IPsec(
        enabled=ipsec["enabled"],
        cipher=ipsec.get("cipher", default.cipher),
        key_bits=ipsec.get("keyBits", default.key_bits),
        icv_bits=ipsec.get("icvBits", default.icv_bits),
        underlay_mtu=ipsec.get("underlayMTU", default.underlay_mtu),
        key_directory=ipsec.get("keyDirectory", default.key_directory),
        replay_window=ipsec.get("replayWindow", default.replay_window),
        accept_plaintext=ipsec.get("acceptPlaintext", default.accept_plaintext),
        removed_key_grace=ipsec.get("removedKeyGraceSeconds", default.removed_key_grace),
        keys=default.keys
        if keys is None
        else tuple(
            IPsecKey(k["id"], k["state"], k.get("fingerprint"), f"{path}.keys[{i}]")
            for i, k in enumerate(keys)
        ),
        path=path,
    )


def _observability(events: dict[str, Any]) -> Observability:
    """spec.observability.flowEvents, defaults filled in."""
    default = Observability()
    return Observability(
        flow_events=events.get("enabled", default.flow_events),
        rate_per_cpu=events.get("ratePerCPU", default.rate_per_cpu),
        burst_per_cpu=events.get("burstPerCPU", default.burst_per_cpu),
    )


def _deploy(deploy: dict[str, Any] | None) -> Deploy:
    """spec.deploy; an absent image is the release of this netcc (see `Deploy`)."""
    if deploy is None:
        return Deploy()
    image = deploy.get("image")
    return Deploy(path="spec.deploy") if image is None else Deploy(image, "spec.deploy")


def selector(raw: dict[str, Any]) -> LabelSelector:
    """metav1.LabelSelector; requirement values sorted and deduplicated, as Kubernetes does."""
    return LabelSelector(
        match_labels=labels_of(raw.get("matchLabels", {})),
        match_expressions=tuple(
            Requirement(e["key"], e["operator"], tuple(sorted(set(e.get("values", [])))))
            for e in raw.get("matchExpressions", [])
        ),
    )


def policy_types(spec: dict[str, Any]) -> tuple[str, ...]:
    """policyTypes as Kubernetes defaults them: absent (or empty) means Ingress, plus Egress when
    there is at least one egress rule."""
    given = spec.get("policyTypes") or ["Ingress", *(["Egress"] if spec.get("egress") else [])]
    return tuple(t for t in ("Ingress", "Egress") if t in given)


def _policy(policy: dict[str, Any], path: str, default_namespace: str) -> NetworkPolicy:
    """As Kubernetes reads it: an absent spec or podSelector is the empty one; an absent
    namespace is where `kubectl apply -n DEFAULT` puts the policy."""
    metadata = policy["metadata"]
    spec = policy.get("spec", {})
    spec_path = join_key(path, "spec")
    return NetworkPolicy(
        name=metadata["name"],
        namespace=metadata.get("namespace", default_namespace),
        pod_selector=selector(spec.get("podSelector", {})),
        policy_types=policy_types(spec),
        ingress=_rules(spec.get("ingress", []), "ingress", "from", spec_path),
        egress=_rules(spec.get("egress", []), "egress", "to", spec_path),
        path=path,
        namespace_defaulted="namespace" not in metadata,
    )


def _rules(
    rules: list[dict[str, Any]], direction: str, peers: str, spec_path: str
) -> tuple[Rule, ...]:
    return tuple(
        Rule(
            direction=direction,
            index=i,
            peers=tuple(_peer(p) for p in rule.get(peers, [])),
            ports=tuple(_port(p) for p in rule.get("ports", [])),
            path=join_path(spec_path, direction, i),
        )
        for i, rule in enumerate(rules)
    )


def _peer(peer: dict[str, Any]) -> Peer:
    block = peer.get("ipBlock")
    return Peer(
        pod_selector=selector(peer["podSelector"]) if "podSelector" in peer else None,
        namespace_selector=(
            selector(peer["namespaceSelector"]) if "namespaceSelector" in peer else None
        ),
        ip_block=(
            IPBlock(
                cidr=ip_network(block["cidr"]),
                excepts=tuple(ip_network(e) for e in block.get("except", [])),
            )
            if block is not None
            else None
        ),
    )


def _port(port: dict[str, Any]) -> PolicyPort:
    return PolicyPort(
        protocol=port.get("protocol", "TCP"),
        port=port.get("port"),
        end_port=port.get("endPort"),
    )
