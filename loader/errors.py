"""The error of `netcc load apply`, shared by its stages (artifacts, plan, executor)."""

from __future__ import annotations


class ApplyError(Exception):
    """Apply refused or failed. `log` holds a verifier log; `rolled_back` says whether the
    previous datapath was restored."""

    def __init__(self, message: str, log: str = "", rolled_back: bool = False) -> None:
        super().__init__(message)
        self.log = log
        self.rolled_back = rolled_back
