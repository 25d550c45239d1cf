"""Property tests: generated valid specs always parse; nothing else ever escapes but SpecError."""

from __future__ import annotations

import base64
import copy
import re
from typing import Any

import yaml
from frontend_helpers import SHOP_TEXT, assert_clean, dump, shop
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from netcc.diagnostics import SpecError
from netcc.frontend import INTERNAL_ERROR, parse_spec
from netcc.load.document import MAX_DEPTH, TOO_DEEP
from netcc.model.types import Cluster

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
        return e


YAML_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def assert_accepted_or_refused_cleanly(data: str | bytes) -> Cluster | SpecError:
    """What the front end promises for any input: a model, the same on every parse; or a
    SpecError whose every diagnostic is one clean line (no internal error, no key shown)
    located inside the text. Returns the outcome."""
    result = outcome(data)
    if isinstance(result, SpecError):
        assert result.diagnostics, "SpecError without diagnostics"
        assert not any(INTERNAL_ERROR in d.message for d in result.diagnostics), result.format()
        assert_clean(result, "p.yaml")
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        lines = len(YAML_LINE_BREAK.findall(text)) + 1  # as YAML counts lines (NEL, LS, PS too)
        assert all(0 <= d.line <= lines for d in result.diagnostics), result.format()
    else:
        assert isinstance(result, Cluster), type(result)
        assert outcome(data) == result, "the same text gave another model"
    return result


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
    assert_accepted_or_refused_cleanly(dump(doc))


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_never_crash(data: bytes) -> None:
    assert_accepted_or_refused_cleanly(data)


@SETTINGS
@given(st.text(max_size=300))
@example("\x850")  # NEL is a YAML line break: an error on line 2 of a text without \\n
def test_random_text_never_crashes(text: str) -> None:
    assert_accepted_or_refused_cleanly(text)


@SETTINGS
@given(json_values)
def test_random_yaml_never_crashes(value: Any) -> None:
    assert_accepted_or_refused_cleanly(dump(value))


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
    assert_accepted_or_refused_cleanly(text)


# --- hostile values: keys hidden by escapes, control characters, nesting ---------------------

SLOT = "NETCCSLOT"
HOSTILE_CHARS = "\n\r\t\x00\x07\x08\x1b\x7f\x85\x9b\xa0\u200b\u200e\u202e\u2066\u2028\u2029\ufeff"
hostile_text = st.text(
    alphabet=st.sampled_from(HOSTILE_CHARS)
    | st.sampled_from("ab-./:[]{}#&*!|>'%@ ")
    | st.characters(),
    min_size=1,
    max_size=12,
)


def string_slots(doc: Any) -> list[tuple[tuple, str]]:
    """(path, kind) of every string value ("value") and every mapping ("key": a new key goes
    there) of `doc`; publicKey values are left out (a public key written with escapes there is
    still the public key)."""
    slots: list[tuple[tuple, str]] = []
    for path in all_paths(doc):
        parent: Any = doc
        for part in path:
            parent = parent[part]
        if isinstance(parent, dict):
            slots.append((path, "key"))
        elif isinstance(parent, str) and path[-1:] != ("publicKey",):
            slots.append((path, "value"))
    return slots


def with_slot(doc: Any, path: tuple, kind: str) -> str:
    """YAML text of `doc` with the placeholder SLOT at `path` (the value, or a new key)."""
    doc = copy.deepcopy(doc)
    parent = doc
    for part in path[:-1] if kind == "value" else path:
        parent = parent[part]
    if kind == "value":
        parent[path[-1]] = SLOT
    else:
        parent[SLOT] = "x"
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text = yaml.dump(doc, Dumper=dumper, sort_keys=False, allow_unicode=True, width=10**9)
    assert text.count(SLOT) == 1
    return text


@st.composite
def double_quoted(draw: st.DrawFn, text: str, *, continuations: bool) -> str:
    """`text` as a YAML double-quoted scalar, each character written as itself or as one of
    YAML's escapes, with `\\`-newline continuations between characters."""
    out = []
    for c in text:
        if continuations and draw(st.integers(0, 9)) == 0:
            out.append("\\\n" + " " * draw(st.integers(20, 40)))
        style = draw(st.sampled_from(["plain", "x", "u", "U"]))
        if style == "plain" and c.isascii() and c.isprintable() and c not in '"\\':
            out.append(c)
        elif style == "x" and ord(c) <= 0xFF:
            out.append(f"\\x{ord(c):02x}")
        elif style == "U" or ord(c) > 0xFFFF:
            out.append(f"\\U{ord(c):08x}")
        else:
            out.append(f"\\u{ord(c):04x}")
    return '"' + "".join(out) + '"'


