"""Property tests: generated valid specs always parse; nothing else ever escapes but SpecError."""

from __future__ import annotations

import base64
import copy
from typing import Any

from frontend_helpers import SHOP_TEXT, dump, shop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netcc.diagnostics import SpecError
from netcc.frontend import INTERNAL_ERROR, parse_spec
from netcc.model import Cluster

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- building blocks -------------------------------------------------------------------------

ALNUM = "abcxyzABZ0189"
alnum = st.sampled_from(ALNUM)
dns_label = st.builds(
    lambda first, rest: first + (f"-{rest}" if rest else ""),
    st.sampled_from("abcxyz"),
    st.text(alphabet="abcxyz019", max_size=5),
)
label_name = st.builds(
    lambda first, middle, last: first + (middle + last if middle else ""),
    alnum,
    st.text(alphabet=ALNUM + "._-", max_size=4),
    alnum,
)
label_key = st.one_of(label_name, st.builds(lambda p, n: f"{p}.io/{n}", dns_label, label_name))
label_value = st.one_of(st.just(""), label_name)
labels = st.dictionaries(label_key, label_value, max_size=3)
port_name = st.builds(
    lambda first, middle, last: first + middle + (f"-{last}" if last else ""),
    st.sampled_from("abhpt"),
    st.text(alphabet="abc019", max_size=4),
    st.text(alphabet="abc019", max_size=4),
)
port_number = st.integers(1, 65535)
protocol = st.sampled_from(["TCP", "UDP", "SCTP"])

requirement = st.one_of(
    st.fixed_dictionaries(
        {
            "key": label_key,
            "operator": st.sampled_from(["In", "NotIn"]),
            "values": st.lists(label_value, min_size=1, max_size=3),
        }
    ),
    st.fixed_dictionaries(
        {"key": label_key, "operator": st.sampled_from(["Exists", "DoesNotExist"])}
    ),
)
selector = st.fixed_dictionaries(
    {}, optional={"matchLabels": labels, "matchExpressions": st.lists(requirement, max_size=2)}
)


@st.composite
def ip_block(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        a = draw(st.integers(0, 255))
        excepts = draw(st.lists(st.integers(0, 255), unique=True, max_size=2))
        block = {"cidr": f"10.{a}.0.0/16", "except": [f"10.{a}.{b}.0/24" for b in excepts]}
    else:
        a = draw(st.integers(0, 0xFFFF))
        block = {"cidr": f"fd00:{a:x}::/32", "except": [f"fd00:{a:x}:1::/48"]}
    if not draw(st.booleans()):
        del block["except"]
    return block


peer = st.one_of(
    st.fixed_dictionaries({"podSelector": selector}),
    st.fixed_dictionaries({"namespaceSelector": selector}),
    st.fixed_dictionaries({"podSelector": selector, "namespaceSelector": selector}),
    st.fixed_dictionaries({"ipBlock": ip_block()}),
)


@st.composite
def policy_port(draw: st.DrawFn) -> dict[str, Any]:
    port: dict[str, Any] = draw(st.fixed_dictionaries({}, optional={"protocol": protocol}))
    kind = draw(st.sampled_from(["none", "number", "name", "range"]))
    if kind == "name":
        port["port"] = draw(port_name)
    elif kind != "none":
        port["port"] = draw(port_number)
        if kind == "range":
            port["endPort"] = draw(st.integers(port["port"], 65535))
    return port


def rule(peers_key: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            peers_key: st.lists(peer, max_size=3),
            "ports": st.lists(policy_port(), max_size=3),
        },
    )


@st.composite
def unique_ports(draw: st.DrawFn, max_size: int) -> list[dict[str, Any]]:
    pairs = draw(st.lists(st.tuples(port_number, protocol), unique=True, max_size=max_size))
    names = draw(st.lists(port_name, unique=True, min_size=len(pairs), max_size=len(pairs)))
    return [
        {"port": p, "protocol": proto, "name": n}
        for (p, proto), n in zip(pairs, names, strict=True)
    ]


# --- whole specs ------------------------------------------------------------------------------


