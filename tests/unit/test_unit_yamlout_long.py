"""Long base64 values go around the YAML emitter: the bytes must be exactly the emitter's."""

from __future__ import annotations

import base64
import random

import pytest

from netcc.emit.k8s import yamlout
from netcc.emit.k8s.yamlout import LONG, _Dumper, _PyDumper, dump


def _slow(doc: dict, dumper: type) -> bytes:
    """`dump` with the fast path off: every value through the emitter."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(yamlout, "LONG", 10**12)
        return dump(doc, ["a comment"], dumper=dumper)


def _values(rng: random.Random) -> list[str]:
    out = []
    for size in (LONG - 3, LONG, LONG + 1, LONG + 2, 3000, 196_000):
        raw = rng.randbytes(size)
        out.append(base64.b64encode(raw).decode())
    out += [
        "1" * LONG,  # number-like: single-quoted by the representer, so not set aside
        "+" + "A" * LONG,
        "/" + "b" * LONG + "==",
        "+1" + "A" * LONG,
        "y" * LONG,
        "A" * (LONG - 1),
    ]
    return out


@pytest.mark.parametrize("dumper", [_Dumper, _PyDumper])
def test_long_base64_values_are_emitted_as_the_emitter_would(dumper: type) -> None:
    rng = random.Random(7)
    values = _values(rng)
    doc = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x"},
        "binaryData": {f"k{i}": v for i, v in enumerate(values)},
        "list": values[:3],
    }
    assert dump(doc, ["a comment"], dumper=dumper) == _slow(doc, dumper)


def test_a_token_like_value_of_the_document_falls_back_to_the_emitter() -> None:
    doc = {"data": {"a": "netcc-long-scalar-00000000", "b": "Q" * LONG}}
    assert dump(doc, ["a comment"]) == _slow(doc, _Dumper)
    assert b"netcc-long-scalar-00000000" in dump(doc)


def _texts(rng: random.Random) -> list[str]:
    """Multi-line text as map files and their parts are: long, and some edge cases."""
    line = '  {"key": {"ip": "10.0.0.%d"}, "value": {"peer": %d}, "note": "a/b \\\\ \'c\'"},'
    body = "\n".join(line % (i % 250, i) for i in range(200))
    return [
        '{\n "map": "m",\n "entries": [\n' + body + "\n ]\n}\n",  # a whole file
        body + "\n",  # a part: starts with spaces
        '{\n "map": "m",\n "entries": [\n\n ],\n "absent": [\n\n\n ]\n}\n' + "x" * LONG + "\n",
        "a" * LONG + "\n" + "b" * 10,  # no line end at the end: through the emitter
        "a" * LONG + "\n\n",  # two line ends at the end: through the emitter
        "a " * LONG + "\nb\n",  # a line ending in a space: through the emitter
        "\n" + "a" * LONG + "\n",  # starts with a line end: through the emitter
        "tab\there" * 200 + "\n",
        "".join(chr(rng.randrange(32, 127)) for _ in range(3000)) + "\n",
        "short\ntext\n",
    ]


@pytest.mark.parametrize("dumper", [_Dumper, _PyDumper])
def test_long_text_values_are_emitted_as_the_emitters_literal_blocks(dumper: type) -> None:
    texts = _texts(random.Random(3))
    doc = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x"},
        "data": {f"k{i}": t for i, t in enumerate(texts)},
        "nested": {"deeper": {"k": texts[0], "j": texts[1]}},
        "list": texts[:2],
    }
    fast = dump(doc, ["a comment"], dumper=dumper)
    assert fast == _slow(doc, dumper)
    assert b"  k0: |\n    {\n" in fast and b"  k1: |2\n      {" in fast  # set aside, put back