def refused_cleanly(text: str, filename: str = "p.yaml", secrets: tuple[str, ...] = ()) -> bool:
    """True when `text` is refused with clean diagnostics, False when it is accepted."""
    try:
        parse_spec(text, filename)
    except SpecError as e:
        assert_clean(e, filename, secrets)
        return True
    return False


@settings(SETTINGS, max_examples=80)
@given(
    valid_specs(),
    st.data(),
    st.binary(min_size=32, max_size=32),
    st.sampled_from(["", "/", "+", "x", "/etc/wg/", "a b ", "==", "Zm9v"]),
    st.sampled_from(["", "=", "x", "/y", " z"]),
)
def test_a_key_escaped_anywhere_is_refused_and_never_shown(
    doc: dict[str, Any], data: st.DataObject, raw: bytes, prefix: str, suffix: str
) -> None:
    key = base64.b64encode(raw).decode()
    path, kind = data.draw(st.sampled_from(string_slots(doc)))
    text = with_slot(doc, path, kind)
    if data.draw(st.booleans()):
        scalar = data.draw(double_quoted(prefix + key + suffix, continuations=True))
        text = text.replace(SLOT, scalar)
    else:  # as written, in a comment at the end of a random line
        lines = text.replace(SLOT, "x").splitlines(keepends=True)
        at = data.draw(st.integers(0, len(lines) - 1))
        lines[at] = lines[at].rstrip("\n") + f" # {prefix}{key}{suffix}\n"
        text = "".join(lines)
    assert refused_cleanly(text, secrets=(key,)), "a key in the spec was accepted"


@settings(SETTINGS, max_examples=80)
@given(valid_specs(), st.data(), hostile_text)
def test_control_characters_in_any_string_never_break_a_diagnostic_line(
    doc: dict[str, Any], data: st.DataObject, value: str
) -> None:
    path, kind = data.draw(st.sampled_from(string_slots(doc)))
    text = with_slot(doc, path, kind)
    text = text.replace(SLOT, data.draw(double_quoted(value, continuations=False)))
    refused_cleanly(text, data.draw(st.sampled_from(["p.yaml", "p\n\x1b[2J\u202e.yaml"])))


NESTINGS = {
    "flow-sequences": lambda d: "[" * d + "x" + "]" * d,
    "flow-mappings": lambda d: "{a: " * d + "x" + "}" * d,
    "mixed": lambda d: "[{a: " * (d // 2) + "[" * (d % 2) + "x" + "]" * (d % 2) + "}]" * (d // 2),
    "unclosed": lambda d: "[" * d,
    "compact": lambda d: "\n" + "  " * 40 + "- " * d + "x",
    "block": lambda d: (
        "\n" + "".join(f"{'  ' * (i + 40)}k{i}:\n" for i in range(d)) + "  " * (d + 40) + "x"
    ),
}


@settings(SETTINGS, max_examples=80)
@given(valid_specs(), st.data(), st.sampled_from(sorted(NESTINGS)), st.integers(1, 3000))
def test_random_nesting_never_crashes(
    doc: dict[str, Any], data: st.DataObject, style: str, depth: int
) -> None:
    depth = min(depth, 300) if style == "block" else depth  # its text grows with depth²
    block = style in ("compact", "block")
    path, kind = data.draw(st.sampled_from(string_slots(doc)))
    if block and kind == "key":  # a block collection cannot be a key
        kind, path = "value", ("metadata", "name")
    text = with_slot(doc, path, kind).replace(SLOT, NESTINGS[style](depth))
    try:
        parse_spec(text, "p.yaml")
    except SpecError as e:
        assert_clean(e, "p.yaml")
        if depth > MAX_DEPTH and kind == "value":  # a key that long is a syntax error first
            assert any(d.message == TOO_DEEP and d.line > 0 for d in e.diagnostics), e.format()
    else:
        assert depth < MAX_DEPTH, "a document nested too deeply was accepted"
