"""Hostile requests to the billing routes mounted in a FastAPI app (assertions in
_hostile.py)."""

from __future__ import annotations

from typing import Any

import pytest

from .._asgi_raw import AsgiRaw
from .._hostile import *  # noqa: F403 - the shared hostile-request tests
from .app import create_app


@pytest.fixture
def make_raw() -> Any:
    return lambda lz, **limits: AsgiRaw(create_app(lz, **limits))


@pytest.fixture
def sized_path() -> str:
    return "/async/sized"
