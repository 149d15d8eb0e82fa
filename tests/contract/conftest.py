from __future__ import annotations

import pytest

from ._support import new_subject


@pytest.fixture
def subject() -> str:
    """A fresh subject ref: SQL stores may share one database between tests."""
    return new_subject()
