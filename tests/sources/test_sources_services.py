"""Translating Services: types, cluster IPs, selectors, ports, and what netcc cannot serve."""

from __future__ import annotations

from netcc.sources.manifests import read_stream
from netcc.sources.translate import Translation, translate


def tr(spec: str) -> Translation:
    head = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\nspec:\n"
    text = head + spec
    return translate(read_stream(text, "svc.yaml"))


def notes(t: Translation) -> list[tuple[str, str, str, int, int]]:
    """Findings other than the namespace's note."""
    return [
        (f.severity, f.message, f.path, *f.manifest.locate(f.path))
        for f in t.findings
        if "Namespace object" not in f.message
    ]


def test_cluster_ip_service_with_defaults() -> None:
    t = tr("  selector: {app: web}\n  ports:\n    - port: 80\n    - name: dns\n      port: 53\n"
           "      targetPort: dns\n      protocol: UDP\n")  # fmt: skip
    (s,) = t.services
    assert s.kind == "service"
    assert s.doc == {
        "name": "web",
        "namespace": "shop",
        "selector": {"app": "web"},
        "ports": [
            {"port": 80, "targetPort": 80, "protocol": "TCP"},
            {"name": "dns", "port": 53, "targetPort": "dns", "protocol": "UDP"},
        ],
    }
    assert s.origin("ports[1].targetPort") == ("svc.yaml", 12, 19)
    assert s.origin("ports[0].targetPort") == ("svc.yaml", 9, 7)  # defaulted: at its port
    assert s.origin("selector.app") == ("svc.yaml", 7, 19)
    assert s.origin("clusterIP") == ("svc.yaml", 4, 3)  # to be assigned: at the metadata
    assert s.origin("name") == ("svc.yaml", 4, 9)
    assert notes(t) == []
    assert [n.doc["name"] for n in t.namespaces] == ["shop"]


def test_node_port_service_keeps_what_netcc_has() -> None:
    spec = """\
  type: NodePort
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10]
  ipFamilies: [IPv4]
  ipFamilyPolicy: SingleStack
  selector: {app: web}
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}
  externalTrafficPolicy: Local
  internalTrafficPolicy: Local
  publishNotReadyAddresses: false
  ports:
    - {name: http, port: 80, targetPort: 8080, nodePort: 30080}
    - {name: https, port: 443, nodePort: 0}
"""
    t = tr(spec)
    (s,) = t.services
    assert s.doc == {
        "name": "web",
        "namespace": "shop",
        "type": "NodePort",
        "clusterIP": "10.96.0.10",
        "selector": {"app": "web"},
        "ports": [
            {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 30080},
            {"name": "https", "port": 443, "targetPort": 443, "protocol": "TCP"},
        ],
        "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
        "externalTrafficPolicy": "Local",
        "internalTrafficPolicy": "Local",
    }
    assert s.origin("type") == ("svc.yaml", 7, 9)
    assert s.origin("clusterIP") == ("svc.yaml", 8, 14)
    assert s.origin("sessionAffinityConfig.clientIP.timeoutSeconds") == ("svc.yaml", 14, 54)
    assert s.origin("ports[0].nodePort") == ("svc.yaml", 19, 58)
    assert notes(t) == []


def test_cluster_ips_when_cluster_ip_is_absent() -> None:
    (s,) = tr("  clusterIPs: [10.96.0.7, fd00::7]\n  ports: [{port: 1}]\n").services
    assert s.doc["clusterIP"] == "10.96.0.7"
    assert s.origin("clusterIP") == ("svc.yaml", 7, 16)
    (s,) = tr("  clusterIP: ''\n  ports: [{port: 1}]\n").services
    assert "clusterIP" not in s.doc


