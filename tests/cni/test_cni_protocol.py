"""netcc.loader.cni.protocol: requests, CNI_ARGS, identifiers, versions, results."""

from __future__ import annotations

import json
import re
import string
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netcc.loader.cni import names
from netcc.loader.cni.protocol import (
    DECODE_FAILURE,
    INCOMPATIBLE_VERSION,
    INVALID_CONFIG,
    INVALID_ENVIRONMENT,
    Attachment,
    CniError,
    Interface,
    IPConfig,
    PodRef,
    Result,
    Route,
    error_response,
    format_cni_args,
    negotiate_version,
    parse_cni_args,
    parse_request,
    success_response,
)

ARG_KEY = st.text(string.ascii_letters + string.digits + "_.-", min_size=1, max_size=20)
ARG_VALUE = st.text(st.characters(blacklist_characters=";\0", codec="utf-8"), max_size=40)
CID_CHARS = string.ascii_letters + string.digits + "_.-"
CONTAINER_ID = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(string.ascii_letters + string.digits),
    st.text(CID_CHARS, max_size=100),
)


def req(command: str = "ADD", config: dict | None = None, **fields: str) -> bytes:
    conf = {"cniVersion": "1.1.0", "name": "netcc", "type": "netcc"} if config is None else config
    doc = {
        "command": command,
        "containerID": "abc123",
        "netns": "/var/run/netns/x",
        "ifname": "eth0",
        "args": "",
        "path": "/opt/cni/bin:/usr/lib/cni",
        "config": json.dumps(conf),
        **fields,
    }
    return json.dumps(doc).encode()


def code_of(data: bytes) -> int:
    with pytest.raises(CniError) as e:
        parse_request(data)
    return e.value.code


# -- CNI_ARGS ----------------------------------------------------------------------------------


@given(st.dictionaries(ARG_KEY, ARG_VALUE, max_size=8))
def test_cni_args_round_trip(args):
    assert parse_cni_args(format_cni_args(args)) == args


@given(st.text(max_size=80))
def test_cni_args_parse_or_refuse_with_code_4(text):
    try:
        parsed = parse_cni_args(text)
    except CniError as e:
        assert e.code == INVALID_ENVIRONMENT
    else:
        assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+", k) and ";" not in v for k, v in parsed.items())
        assert parse_cni_args(format_cni_args(parsed)) == parsed


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("", {}),
        ("IgnoreUnknown=1;K8S_POD_NAME=a", {"IgnoreUnknown": "1", "K8S_POD_NAME": "a"}),
        ("A=;B=x=y;", {"A": "", "B": "x=y"}),
        (";;A=1", {"A": "1"}),
    ],
)
def test_cni_args_examples(text, expect):
    assert parse_cni_args(text) == expect


@pytest.mark.parametrize("text", ["A", "=1", "A B=1", "A=1;A=2", "ü=1"])
def test_cni_args_refused(text):
    with pytest.raises(CniError) as e:
        parse_cni_args(text)
    assert e.value.code == INVALID_ENVIRONMENT


def test_pod_reference_from_args():
    args = "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=cart-7d9f8-x2x4q;K8S_POD_UID=0a1b-2c"
    assert parse_request(req(args=args)).pod == PodRef("shop", "cart-7d9f8-x2x4q", "0a1b-2c")
    assert parse_request(req(args="IgnoreUnknown=1")).pod is None
    for bad in (
        "K8S_POD_NAME=x",
        "K8S_POD_NAMESPACE=Shop;K8S_POD_NAME=x",
        "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=../x",
        "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=x;K8S_POD_UID=a/b",
    ):
        assert code_of(req(args=bad)) == INVALID_ENVIRONMENT, bad


# -- identifiers -------------------------------------------------------------------------------


@given(CONTAINER_ID)
def test_valid_container_ids_are_accepted(cid):
    assert names.container_id_problem(cid) is None
    assert parse_request(req(containerID=cid)).container_id == cid