@st.composite
def valid_specs(draw: st.DrawFn) -> dict[str, Any]:
    node_names = draw(st.lists(dns_label, min_size=1, max_size=4, unique=True))
    nodes = [
        {"name": n, "address": f"192.168.0.{i + 1}", "podCIDR": f"10.244.{i}.0/24"}
        for i, n in enumerate(node_names)
    ]
    ns_names = draw(st.lists(dns_label, min_size=1, max_size=3, unique=True))
    namespaces = [{"name": n, "labels": draw(labels)} for n in ns_names]
    for ns in namespaces:
        ns["labels"].pop("kubernetes.io/metadata.name", None)
    workloads = []
    for i in range(draw(st.integers(0, 5))):
        node_index = draw(st.integers(0, len(nodes) - 1))
        count = draw(st.integers(1, 2))
        workloads.append(
            {
                "name": f"{draw(dns_label)}-{i}",
                "namespace": draw(st.sampled_from(ns_names)),
                "node": node_names[node_index],
                "labels": draw(labels),
                "ips": [f"10.244.{node_index}.{10 + 2 * i + k}" for k in range(count)],
                "ports": draw(unique_ports(3)),
            }
        )
    services = []
    for i in range(draw(st.integers(0, 3))):
        node_port = draw(st.booleans())
        ports = draw(unique_ports(3).filter(bool))
        for j, p in enumerate(ports):
            p["targetPort"] = draw(st.one_of(port_number, port_name))
            if node_port and draw(st.booleans()):
                p["nodePort"] = 30000 + 10 * i + j
        service = {
            "name": f"{draw(dns_label)}-{i}",
            "namespace": draw(st.sampled_from(ns_names)),
            "type": "NodePort" if node_port else "ClusterIP",
            "clusterIP": f"10.96.0.{10 + i}",
            "selector": draw(labels),
            "ports": ports,
        }
        if draw(st.booleans()):
            service["sessionAffinity"] = "ClientIP"
            service["sessionAffinityConfig"] = {
                "clientIP": {"timeoutSeconds": draw(st.integers(1, 86400))}
            }
        if node_port and draw(st.booleans()):
            service["externalTrafficPolicy"] = draw(st.sampled_from(["Cluster", "Local"]))
        services.append(service)
    policies = []
    for i in range(draw(st.integers(0, 3))):
        spec: dict[str, Any] = {"podSelector": draw(selector)}
        if draw(st.booleans()):
            spec["policyTypes"] = draw(
                st.lists(st.sampled_from(["Ingress", "Egress"]), unique=True)
            )
        if draw(st.booleans()):
            spec["ingress"] = draw(st.lists(rule("from"), max_size=2))
        if draw(st.booleans()):
            spec["egress"] = draw(st.lists(rule("to"), max_size=2))
        policies.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": f"policy-{i}", "namespace": draw(st.sampled_from(ns_names))},
                "spec": spec,
            }
        )
    doc: dict[str, Any] = {
        "apiVersion": "netcc.io/v1alpha1",
        "kind": "ClusterNetwork",
        "metadata": {"name": draw(dns_label)},
        "spec": {
            "podCIDR": "10.244.0.0/16",
            "serviceCIDR": "10.96.0.0/16",
            "nodes": nodes,
            "namespaces": namespaces,
            "workloads": workloads,
            "services": services,
            "policies": policies,
        },
    }
    if draw(st.booleans()):
        doc["spec"]["encryption"] = {
            "wireguard": {
                "enabled": draw(st.booleans()),
                "nodes": {
                    n: {
                        "publicKey": base64.b64encode(bytes([i]) * 32).decode(),
                        "privateKeyFile": f"/etc/wg/{n}.key",
                    }
                    for i, n in enumerate(node_names)
                },
            }
        }
    return doc


def outcome(data: str | bytes) -> Cluster | SpecError:
    """parse_spec's result or SpecError; anything else propagates and fails the test."""
    try:
        return parse_spec(data, "p.yaml")[0]
    except SpecError as e:
        assert e.diagnostics, "SpecError without diagnostics"
        assert not any(INTERNAL_ERROR in d.message for d in e.diagnostics), e.format()
        for d in e.diagnostics:
            d.format("p.yaml")
        return e


@settings(SETTINGS, max_examples=40)
@given(valid_specs())
def test_valid_specs_parse(doc: dict[str, Any]) -> None:
    result = outcome(dump(doc))
    assert isinstance(result, Cluster), result.format() if isinstance(result, SpecError) else ""
    spec = doc["spec"]
    assert len(result.nodes) == len(spec["nodes"])
    assert [w.name for w in result.workloads] == [w["name"] for w in spec["workloads"]]
    assert len(result.services) == len(spec["services"])
    for policy, raw in zip(result.policies, spec["policies"], strict=True):
        raw_spec = raw["spec"]
        if raw_spec.get("policyTypes"):
            assert set(policy.policy_types) == set(raw_spec["policyTypes"])
        else:
            assert policy.policy_types == (
                ("Ingress", "Egress") if raw_spec.get("egress") else ("Ingress",)
            )
        assert len(policy.ingress) == len(raw_spec.get("ingress", []))


# --- garbage and mutations ---------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


def all_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    paths = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            paths += all_paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            paths += all_paths(v, (*prefix, i))
    return paths


@st.composite
def mutated_specs(draw: st.DrawFn) -> Any:
    doc: Any = copy.deepcopy(draw(st.one_of(st.just(shop()), valid_specs())))
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(all_paths(doc)))
        if not path:
            doc = draw(json_values)
            continue
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["delete", "replace", "insert", "duplicate"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "replace":
            parent[path[-1]] = draw(json_values)
        elif action == "insert" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["privateKey", "extra", "name", "ports", "except"]))] = (
                draw(json_values)
            )
        elif isinstance(parent, list):
            parent.append(copy.deepcopy(parent[path[-1]]))
    return doc


@settings(SETTINGS, max_examples=50)
@given(mutated_specs())
def test_mutated_specs_never_crash(doc: Any) -> None:
    outcome(dump(doc))


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_never_crash(data: bytes) -> None:
    outcome(data)


@SETTINGS
@given(st.text(max_size=300))
def test_random_text_never_crashes(text: str) -> None:
    outcome(text)


@SETTINGS
@given(json_values)
def test_random_yaml_never_crashes(value: Any) -> None:
    outcome(dump(value))


@SETTINGS
@given(st.data())
def test_text_edits_of_a_valid_spec_never_crash(data: st.DataObject) -> None:
    text = SHOP_TEXT
    for _ in range(data.draw(st.integers(1, 5))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 20))
        insert = data.draw(
            st.sampled_from(["", ":", "-", "[", "{", "&a", "*a", "\n", "  ", "'", "!!", "<<: "])
            | st.text(max_size=5)
        )
        text = text[:at] + insert + text[at + cut :]
    outcome(text)
