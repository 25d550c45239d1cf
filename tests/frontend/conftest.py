"""Fixtures for the front-end tests."""

from __future__ import annotations

from typing import Any

import pytest
from frontend_helpers import shop


@pytest.fixture
def doc() -> dict[str, Any]:
    """A fresh, mutable copy of the valid shop spec."""
    return shop()
