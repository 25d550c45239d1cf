"""The `netcc` command as the lab's daemon tests run it, and what a lab may leave behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def netcc(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`python -m netcc ARGS`; AssertionError with its stderr unless it succeeds (`check`)."""
    proc = subprocess.run(
        [sys.executable, "-m", "netcc", *args], capture_output=True, text=True, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"netcc {' '.join(args)}: {proc.returncode}\n{proc.stderr}")
    return proc


def print_daemon_logs() -> None:
    """The tail of every node daemon's log (before `lab down` removes them)."""
    from netcc.lab.state import STATE_DIR

    for log in sorted((STATE_DIR / "nodes").glob("*/daemon.log")):
        print(f"--- {log}", *log.read_text(errors="replace").splitlines()[-40:], sep="\n")


def leftovers() -> list[str]:
    """The lab's namespaces and node daemons that still exist."""
    found = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    names = [line.split()[0] for line in found.splitlines() if line.startswith("netcc-")]
    procs = subprocess.run(["pgrep", "-f", "netcc load run"], capture_output=True, text=True)
    return names + [f"pid {p}" for p in procs.stdout.split()]