@given(st.text(max_size=30))
def test_container_ids_outside_the_grammar_are_refused(cid):
    ok = bool(cid) and cid[0].isascii() and cid[0].isalnum() and all(c in CID_CHARS for c in cid)
    assert (names.container_id_problem(cid) is None) == ok
    if not ok:
        assert code_of(req(containerID=cid)) == INVALID_ENVIRONMENT


@given(st.text(max_size=20))
def test_ifname_rules(name):
    ok = (
        0 < len(name.encode("utf-8", "surrogatepass")) <= 15
        and name not in (".", "..")
        and not any(c in "/:\0" or c.isspace() for c in name)
    )
    assert (names.ifname_problem(name) is None) == ok


@pytest.mark.parametrize("netns", ["relative/ns", "", "/a\0b"])
def test_netns_must_be_an_absolute_path(netns):
    assert code_of(req(netns=netns)) == INVALID_ENVIRONMENT


def test_del_without_a_netns_is_fine_but_add_is_not():
    assert parse_request(req("DEL", netns="")).netns == ""
    assert code_of(req("ADD", netns="")) == INVALID_ENVIRONMENT
    assert code_of(req("CHECK", netns="")) == INVALID_ENVIRONMENT


def test_gc_and_status_need_no_attachment():
    conf = {"cniVersion": "1.1.0", "name": "n", "type": "netcc", "cni.dev/valid-attachments": []}
    r = parse_request(req("GC", conf, containerID="", ifname="", netns=""))
    assert r.config.valid_attachments == ()
    assert parse_request(req("STATUS", containerID="", ifname="", netns="")).command == "STATUS"


# -- versions and the configuration --------------------------------------------------------------


@pytest.mark.parametrize(
    ("conf", "expect"),
    [
        ({"cniVersion": "1.0.0"}, "1.0.0"),
        ({"cniVersions": ["1.0.0", "1.1.0"]}, "1.1.0"),
        ({"cniVersions": ["1.1.0", "1.0.0", "0.4.0"]}, "1.1.0"),
        ({"cniVersions": ["0.4.0", "1.0.0"]}, "1.0.0"),
        ({"cniVersion": "1.0.0", "cniVersions": ["1.1.0"]}, "1.0.0"),
        ({"cniVersion": "0.4.0"}, None),
        ({"cniVersion": "1.1"}, None),
        ({"cniVersion": None}, None),
        ({"cniVersions": "1.1.0"}, None),
        ({"cniVersions": []}, None),
        ({}, None),
    ],
)
def test_version_negotiation(conf, expect):
    if expect is None:
        with pytest.raises(CniError) as e:
            negotiate_version(conf)
        assert e.value.code == INCOMPATIBLE_VERSION
    else:
        assert negotiate_version(conf) == expect


def test_gc_and_status_need_1_1_0():
    conf = {"cniVersion": "1.0.0", "name": "n", "type": "t", "cni.dev/valid-attachments": []}
    assert code_of(req("GC", conf)) == INCOMPATIBLE_VERSION
    assert code_of(req("STATUS", conf)) == INCOMPATIBLE_VERSION


@pytest.mark.parametrize("key", ["cni.dev/valid-attachments", "cni.dev/attachments"])
def test_gc_valid_attachments(key):
    items = [{"containerID": "c2", "ifname": "eth0"}, {"containerID": "c1", "ifname": "net1"}]
    conf = {"cniVersion": "1.1.0", "name": "n", "type": "t", key: items}
    valid = parse_request(req("GC", conf)).config.valid_attachments
    assert valid == (Attachment("c2", "eth0"), Attachment("c1", "net1"))


@pytest.mark.parametrize(
    "attachments",
    [None, "all", [{"containerID": "c1"}], [{"containerID": "../x", "ifname": "eth0"}], [5]],
)
def test_gc_without_a_usable_list_removes_nothing(attachments):
    conf = {"cniVersion": "1.1.0", "name": "n", "type": "t"}
    if attachments is not None:
        conf["cni.dev/valid-attachments"] = attachments
    assert code_of(req("GC", conf)) == INVALID_CONFIG


