"""EndpointSlice.from_json and SliceCache: pure, on recorded objects (tests/kube/recordings)."""

from __future__ import annotations

import copy

import pytest
from kubereplay import recording

from netcc.loader.kube import BadResponse, EndpointSlice, SliceCache, SliceEndpoint, SlicePort

ITEMS = {
    f"{i['metadata']['namespace']}/{i['metadata']['name']}": i
    for i in recording("list-single.json")["body"]["items"]
}


def item(key: str) -> dict:
    return copy.deepcopy(ITEMS[key])


def parse(key: str, **changes) -> EndpointSlice:
    doc = item(key)
    doc.update(changes)
    return EndpointSlice.from_json(doc)


def test_a_recorded_slice():
    s = parse("shop/cart-6xk2p")
    assert (s.namespace, s.name, s.service, s.service_key) == (
        "shop",
        "cart-6xk2p",
        "cart",
        "shop/cart",
    )
    assert (s.address_type, s.resource_version) == ("IPv4", "184391")
    assert s.ports == (SlicePort("http", 8080, "TCP"),)
    assert s.endpoints == (
        SliceEndpoint("10.244.1.17", True, True, False, "node-1"),
        SliceEndpoint("10.244.2.21", True, True, False, "node-2"),
    )


def test_a_list_item_without_kind_and_a_watch_object_with_it():
    doc = item("shop/web-h7v2n")
    assert "kind" not in doc
    assert EndpointSlice.from_json({"kind": "EndpointSlice", **doc}) == EndpointSlice.from_json(doc)


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        (None, (True, True, False)),  # the recorded web-h7v2n has `conditions: {}`
        ({}, (True, True, False)),
        ({"ready": None, "serving": None, "terminating": None}, (True, True, False)),
        ({"ready": False}, (False, False, False)),
        ({"ready": False, "serving": True, "terminating": True}, (False, True, True)),
        ({"ready": True, "serving": None}, (True, True, False)),
        ({"terminating": True}, (True, True, True)),
    ],
)
def test_condition_defaults(conditions, expected):
    doc = item("shop/web-h7v2n")
    ep = doc["endpoints"][1]
    if conditions is None:
        assert ep["conditions"] == {}
    else:
        ep["conditions"] = conditions
    e = EndpointSlice.from_json(doc).endpoints[1]
    assert (e.ready, e.serving, e.terminating) == expected


def test_defaults_of_missing_fields():
    doc = item("shop/legacy-db")  # no targetRef, nodeName, zone, service label
    doc["ports"] = [{"port": 5432}, {"name": "all"}]
    doc["endpoints"].append({"addresses": ["192.0.2.41"]})
    s = EndpointSlice.from_json(doc)
    assert (s.service, s.service_key) == ("", "")
    assert s.ports == (SlicePort("", 5432, "TCP"), SlicePort("all", None, "TCP"))
    assert s.endpoints[1] == SliceEndpoint("192.0.2.41", True, True, False, "")
    doc["ports"] = doc["endpoints"] = doc["metadata"]["labels"] = None
    s = EndpointSlice.from_json(doc)
    assert (s.ports, s.endpoints, s.service) == ((), (), "")


def test_ipv6_addresses_are_canonical():
    s = parse("shop/web-v6-8kd9s")
    assert (s.address_type, s.endpoints[0].address) == ("IPv6", "fd00:10:244:1::30")


def _set(path: str, value: object) -> dict:
    """A copy of shop/cart-6xk2p with the field at dotted `path` (list indices as numbers)
    set to `value`; a value of ... deletes it."""
    doc = item("shop/cart-6xk2p")
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node = doc
    for p in parents:
        node = node[p]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "words"),
    [
        ("kind", "Endpoints", "kind is 'Endpoints'"),
        ("metadata", [], "metadata must be an object, not []"),
        ("metadata.namespace", ..., "metadata.namespace '' must be a DNS-1123 label"),
        ("metadata.namespace", "Shop", "metadata.namespace 'Shop' must be a DNS-1123 label"),
        ("metadata.name", 7, "metadata.name must be a string, not 7"),
        ("metadata.name", "cart_1", "metadata.name 'cart_1' must be a DNS-1123 subdomain"),
        ("metadata.resourceVersion", 184391, "metadata.resourceVersion must be a string"),
        ("metadata.labels", ["app"], "metadata.labels must be an object"),
        ("metadata.labels.kubernetes.io/service-name", 1, "must be a string, not 1"),
        ("addressType", ..., "addressType is missing"),
        ("addressType", 4, "addressType must be a string, not 4"),
        ("endpoints", "10.244.1.17", "endpoints must be a list, not '10.244.1.17'"),
        ("endpoints.0", "10.244.1.17", "endpoints[0] must be an object"),
        ("endpoints.0.addresses", [], "endpoints[0].addresses is empty"),
        ("endpoints.1.addresses", ["10.244.2"], "endpoints[1].addresses[0] '10.244.2' is not an"),
        ("endpoints.1.addresses", [None], "endpoints[1].addresses[0] must be a string, not None"),
        ("endpoints.0.conditions", "ready", "endpoints[0].conditions must be an object"),
        ("endpoints.0.conditions.ready", "yes", "endpoints[0].conditions.ready must be true or"),
        ("endpoints.0.conditions.serving", 1, "conditions.serving must be true or false, not 1"),
        ("endpoints.0.nodeName", "Node 1", "endpoints[0].nodeName 'Node 1' must be a DNS-1123"),
        ("ports.0", 8080, "ports[0] must be an object, not 8080"),
        ("ports.0.port", "http", "ports[0].port must be an integer, not 'http'"),
        ("ports.0.port", True, "ports[0].port must be an integer, not True"),
        ("ports.0.port", 70000, "ports[0].port 70000 is not in 1..65535"),
        ("ports.0.protocol", "ICMP", "ports[0].protocol 'ICMP' is not one of"),
        ("ports.0.name", {}, "ports[0].name must be a string, not {}"),
    ],
)
def test_malformed_slices(path, value, words):
    if path.startswith("metadata.labels.kubernetes.io"):
        doc = item("shop/cart-6xk2p")
        doc["metadata"]["labels"]["kubernetes.io/service-name"] = value
    else:
        doc = _set(path, value)
    with pytest.raises(BadResponse) as e:
        EndpointSlice.from_json(doc)
    msg = str(e.value)
    assert words in msg
    assert len(msg) < 200 and "\n" not in msg


