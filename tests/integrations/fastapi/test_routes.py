"""The billing routes mounted in a FastAPI app, via its TestClient (assertions in _routes.py)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from .._features import *  # noqa: F403 - the shared feature and meter tests
from .._routes import *  # noqa: F403 - the shared route tests


class StarletteHttp:
    def __init__(self, client: TestClient) -> None:
        self.client = client

    def get(self, path: str, headers: dict[str, str]) -> tuple[int, Any]:
        response = self.client.get(path, headers=headers)
        return response.status_code, response.json()

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        response = self.client.post(path, content=body, headers=headers)
        return response.status_code, response.json()


@pytest.fixture
def http(client: TestClient) -> StarletteHttp:
    return StarletteHttp(client)