def test_load_balancer_is_a_node_port() -> None:
    t = tr("  type: LoadBalancer\n  loadBalancerIP: 1.2.3.4\n  loadBalancerSourceRanges: "
           "[10.0.0.0/8]\n  selector: {app: web}\n  ports: [{port: 80}]\n")  # fmt: skip
    (s,) = t.services
    assert s.doc["type"] == "NodePort"
    assert "loadBalancerIP" not in s.doc
    assert notes(t) == [
        (
            "note",
            "Service shop/web: type LoadBalancer is translated as NodePort: the cloud load "
            "balancer is not netcc's; its nodePorts are",
            "spec.type",
            7,
            9,
        ),
        (
            "note",
            "Service shop/web: loadBalancerSourceRanges are not enforced: netcc's nodePorts take "
            "every client",
            "spec.loadBalancerSourceRanges",
            9,
            29,
        ),
    ]


def test_external_name_is_an_error() -> None:
    t = tr("  type: ExternalName\n  externalName: db.example.com\n")
    assert (t.services, t.namespaces) == ([], [])
    assert notes(t) == [
        (
            "error",
            "Service shop/web: ExternalName services are DNS only; netcc cannot translate them "
            "(it has no address to route)",
            "spec.type",
            7,
            9,
        )
    ]


def test_headless_services_are_left_out_with_a_note() -> None:
    for spec in ("  clusterIP: None\n", "  clusterIPs: [None]\n"):
        t = tr(spec + "  selector: {app: db}\n  ports: [{port: 5432}]\n")
        assert (t.services, t.namespaces) == ([], [])
        ((severity, message, path, line, _),) = notes(t)
        assert (severity, line) == ("note", 7)
        assert message == (
            "Service shop/web: headless (clusterIP: None): no virtual IP to translate; its pods "
            "are classes"
        )
        assert path in ("spec.clusterIP", "spec.clusterIPs[0]")


def test_services_without_selector_have_no_backends() -> None:
    for spec in ("  ports: [{port: 80}]\n", "  selector: {}\n  ports: [{port: 80}]\n"):
        t = tr(spec)
        (s,) = t.services
        assert "selector" not in s.doc
        ((severity, message, _, at, _),) = notes(t)
        assert (severity, at) == ("note", 7)
        assert message == (
            "Service shop/web: no selector: netcc gives it no backends (endpoints managed "
            "elsewhere are not served)"
        )


def test_external_ips_and_ipv6_only_services_are_noted() -> None:
    t = tr("  externalIPs: [192.0.2.1]\n  ipFamilies: [IPv6]\n  selector: {a: b}\n"
           "  ports: [{port: 80}]\n")  # fmt: skip
    assert [(n[1].split(": ", 1)[1], n[3]) for n in notes(t)] == [
        ("externalIPs are not served: netcc routes the cluster IP and nodePorts only", 7),
        ("netcc gives it an IPv4 cluster IP (ipFamilies names no IPv4)", 8),
    ]


def test_malformed_values_are_left_to_validation() -> None:
    (s,) = tr("  selector: {app: 1}\n  ports: {port: 80}\n  type: Magic\n").services
    assert s.doc["selector"] == {"app": 1}
    assert s.doc["ports"] == {"port": 80}
    assert s.doc["type"] == "Magic"
    assert s.origin("ports.port") == ("svc.yaml", 8, 17)
    (s,) = tr("  selector: {app: web}\n").services
    assert "ports" not in s.doc
    t = tr("  - 1\n")
    assert [n[1:3] for n in notes(t)] == [
        ("Service shop/web: spec must be a mapping, got a list", "spec")
    ]


def test_entries_share_nothing_with_the_manifests() -> None:
    t = tr("  selector: {app: web}\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 5}}\n"
           "  ports: [{port: 80}]\n")  # fmt: skip
    (s,) = t.services
    s.doc["selector"]["app"] = "x"
    s.doc["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] = 6
    s.doc["ports"][0]["nodePort"] = 30000
    assert s.manifest.obj["spec"] == {
        "selector": {"app": "web"},
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}},
        "ports": [{"port": 80}],
    }
