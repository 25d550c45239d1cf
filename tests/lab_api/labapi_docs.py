"""Hand-written `services.json` documents and pod records for the lab API tests.

Two nodes (n1: 10.1.0.0/24, n2: 10.1.1.0/24). shop/web has two ports: `http` (80), backed by
class shop/web (block offset 32, size 16, targetPort 8080) and class shop/canary (offset 48,
size 16, targetPort 9090), and `metrics` (9100), backed by shop/web only. shop/db (5432)
is backed by class shop/db (offset 64, size 16, targetPort 5432).
"""

from __future__ import annotations

import json
from typing import Any

WEB = {"class": "shop/web", "offset": 32, "size": 16, "targetPort": 8080}
CANARY = {"class": "shop/canary", "offset": 48, "size": 16, "targetPort": 9090}


def port(service: str, name: str, number: int, selector: dict, classes: list, ip: str) -> dict:
    return {
        "service": service, "portName": name, "port": number, "protocol": "TCP",
        "clusterIP": ip, "nodePort": None, "sessionAffinity": "None",
        "internalTrafficPolicy": "Cluster", "externalTrafficPolicy": "Cluster",
        "selector": selector, "rows": {"cluster": 1}, "classes": classes, "static": [],
    }  # fmt: skip


def services_doc(web_target: int = 8080, db: bool = True) -> dict[str, Any]:
    web = {**WEB, "targetPort": web_target}
    ports = [
        port("shop/web", "http", 80, {"app": "web"}, [web, CANARY], "10.96.0.10"),
        port("shop/web", "metrics", 9100, {"app": "web"}, [{**WEB, "targetPort": 9100}],
             "10.96.0.10"),
    ]  # fmt: skip
    if db:
        db_class = {"class": "shop/db", "offset": 64, "size": 16, "targetPort": 5432}
        ports.append(port("shop/db", "", 5432, {"app": "db"}, [db_class], "10.96.0.20"))
    return {
        "servicesVersion": 1,
        "backendBase": 1 << 20,
        "maglevSize": 7,
        "targetPorts": [[5432, "TCP"], [8080, "TCP"], [9090, "TCP"], [9100, "TCP"]],
        "nodes": [
            {"node": "n1", "podCIDR": "10.1.0.0/24", "index": 0},
            {"node": "n2", "podCIDR": "10.1.1.0/24", "index": 256},
        ],
        "ports": ports,
    }


def services_bytes(**kw: Any) -> bytes:
    return json.dumps(services_doc(**kw)).encode()


def pod(
    name: str,
    ip: str | None,
    ready: bool = True,
    app: str = "web",
    namespace: str = "shop",
    node: str = "n1",
) -> dict[str, Any]:
    doc = {
        "namespace": namespace, "name": name, "uid": f"uid-{name}", "node": node,
        "labels": {"app": app, "tier": "x"}, "ready": ready,
    }  # fmt: skip
    if ip is not None:
        doc["ip"] = ip
    return doc


def pods(*records: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{p['namespace']}/{p['name']}": p for p in records}
