"""The billing Blueprint's routes through Flask's test client (assertions in _routes.py)."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from .._features import *  # noqa: F403 - the shared feature and meter tests
from .._routes import *  # noqa: F403 - the shared route tests


class FlaskHttp:
    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def get(self, path: str, headers: dict[str, str]) -> tuple[int, Any]:
        response = self.client.get(path, headers=headers)
        return response.status_code, response.get_json(silent=True)

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        response = self.client.post(path, data=body, headers=headers)
        return response.status_code, response.get_json(silent=True)


@pytest.fixture
def http(client: FlaskClient) -> FlaskHttp:
    return FlaskHttp(client)
