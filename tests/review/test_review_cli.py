"""The review commands through the installed entry points (subprocesses), as CI runs them."""

import json
import os
import subprocess
import sys

import pytest
from review_support import SHOP

COMMANDS = [[sys.executable, "-m", "netcc"]]


def netcc(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*COMMANDS[0], *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
        env={**os.environ},
    )


def test_help_lists_the_review_commands():
    r = netcc("--help")
    assert r.returncode == 0
    for command in ("review", "why", "diff", "lint"):
        assert command in r.stdout


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (
            [
                "why",
                SHOP,
                "--from",
                "shop/frontend",
                "--to",
                "shop/cart",
                "--port",
                "7000",
                "--json",
            ],
            0,
        ),
        (["diff", SHOP, SHOP, "--json"], 0),
        (["lint", SHOP], 0),
        (["lint", SHOP, "--strict"], 1),
        (["review", SHOP, "--format", "md"], 0),
    ],
)
def test_exit_codes(args, code):
    r = netcc(*args)
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr


def test_why_json_contract():
    r = netcc(
        "why",
        SHOP,
        "--from",
        "192.0.2.7",
        "--to",
        "shop/frontend",
        "--port",
        "8080",
        "--protocol",
        "tcp",
        "--json",
    )
    doc = json.loads(r.stdout)
    assert doc["verdict"] == "allow"
    assert set(doc) >= {"verdict", "egress", "ingress"}
    assert doc["ingress"]["rules"][0]["policy"] == "shop/frontend-ingress"


def test_invalid_spec_never_gives_a_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("spec: [unclosed\n")
    for args, code in (
        (["review", bad], 1),
        (["why", bad, "--from", "1.1.1.1", "--to", "2.2.2.2", "--port", "1"], 1),
        (["lint", bad], 1),
        (["diff", bad, SHOP], 2),
    ):
        r = netcc(*args)
        assert r.returncode == code, (args, r.stderr)
        assert f"{bad}:" in r.stderr and "error" in r.stderr
        assert "Traceback" not in r.stderr
