"""The Django app's billing views through django.test.Client (assertions in _routes.py).

Here the subject comes from the X-User header (a test resolver) so the shared tests can name
their subjects; test_mounting.py covers the default, request.user.pk."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.test.utils import override_settings

from licenzy_embed import Licenzy

from .._features import *  # noqa: F403 - the shared feature and meter tests
from .._routes import *  # noqa: F403 - the shared route tests


class DjangoHttp:
    def __init__(self) -> None:
        self.client = Client(raise_request_exception=False)

    @staticmethod
    def _answer(response: Any) -> tuple[int, Any]:
        is_json = response.get("Content-Type", "").startswith("application/json")
        return response.status_code, response.json() if is_json else None

    def get(self, path: str, headers: dict[str, str]) -> tuple[int, Any]:
        return self._answer(self.client.get(path, headers=headers))

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        headers = dict(headers)
        content_type = headers.pop("Content-Type", "application/octet-stream")
        return self._answer(self.client.post(path, data=body, content_type=content_type,
                                             headers=headers))


@pytest.fixture
def http(lz: Licenzy) -> Iterator[DjangoHttp]:
    with override_settings(LICENZY={
            "INSTANCE": lz,
            "SUBJECT_RESOLVER": "tests.integrations.django.billing.header_subject"}):
        yield DjangoHttp()
