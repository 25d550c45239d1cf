"""`netcc ARGS` run in the test's own process, its exit status and output captured."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

from netcc.cli.main import main


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str


def run(*args: object) -> Ran:
    """`netcc ARGS` in this process (fast enough for hundreds of calls)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse
            code = e.code if isinstance(e.code, int) else 2
    return Ran(code, out.getvalue(), err.getvalue())
