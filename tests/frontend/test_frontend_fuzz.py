"""Mutation fuzz of the front end: the tests' valid specs, mutated at the byte level (flips,
deletions, duplications, hostile tokens), must each come out accepted or refused with clean
diagnostics (one printable line each, no internal error, no key shown), and an accepted one
must hold no stray key. Anything else (a traceback, a crash, a hang) fails the run.

The seed changes every day, so CI explores new cases; NETCC_FUZZ_SEED=N replays a run and
NETCC_FUZZ_CASES=N sets how many cases it makes.
"""

from __future__ import annotations

import datetime
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import yaml
from frontend_helpers import assert_clean

from netcc.diagnostics import SpecError
from netcc.emit.k8s.policies import policy_objects
from netcc.emit.k8s.yamlout import dump
from netcc.emit.tunnels import render_tunnels
from netcc.frontend import parse_spec
from netcc.load.document import load_yaml
from netcc.model.types import Cluster

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(
    [
        *(ROOT / "tests" / "frontend" / "specs").glob("*.yaml"),
        *(ROOT / "tests" / "golden" / "specs").glob("*.yaml"),
        *(ROOT / "examples").glob("*.yaml"),
    ]
)
STRAY = "IKbn3RwfPbsEp7lyD6XuLDCO5yJcGAQyQfYuRDlIWH8="  # 32 bytes, declared by no spec
ESCAPED = "".join(f"\\x{ord(c):02x}" for c in STRAY)
HOSTILE = [
    "[" * 100, "{a: " * 80, "- " * 70, "]", "}", ",", ":", "? ", "- ", "#", "'", '"', "|", ">",
    "&a ", "*a ", "*b", "!!binary ", "!!int ", "!foo ", "!<%1B[2J> ", "<<: ", "%YAML 1.1\n",
    "\n---\n", "\n...\n", "\t", "\x00", "\x1b[31m", "\x85", "\u202e", "\u2028", "\ufeff",
    '"\\e[2J\\n\\u202e"', '"\\x00\\N\\L"', "\\", "\r\n", "\r", "\n", "  ", "~", "null", "0x1F",
    "1e999", "9" * 400, "yes", "2024-01-01", STRAY, f"/etc/wg/{STRAY}", f'"{ESCAPED}"',
    f'"{STRAY[:20]}\\\n   {STRAY[20:]}"', "127.0.0.1", "0.0.0.0/0", "224.0.0.1", "255.255.255.255",
    "privateKey: x\n", "annotations: {a: b}\n", "labels: {\"a\\n\": x}\n", '"\\ud800"',
    'annotations: {a: "\\0\\e\\u202e"}\n', "\n  annotations: {x/y: z}\n", "labels: {a: b}\n",
    "\udcff",  # a byte that is no UTF-8
]  # fmt: skip


def _seed() -> int:
    return int(os.environ.get("NETCC_FUZZ_SEED", datetime.date.today().strftime("%Y%m%d")))


def mutate(data: bytes, rng: random.Random) -> tuple[bytes, list[str]]:
    """`data` with 1 to 4 random mutations, and what they were (to replay a failure)."""
    done = []
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(data) + 1)
        kind = rng.choice(["flip", "delete", "duplicate", "insert", "insert", "line"])
        if kind == "flip" and at < len(data):
            data = data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1 :]
        elif kind == "delete":
            data = data[:at] + data[at + rng.randint(1, 40) :]
        elif kind == "duplicate":
            start = rng.randrange(len(data) + 1)
            piece = data[start : start + rng.randint(1, 200)]
            data = data[:at] + piece * rng.randint(1, 3) + data[at:]
        elif kind == "line":
            lines = data.splitlines(keepends=True) or [b""]
            lines.insert(rng.randrange(len(lines) + 1), rng.choice(lines))
            data = b"".join(lines)
        else:
            token = rng.choice(HOSTILE).encode("utf-8", "surrogateescape")
            data = data[:at] + token + data[at:]
        done.append(f"{kind}@{at}")
    return data, done


def decoded_strings(value: Any) -> list[str]:
    """Every string of a loaded document, map keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *decoded_strings(v)]]
    if isinstance(value, list):
        return [s for item in value for s in decoded_strings(item)]
    return []


def render(cluster: Cluster, document: Any) -> None:
    """What of OUT carries spec values as they are, made without clang: each node's tunnel
    plan and the NetworkPolicies of OUT/k8s (an accepted spec must be writable)."""
    for text in render_tunnels(cluster).values():
        json.loads(text)
    for policy in policy_objects(document).values():
        assert yaml.safe_load(dump(policy, []).decode("ascii"))["kind"] == "NetworkPolicy"


def check(data: bytes) -> str:
    """The outcome for `data`, accepted or refused; fails on any other."""
    try:
        cluster, _ = parse_spec(data, "fuzz.yaml")
    except SpecError as e:
        # No key-shaped text in any message. (Mutations may break a key apart; its pieces are
        # then no key, and may be quoted.)
        assert_clean(e, "fuzz.yaml")
        return "refused"
    assert STRAY.encode() not in data, "a stray key was accepted"
    document, _ = load_yaml(data, "fuzz.yaml")
    assert not any(STRAY in s for s in decoded_strings(document)), "an escaped key was accepted"
    render(cluster, document)
    return "accepted"


def test_mutated_specs_are_accepted_or_refused_cleanly() -> None:
    seed, cases = _seed(), int(os.environ.get("NETCC_FUZZ_CASES", "1500"))
    rng = random.Random(seed)
    originals = [p.read_bytes() for p in SOURCES]
    assert len(originals) >= 5
    outcomes: dict[str, int] = {}
    start = time.monotonic()
    for case in range(cases):
        source = rng.randrange(len(originals))
        data, done = mutate(originals[source], rng)
        try:
            outcome = check(data)
        except AssertionError as e:
            where = f"seed {seed}, case {case}: {SOURCES[source].name} {' '.join(done)}"
            raise AssertionError(f"{where}: {e}\n{data!r}") from None
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert outcomes.get("refused", 0) > cases // 4, outcomes  # the mutations do bite
    assert time.monotonic() - start < 60, "the front end got slow on mutated specs"
