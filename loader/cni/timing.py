"""Where a CNI request's time goes: named steps, timed only when asked (diagnosis, benches).

`NETCC_DAEMON_PROFILE=FILE` makes the daemon append one JSON line per request to FILE:
the command, the total time from the request's first byte read to its answer sent, and
each step's time in milliseconds (`{"cmd": "ADD", "total": 12.3, "steps": {"ipam": 1.2,
...}}`; a step entered twice adds up). `NETCC_DAEMON_CPROFILE=DIR` writes a cProfile dump
of each request (`DIR/ADD-N.prof`, readable with `pstats`). Unset, `step` and `request`
cost a dictionary lookup: the request path is the same with and without them.

Steps nest in the request of the calling thread; a step outside any request (the periodic
apply) is not recorded.
"""

from __future__ import annotations

import cProfile
import itertools
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PROFILE_ENV = "NETCC_DAEMON_PROFILE"
CPROFILE_ENV = "NETCC_DAEMON_CPROFILE"

_local = threading.local()
_write_lock = threading.Lock()
_serial = itertools.count()


def enabled() -> bool:
    """Whether requests are timed (read from the environment on every call: tests set it)."""
    return bool(os.environ.get(PROFILE_ENV) or os.environ.get(CPROFILE_ENV))


@contextmanager
def request() -> Iterator[None]:
    """Time one request of the calling thread and record it when it ends (its command as
    `name` set it)."""
    sink, pdir = os.environ.get(PROFILE_ENV), os.environ.get(CPROFILE_ENV)
    if not sink and not pdir:
        yield
        return
    steps: dict[str, float] = {}
    _local.steps = steps
    _local.command = "?"
    prof = cProfile.Profile() if pdir else None
    t0 = time.perf_counter()
    if prof is not None:
        prof.enable()
    try:
        yield
    finally:
        if prof is not None:
            prof.disable()
        total = (time.perf_counter() - t0) * 1e3
        _local.steps = None
        n, command = next(_serial), _local.command
        if prof is not None and pdir:
            prof.dump_stats(str(Path(pdir) / f"{command}-{n}.prof"))
        if sink:
            line = {"cmd": command, "total": round(total, 3), "steps": steps}
            with _write_lock, open(sink, "a") as f:
                f.write(json.dumps(line, sort_keys=True) + "\n")


def name(command: str) -> None:
    """Name the calling thread's request (its CNI command) once it is parsed."""
    _local.command = command


@contextmanager
def step(name: str) -> Iterator[None]:
    """Add the block's wall time to step `name` of the calling thread's request, if any."""
    steps = getattr(_local, "steps", None)
    if steps is None:
        yield
        return
    t0 = time.perf_counter()
    try:
        yield
    finally:
        ms = (time.perf_counter() - t0) * 1e3
        steps[name] = round(steps.get(name, 0.0) + ms, 3)