@pytest.mark.parametrize(
    ("conf", "code"),
    [
        ({"cniVersion": "1.1.0", "type": "t"}, INVALID_CONFIG),
        ({"cniVersion": "1.1.0", "name": "a b", "type": "t"}, INVALID_CONFIG),
        ({"cniVersion": "1.1.0", "name": "n"}, INVALID_CONFIG),
        ({"cniVersion": "1.1.0", "name": "n", "type": "t", "prevResult": []}, INVALID_CONFIG),
        ({"cniVersion": "1.1.0", "name": "n", "type": "t", "runtimeConfig": 1}, INVALID_CONFIG),
    ],
)
def test_invalid_configurations(conf, code):
    assert code_of(req(config=conf)) == code


@pytest.mark.parametrize(
    "data", [b"{", b"[]", b'{"command": 1}', b'{"command": "ADD", "config": "[1]"}']
)
def test_undecodable_requests(data):
    assert code_of(data) in (DECODE_FAILURE, INVALID_ENVIRONMENT)


def test_version_needs_only_a_decodable_config():
    assert parse_request(b'{"command": "VERSION", "config": "{}"}').cni_version == "1.1.0"
    assert code_of(b'{"command": "VERSION", "config": "{"}') == DECODE_FAILURE


# -- results -----------------------------------------------------------------------------------

RESULT = Result(
    interfaces=(
        Interface("nc0123", mac="aa:bb:cc:dd:ee:01", mtu=1420),
        Interface("eth0", mac="aa:bb:cc:dd:ee:02", sandbox="/var/run/netns/x", mtu=1420),
    ),
    ips=(IPConfig(IPv4Interface("10.244.1.17/32"), IPv4Address("10.244.1.1"), 1),),
    routes=(Route(IPv4Network("0.0.0.0/0"), IPv4Address("10.244.1.1"), mtu=1420, scope=0),),
)


def test_a_result_in_each_version():
    v11 = RESULT.to_json("1.1.0")
    assert v11["interfaces"][1] == {
        "name": "eth0",
        "mac": "aa:bb:cc:dd:ee:02",
        "sandbox": "/var/run/netns/x",
        "mtu": 1420,
    }
    assert v11["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.244.1.1", "mtu": 1420, "scope": 0}]
    assert v11["ips"] == [{"address": "10.244.1.17/32", "gateway": "10.244.1.1", "interface": 1}]
    v10 = RESULT.to_json("1.0.0")
    assert v10["cniVersion"] == "1.0.0" and "dns" not in v10
    assert "mtu" not in v10["interfaces"][1] and v10["routes"] == [
        {"dst": "0.0.0.0/0", "gw": "10.244.1.1"}
    ]


def test_prev_result_round_trip_and_validation():
    assert Result.from_json(RESULT.to_json("1.1.0")) == RESULT
    conf = {"cniVersion": "1.1.0", "name": "n", "type": "t", "prevResult": RESULT.to_json("1.1.0")}
    assert parse_request(req("CHECK", conf)).config.prev() == RESULT
    with pytest.raises(CniError) as e:
        Result.from_json({"ips": [{"address": "not-an-ip"}]})
    assert e.value.code == INVALID_CONFIG
    with pytest.raises(ValueError, match="interface 3"):
        Result(ips=(IPConfig(IPv4Interface("10.0.0.1/32"), interface=3),)).to_json("1.1.0")


def test_envelopes():
    ok = json.loads(success_response(RESULT.to_json("1.0.0")))
    assert ok["code"] == 0 and json.loads(ok["stdout"]) == RESULT.to_json("1.0.0")
    assert json.loads(success_response()) == {"code": 0, "stdout": "", "stderr": ""}
    err = json.loads(error_response(CniError(11, "not ready", "datapath"), "1.0.0"))
    assert err["code"] == 11
    assert json.loads(err["stdout"]) == {
        "cniVersion": "1.0.0",
        "code": 11,
        "msg": "not ready",
        "details": "datapath",
    }