def test_a_malformed_slice_names_itself_once_its_name_is_known():
    with pytest.raises(BadResponse, match=r"^EndpointSlice shop/cart-6xk2p: endpoints\[0\]"):
        EndpointSlice.from_json(_set("endpoints.0.addresses", []))
    with pytest.raises(BadResponse, match=r"^an EndpointSlice: is not a JSON object"):
        EndpointSlice.from_json(["x" * 1000])
    with pytest.raises(BadResponse) as e:
        EndpointSlice.from_json(_set("endpoints.0.addresses", ["x" * 10_000]))
    assert len(str(e.value)) < 200


# -- SliceCache ------------------------------------------------------------------------------


def names(slices: tuple[EndpointSlice, ...]) -> list[str]:
    return [s.name for s in slices]


def relabel(s: EndpointSlice, service: str, rv: str) -> EndpointSlice:
    doc = item(f"{s.namespace}/{s.name}")
    doc["metadata"]["labels"]["kubernetes.io/service-name"] = service
    doc["metadata"]["resourceVersion"] = rv
    return EndpointSlice.from_json(doc)


def test_a_service_split_across_two_slices():
    cache = SliceCache()
    a, b = parse("shop/cart-q8w4z"), parse("shop/cart-6xk2p")
    assert cache.apply("ADDED", a) == {"shop/cart"}
    assert cache.apply("ADDED", b) == {"shop/cart"}
    assert names(cache.service_slices("shop/cart")) == ["cart-6xk2p", "cart-q8w4z"]  # by name
    assert cache.apply("DELETED", a) == {"shop/cart"}
    assert names(cache.service_slices("shop/cart")) == ["cart-6xk2p"]
    assert cache.apply("DELETED", b) == {"shop/cart"}
    assert cache.service_slices("shop/cart") == () and cache.services() == set()
    assert cache.apply("DELETED", b) == set()  # already gone


def test_slices_that_do_not_count_are_absent():
    cache = SliceCache()
    for key in ("shop/web-v6-8kd9s", "shop/legacy-db"):
        assert cache.apply("ADDED", parse(key)) == set()
    assert cache.services() == set() and len(cache) == 0
    web = parse("shop/web-h7v2n")
    cache.apply("ADDED", web)
    unlabelled = relabel(web, "", "184999")  # the label removed: no longer the service's
    assert cache.apply("MODIFIED", unlabelled) == {"shop/web"}
    assert cache.services() == set()


def test_a_slice_moving_to_another_service_changes_both():
    cache = SliceCache()
    web = parse("shop/web-h7v2n")
    cache.apply("ADDED", web)
    assert cache.apply("MODIFIED", relabel(web, "frontend", "185000")) == {
        "shop/web",
        "shop/frontend",
    }
    assert cache.services() == {"shop/frontend"}


def test_a_write_that_changed_nothing_used_changes_no_service():
    cache = SliceCache()
    web = parse("shop/web-h7v2n")
    cache.apply("ADDED", web)
    doc = item("shop/web-h7v2n")
    doc["metadata"]["resourceVersion"] = "190000"
    newer = EndpointSlice.from_json(doc)
    assert cache.apply("MODIFIED", newer) == set()
    assert cache.service_slices("shop/web")[0].resource_version == "190000"
    with pytest.raises(ValueError, match="BOOKMARK"):
        cache.apply("BOOKMARK", web)


def test_replace_reports_changed_appeared_and_vanished_services():
    cache = SliceCache()
    everything = [EndpointSlice.from_json(i) for i in ITEMS.values()]
    assert cache.replace(everything) == {"kube-system/kube-dns", "shop/cart", "shop/web"}
    relist = [EndpointSlice.from_json(i) for i in recording("list-relist.json")["body"]["items"]]
    assert cache.replace(relist) == {"shop/cart", "shop/web"}  # cart changed, web vanished
    assert cache.services() == {"kube-system/kube-dns", "shop/cart"}
    assert cache.replace(relist) == set()
    assert cache.replace([]) == {"kube-system/kube-dns", "shop/cart"}
