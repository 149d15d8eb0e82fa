"""Hostile requests through django.test.Client (assertions in _hostile.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.test.utils import override_settings

from licenzy_embed import Licenzy

from .._hostile import *  # noqa: F403 - the shared hostile-request tests
from .._hostile import CountingBody


class DjangoRaw:
    def __init__(self) -> None:
        self.client = Client(raise_request_exception=False)

    def send(self, method: str, path: str, body: bytes | CountingBody,
             headers: dict[str, bytes], *, declare_length: bool = True) -> tuple[int, bytes]:
        text = {name: value.decode("latin-1") for name, value in headers.items()}
        content_type = text.pop("Content-Type", "application/octet-stream")
        extra: dict[str, Any] = {}
        data = body
        if isinstance(body, CountingBody):
            data = b""
            # Django's WSGI request reads no more than CONTENT_LENGTH, and nothing without it.
            extra = {"wsgi.input": body, "CONTENT_TYPE": content_type,
                     "CONTENT_LENGTH": str(body.size) if declare_length else ""}
        response = self.client.generic(method, path, data=data, content_type=content_type,
                                       headers=text, **extra)
        return response.status_code, response.content


@pytest.fixture
def make_raw() -> Iterator[Any]:
    overrides: list[Any] = []

    def make(lz: Licenzy, **limits: int) -> DjangoRaw:
        # The Django idiom: keys of the LICENZY setting.
        config = {"INSTANCE": lz,
                  "SUBJECT_RESOLVER": "tests.integrations.django.billing.header_subject",
                  **{name.upper(): value for name, value in limits.items()}}
        override = override_settings(LICENZY=config)
        override.enable()
        overrides.append(override)
        return DjangoRaw()

    yield make
    for override in reversed(overrides):
        override.disable()


@pytest.fixture
def sized_path() -> str:
    return "/sync/sized"
